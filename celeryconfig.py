"""Celery configuration, built from leadgen's settings (see leadgen/queues.py).

Celery reads this module by name: `app.config_from_object("celeryconfig")`.
"""

from leadgen.config import get_settings
from leadgen.queues import build_config

globals().update(build_config(get_settings()))
