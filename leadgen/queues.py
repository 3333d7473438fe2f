"""Queues, routes and the beat schedule: every periodic task and every route in one place.

Workers subscribe to queues, so work can be re-split across machines without code changes.
"""

from __future__ import annotations

from enum import StrEnum
from datetime import timedelta
from typing import Any

from celery.schedules import crontab
from kombu import Queue as KombuQueue

from leadgen.config import Settings


class Queue(StrEnum):
    SEARCH = "search"  # sheet sync, Yandex submit/poll, SERP ingest, dedupe
    CRAWL = "crawl"  # company site enrichment
    LLM = "llm"  # email generation
    MAIL = "mail"  # SMTP delivery
    MAINTENANCE = "maintenance"  # dispatchers and the lease sweeper


# Task name prefix → queue. Names are explicit (`leadgen.<stage>.<action>`) so that moving a
# module never breaks messages in flight.
ROUTES: dict[str, Queue] = {
    "leadgen.intake.*": Queue.SEARCH,
    "leadgen.search.*": Queue.SEARCH,
    "leadgen.serp.*": Queue.SEARCH,
    "leadgen.enrich.*": Queue.CRAWL,
    "leadgen.outreach.generate*": Queue.LLM,
    "leadgen.outreach.deliver*": Queue.MAIL,
    "leadgen.outreach.*": Queue.MAINTENANCE,
    "leadgen.maintenance.*": Queue.MAINTENANCE,
}


def _every(minutes: int) -> crontab:
    if minutes < 60:
        return crontab(minute=f"*/{minutes}")
    return crontab(minute=0, hour=f"*/{max(1, minutes // 60)}")


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Periodic tasks. Crontab entries (interval schedules reset on a beat restart), each with
    an expiry of about 1.5× its period so a backlog of ticks is dropped, not replayed."""
    minute = crontab()  # every minute
    schedule: dict[str, dict[str, Any]] = {
        # Submit due queries to Yandex; the task itself checks the night window.
        "search-submit": {
            "task": "leadgen.search.dispatch_submits",
            "schedule": minute,
            "options": {"expires": 90},
        },
        # Poll open deferred operations (any time of day; results live 12 h).
        "search-poll": {
            "task": "leadgen.search.dispatch_polls",
            "schedule": minute,
            "options": {"expires": 90},
        },
        # Crawl companies that are new or due for a retry.
        "enrich-dispatch": {
            "task": "leadgen.enrich.dispatch",
            "schedule": minute,
            "options": {"expires": 90},
        },
        # Write and queue first emails for contacts that have none.
        "outreach-generate": {
            "task": "leadgen.outreach.dispatch_generation",
            "schedule": minute,
            "options": {"expires": 90},
        },
        # Send what is due; the task checks the working window itself.
        "outreach-deliver": {
            "task": "leadgen.outreach.deliver_due",
            "schedule": minute,
            "options": {"expires": 50},
        },
        # Free claims whose worker died, and mark messages stuck in `sending` for review.
        "maintenance-sweep": {
            "task": "leadgen.maintenance.sweep_leases",
            "schedule": crontab(minute="*/5"),
            "options": {"expires": 450},
        },
    }
    if settings.beat_interval_seconds:
        fast = timedelta(seconds=settings.beat_interval_seconds)
        for entry in schedule.values():
            entry["schedule"] = fast
            entry["options"]["expires"] = max(2, int(fast.total_seconds() * 1.5))
    if settings.sheet_sync_enabled:
        interval = settings.sheet_sync_interval_minutes
        schedule["intake-sheet-sync"] = {
            "task": "leadgen.intake.sync_sheet",
            "schedule": _every(interval),
            "options": {"expires": interval * 90},
        }
    return schedule


def route_for(name: str) -> str:
    for pattern, queue in ROUTES.items():
        prefix = pattern.rstrip("*")
        if name == pattern or (pattern.endswith("*") and name.startswith(prefix)):
            return queue.value
    return Queue.MAINTENANCE.value


def build_config(settings: Settings) -> dict[str, Any]:
    """The whole Celery configuration, derived from the settings."""
    eager = settings.runs_in_process
    return {
        "broker_url": settings.broker_url or "memory://",
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": settings.app_timezone,
        "enable_utc": True,
        "task_always_eager": eager,
        "task_eager_propagates": eager,
        "task_queues": [KombuQueue(queue.value) for queue in Queue],
        "task_default_queue": Queue.MAINTENANCE.value,
        "task_routes": {pattern: {"queue": queue.value} for pattern, queue in ROUTES.items()},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "task_track_started": False,
        "broker_connection_retry_on_startup": True,
        # Long enough for the longest task (a crawl batch); we never use ETAs for send times.
        "broker_transport_options": {"visibility_timeout": 3600},
        "beat_schedule": beat_schedule(settings),
        "worker_hijack_root_logger": False,
    }
