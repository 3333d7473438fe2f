"""Celery tasks of the search stage: submit due queries, poll open operations, and hand a
fetched operation to SERP ingest → dedupe → enrichment (tasks named, not imported)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from celery import chain, group, signature

from leadgen.config import ConfigError, get_settings
from leadgen.db import session_scope
from leadgen.search import poll, submit
from leadgen.search.service import client_for, limiter_for
from leadgen.tasks import task

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@task("leadgen.search.dispatch_submits")
def dispatch_submits() -> int:
    """Beat: enqueue due queries during the night window (outside it: return quietly)."""
    settings = get_settings()
    now = _now()
    if not submit.in_submit_window(settings, now):
        log.debug("outside the night window: nothing submitted")
        return 0
    try:
        client_for(settings)
    except ConfigError as exc:
        log.error("search submit skipped: %s", exc)
        return 0
    with session_scope() as session:
        ids = submit.due_query_ids(session, now, settings.search_submit_batch_size)
    if ids:
        group(submit_query.si(query_id) for query_id in ids).apply_async()
    return len(ids)


@task("leadgen.search.submit_query")
def submit_query(query_id: int) -> str:
    settings = get_settings()
    with session_scope() as session:
        outcome = submit.submit_query(session, settings, query_id, client_for(settings),
                                      limiter_for(settings))
    return outcome.outcome


@task("leadgen.search.dispatch_polls")
def dispatch_polls() -> int:
    """Beat: enqueue operations due for a poll (any time of day)."""
    settings = get_settings()
    with session_scope() as session:
        stale = poll.claim_stale_fetched(session, settings, _now(), settings.search_poll_batch_size)
    for pk in stale:  # fetched, but the ingest task was lost: start it again (no Yandex needed)
        start_ingest(pk)
    try:
        client_for(settings)
    except ConfigError as exc:
        log.error("search poll skipped: %s", exc)
        return 0
    with session_scope() as session:
        pks = poll.due_operation_pks(session, _now(), settings.search_poll_batch_size)
    if pks:
        group(poll_operation.si(pk) for pk in pks).apply_async()
    return len(pks)


def start_ingest(operation_pk: int) -> None:
    """SERP ingest → dedupe → enrichment fan-out for a fetched operation."""
    chain(
        signature("leadgen.serp.ingest_operation", args=(operation_pk,), immutable=True),
        signature("leadgen.serp.dedupe"),
        signature("leadgen.enrich.fan_out"),
    ).apply_async()


@task("leadgen.search.poll_operation")
def poll_operation(operation_pk: int) -> str:
    settings = get_settings()
    with session_scope() as session:
        outcome = poll.poll_operation(session, settings, operation_pk, client_for(settings),
                                      limiter_for(settings))
    if outcome.outcome == "fetched":
        start_ingest(operation_pk)
    return outcome.outcome
