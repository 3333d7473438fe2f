"""leadgen: Yandex search → company sites → personal first emails, as a Celery task graph."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `celery -A leadgen worker` looks up `leadgen.app`; importing it lazily keeps
    # `import leadgen.<module>` light for the CLI and the tests.
    if name in {"app", "celery_app"}:
        from leadgen.celery_app import app

        return app
    raise AttributeError(name)
