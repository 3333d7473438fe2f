"""Celery tasks of the intake stage: the Google Sheet → search queries."""

from __future__ import annotations

import logging
from typing import Any

from leadgen.config import get_settings
from leadgen.db import session_scope
from leadgen.search.errors import IntakeError
from leadgen.search.intake import sync
from leadgen.tasks import task

log = logging.getLogger(__name__)


@task("leadgen.intake.sync_sheet")
def sync_sheet(batch_tag: str | None = None) -> dict[str, Any]:
    """One sync pass of the configured sheet; returns the summary."""
    settings = get_settings()
    try:
        with session_scope() as session:
            summary = sync(session, settings, None, batch_tag or None)
    except IntakeError as exc:  # a sheet problem, not a bug: one clear line, no traceback
        log.error("sheet sync failed: %s", exc)
        return {"error": str(exc)}
    return summary.as_dict()
