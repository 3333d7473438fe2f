"""Celery tasks of the SERP stage: ingest and dedupe."""
