"""Celery tasks of the outreach stage (filled in by the stage's module)."""
