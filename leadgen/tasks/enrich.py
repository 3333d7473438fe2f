"""Celery tasks of the enrich stage (filled in by the stage's module)."""
