"""Engine and sessions. SQLite gets WAL and a busy timeout; any other URL is used as given.

Prefork workers: a pooled connection must never cross a fork, so the engine is disposed in the
child right after fork (the parent keeps its connections).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel, create_engine

from tasks import models  # noqa: F401  (registers the tables on SQLModel.metadata)

BUSY_TIMEOUT_MS = 30_000
_engines: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def get_engine(url: str) -> Engine:
    """One engine per URL per process, with its tables created."""
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = make_engine(url)
        create_tables(engine)
        _engines[url] = engine
    return engine


CREATE_ATTEMPTS = 5


def create_tables(engine: Engine) -> None:
    """Create the missing tables. The API and the workers start at once on a new database, and
    `create_all` checks then creates: another process can create a table in between. Its
    "already exists" is that race, and the next pass finds the table and skips it."""
    for attempt in range(CREATE_ATTEMPTS):
        try:
            SQLModel.metadata.create_all(engine)
            return
        except DBAPIError as exc:
            if "already exists" not in str(exc) or attempt == CREATE_ATTEMPTS - 1:
                raise


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A short transaction: commit on success, roll back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _dispose_after_fork() -> None:
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_dispose_after_fork)
