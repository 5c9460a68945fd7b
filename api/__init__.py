"""The HTTP layer: a thin FastAPI app over `tasks/` (settings, storage, jobs) and `pipeline/`."""
