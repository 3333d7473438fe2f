"""Celery tasks of the search stage (filled in by the stage's module)."""
