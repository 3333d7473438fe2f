"""The Celery application. Tasks live in `leadgen.tasks.*`; routes and beat in `leadgen.queues`."""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from leadgen.config import Settings
from leadgen.db import dispose_engines
from leadgen.logs import configure_logging, install_task_logging
from leadgen.queues import build_config

TASK_MODULES = [
    "leadgen.tasks.intake",
    "leadgen.tasks.search",
    "leadgen.tasks.serp",
    "leadgen.tasks.enrich",
    "leadgen.tasks.outreach",
    "leadgen.tasks.maintenance",
]

app = Celery("leadgen", include=TASK_MODULES)
app.config_from_object("celeryconfig")
install_task_logging()


def reconfigure(settings: Settings) -> None:
    """Apply new settings to the running app (tests and the demo)."""
    app.conf.update(build_config(settings))


@worker_process_init.connect
def _fresh_engines(**_kwargs: object) -> None:
    # A prefork child must not reuse the parent's database connections.
    dispose_engines()
    configure_logging()


@setup_logging.connect
def _logging(**_kwargs: object) -> None:
    # Workers and beat log through leadgen's handler (text or JSON, LOG_FORMAT).
    configure_logging()
