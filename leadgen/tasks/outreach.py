"""Celery tasks of the outreach stage: thin wrappers around `leadgen.outreach`.

Send times live in the database (`scheduled_for`); no task is ever given an ETA or countdown.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from leadgen.config import get_settings
from leadgen.db import session_scope
from leadgen.outreach.deliver import deliver_due as deliver_due_now
from leadgen.outreach.service import claim_generation_batch, generate_and_queue, generate_many
from leadgen.tasks import task


@task("leadgen.outreach.dispatch_generation")
def dispatch_generation(limit: int = 500) -> int:
    """Beat: companies ready for a first email → one `generate` task each."""
    settings = get_settings()
    with session_scope() as session:
        company_ids = claim_generation_batch(session, settings, limit)
    if settings.runs_in_process:  # no broker: use the configured concurrency in process
        generate_many(company_ids, settings)
    else:
        for company_id in company_ids:
            generate.delay(company_id)
    return len(company_ids)


@task("leadgen.outreach.generate")
def generate(company_id: int) -> int | None:
    """Write and queue the first email of one company (idempotent)."""
    return generate_and_queue(company_id)


@task("leadgen.outreach.deliver_due")
def deliver_due() -> dict[str, Any]:
    """Beat, every minute: send what is due in the working window."""
    return asdict(deliver_due_now(get_settings()))
