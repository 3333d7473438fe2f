"""Thin Celery wrappers: open a session, call the stage's logic, hand ids to the next step.

Every task is declared through `task()`: an explicit dotted name (the route follows from it,
see `leadgen.queues`), no stored result, and late acks for idempotent work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from leadgen.celery_app import app


def task(name: str, *, idempotent: bool = True, **options: Any) -> Callable[..., Any]:
    return app.task(name=name, acks_late=idempotent, ignore_result=True, **options)
