"""One pass over every stage's dispatcher — what beat does over a minute, on demand.

With a broker the dispatchers enqueue work for the workers; without one (the embedded default)
everything runs here, in process, chains included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from leadgen.celery_app import app
from leadgen.config import Settings

# (stage, task name), in pipeline order.
DISPATCHERS: list[tuple[str, str]] = [
    ("submit", "leadgen.search.dispatch_submits"),
    ("poll", "leadgen.search.dispatch_polls"),
    ("enrich", "leadgen.enrich.dispatch"),
    ("generate", "leadgen.outreach.dispatch_generation"),
    ("deliver", "leadgen.outreach.deliver_due"),
    ("sweep", "leadgen.maintenance.sweep_leases"),
]


def load_tasks() -> None:
    for module in app.conf.include:
        __import__(module)


def run_once(
    settings: Settings,
    *,
    sync: bool = False,
    batch_tag: str | None = None,
    on_stage: Callable[[str, Any], None] | None = None,
) -> dict[str, Any]:
    """Run each dispatcher once; returns what each returned (in process) or its task id."""
    load_tasks()
    stages = list(DISPATCHERS)
    if sync:
        stages.insert(0, ("sync", "leadgen.intake.sync_sheet"))
    outcome: dict[str, Any] = {}
    for stage, name in stages:
        kwargs = {"batch_tag": batch_tag} if stage == "sync" else {}
        result = app.tasks[name].apply_async(kwargs=kwargs)
        outcome[stage] = result.result if settings.runs_in_process else result.id
        if on_stage:
            on_stage(stage, outcome[stage])
    return outcome
