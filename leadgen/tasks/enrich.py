"""Celery tasks of the enrich stage: pick due companies, crawl them in batches, hand companies
with a primary contact to the outreach stage (by task name)."""

from __future__ import annotations

import logging

from celery import group, signature

from leadgen.config import get_settings
from leadgen.db import session_scope
from leadgen.enrich import service
from leadgen.serp.dedupe import dedupe
from leadgen.tasks import task

log = logging.getLogger(__name__)

DISPATCH_BATCHES = 5  # batches enqueued per beat tick at most


def _batches(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


@task("leadgen.enrich.dispatch")
def dispatch() -> int:
    """Beat: enqueue due companies (new, or not found and due for a retry) in batches."""
    settings = get_settings()
    with session_scope() as session:
        ids = service.due_company_ids(session=session, settings=settings,
                                      limit=settings.enrich_batch_size * DISPATCH_BATCHES)
    if ids:
        fan_out(ids)
    return len(ids)


@task("leadgen.enrich.fan_out")
def fan_out(company_ids: list[int] | None) -> int:
    """Split company ids into ENRICH_BATCH_SIZE batches, one `leadgen.enrich.companies` each."""
    ids = sorted({int(i) for i in company_ids or []})
    if not ids:
        return 0
    batches = _batches(ids, get_settings().enrich_batch_size)
    group(companies.si(batch) for batch in batches).apply_async()
    return len(batches)


@task("leadgen.enrich.companies")
def companies(company_ids: list[int]) -> list[int]:
    """Claim, crawl and store one batch, dedupe by the emails found; returns the ids that became
    contacts_ready and are not duplicates."""
    settings = get_settings()
    outcomes = service.enrich_companies([int(i) for i in company_ids], settings)
    ready = [o.company_id for o in outcomes if o.status == service.READY]
    if ready:  # emails are known now: a company sharing one with an older company is a duplicate
        with session_scope() as session:
            ready = dedupe(session, ready, settings)
    log.info("enriched %d companies: %d ready, %d not found", len(outcomes), len(ready),
             sum(o.status == service.NOT_FOUND for o in outcomes))
    if ready:
        group(signature("leadgen.outreach.generate", args=(company_id,)) for company_id in ready
              ).apply_async()
    return ready
