"""Celery tasks of the intake stage (filled in by the stage's module)."""
