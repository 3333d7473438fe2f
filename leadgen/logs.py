"""Logging: plain text or one JSON object per line (LOG_FORMAT=json), and the same record for
every task: name, id, duration and outcome."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from celery.signals import task_failure, task_postrun, task_prerun, task_retry

from leadgen.config import get_settings

log = logging.getLogger("leadgen.tasks")
_started: dict[str, float] = {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("task_name", "task_id", "duration_ms", "outcome"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    settings = get_settings()
    handler = logging.StreamHandler()
    if (fmt or settings.log_format) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or settings.log_level).upper())
    for noisy in ("httpx", "httpcore", "openai", "mail.log", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _on_prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


def _on_postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id or "", None)
    duration = round((time.monotonic() - started) * 1000) if started else None
    extra = {"task_name": getattr(task, "name", "?"), "task_id": task_id, "duration_ms": duration,
             "outcome": state}
    log.info("task %s %s in %s ms", extra["task_name"], state, duration, extra=extra)


def _on_failure(task_id: str | None = None, exception: BaseException | None = None, sender: Any = None,
                **_: Any) -> None:
    extra = {"task_name": getattr(sender, "name", "?"), "task_id": task_id, "outcome": "FAILURE"}
    log.error("task %s failed: %r", extra["task_name"], exception, extra=extra)


def _on_retry(request: Any = None, reason: Any = None, sender: Any = None, **_: Any) -> None:
    extra = {"task_name": getattr(sender, "name", "?"), "task_id": getattr(request, "id", None),
             "outcome": "RETRY"}
    log.warning("task %s retrying: %s", extra["task_name"], reason, extra=extra)


def install_task_logging() -> None:
    task_prerun.connect(_on_prerun, weak=False)
    task_postrun.connect(_on_postrun, weak=False)
    task_failure.connect(_on_failure, weak=False)
    task_retry.connect(_on_retry, weak=False)
