"""Orchestration: settings, storage, the job table, and the Celery tasks that drive `pipeline/`."""
