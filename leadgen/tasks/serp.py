"""Celery tasks of the SERP stage: ingest and dedupe.

Both return company ids for the next link of the chain started by the poll task:
`ingest_operation.si(pk) | dedupe.s() | leadgen.enrich.fan_out.s()` (chain results travel
with the messages, so no result backend is needed).
"""

from __future__ import annotations

from leadgen.config import get_settings
from leadgen.db import session_scope
from leadgen.serp import dedupe as dedupe_logic
from leadgen.serp import ingest
from leadgen.tasks import task


@task("leadgen.serp.ingest_operation")
def ingest_operation(operation_pk: int) -> list[int]:
    """Fetched SERP XML → results and companies; the ids of the companies it found."""
    with session_scope() as session:
        return ingest.ingest_operation(session, int(operation_pk), get_settings()).company_ids


@task("leadgen.serp.dedupe")
def dedupe(company_ids: list[int] | None = None) -> list[int]:
    """Mark duplicates (the given companies' groups, or all); the ids still active."""
    with session_scope() as session:
        return dedupe_logic.dedupe(session, company_ids, get_settings())
