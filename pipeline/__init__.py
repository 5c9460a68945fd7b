"""Pure rendering: a project folder plus render options in, a narrated MP4 out.

Nothing here imports Celery, a database or an HTTP framework; `python -m pipeline` renders a
folder on its own, and `tasks/` drives the same stages one by one.
"""
