"""Celery tasks of the SERP stage: ingest and dedupe.

Both return company ids for the next link of the chain started by the poll task:
`ingest_operation.si(pk) | dedupe.s() | leadgen.enrich.fan_out.s()` (chain results travel
with the messages, so no result backend is needed).
"""

from __future__ import annotations

import logging

from leadgen.config import get_settings
from leadgen.db import session_scope
from leadgen.serp import dedupe as dedupe_logic
from leadgen.serp import ingest
from leadgen.tasks import task

log = logging.getLogger(__name__)


@task("leadgen.serp.ingest_operation")
def ingest_operation(operation_pk: int) -> list[int]:
    """Fetched SERP XML → results and companies; the ids of the companies it found."""
    with session_scope() as session:
        return ingest.ingest_operation(session, int(operation_pk), get_settings()).company_ids


@task("leadgen.serp.ingest_batch")
def ingest_batch(operation_pks: list[int]) -> list[int]:
    """Several fetched operations in one transaction (faster than one task each); the ids of
    the companies found, each once. If the batch fails, each operation gets its own
    transaction, so one bad operation cannot hold back the others."""
    settings = get_settings()
    try:
        with session_scope() as session:
            results = list(ingest.ingest_operations(session, operation_pks, settings).values())
    except Exception:  # noqa: BLE001 - retried one by one; a real fault raises there
        log.warning("serp ingest batch of %d failed; ingesting one by one",
                    len(operation_pks), exc_info=True)
        results = []
        for pk in sorted({int(pk) for pk in operation_pks}):
            with session_scope() as session:
                results.append(ingest.ingest_operation(session, pk, settings))
    return list(dict.fromkeys(cid for result in results for cid in result.company_ids))


@task("leadgen.serp.dedupe")
def dedupe(company_ids: list[int] | None = None) -> list[int]:
    """Mark duplicates (the given companies' groups, or all); the ids still active."""
    with session_scope() as session:
        return dedupe_logic.dedupe(session, company_ids, get_settings())
