"""Celery tasks of the maintenance stage (filled in by the stage's module)."""
