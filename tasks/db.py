"""Engine and sessions. SQLite gets WAL and a busy timeout; any other URL is used as given.

Prefork workers: a pooled connection must never cross a fork, so the engine is disposed in the
child right after fork (the parent keeps its connections).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Column, event, inspect, literal, text
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.schema import ScalarElementColumnDefault
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


# What a database says when another process created the same table or column first.
_RACED = ("already exists", "duplicate column")


def create_tables(engine: Engine) -> None:
    """Create the missing tables, add the columns a newer release gave an existing table,
    and widen the string columns it made longer.

    The API and the workers start at once on a new database, and each check-then-create can
    race another process's: its "already exists" is that race, and the next pass finds the
    table (or column) and skips it."""
    for attempt in range(CREATE_ATTEMPTS):
        try:
            SQLModel.metadata.create_all(engine)
            add_missing_columns(engine)
            widen_columns(engine)
            return
        except DBAPIError as exc:
            if not any(raced in str(exc) for raced in _RACED) or attempt == CREATE_ATTEMPTS - 1:
                raise


class SchemaError(RuntimeError):
    """An existing table lacks a column that cannot be added in place."""


def add_missing_columns(engine: Engine) -> list[str]:
    """ALTER TABLE … ADD COLUMN for each model column an existing table lacks (a database
    made by an earlier release), filled with the column's default in the rows already there.
    Returns them as 'table.column'. Additive changes only: nothing is dropped or retyped."""
    added: list[str] = []
    inspector = inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            with engine.begin() as connection:
                connection.execute(text(_add_column(engine, table.name, column)))
            added.append(f"{table.name}.{column.name}")
    return added


def widen_columns(engine: Engine) -> list[str]:
    """ALTER each string column an existing table holds narrower than the model says (a
    database made by an earlier release: `job_tasks.name` was 32 characters), as
    'table.column'. Widening only: a column the model has narrowed is left as it is.

    SQLite has nothing to widen: it keeps a VARCHAR's length as a name only and stores longer
    text as it is (and the table models are not validated against `max_length` either), so
    there the declared lengths are documentation; PostgreSQL refuses a longer value."""
    if engine.dialect.name == "sqlite":
        return []
    widened: list[str] = []
    inspector = inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {column["name"]: column["type"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            wanted = getattr(column.type, "length", None)
            found = getattr(present.get(column.name), "length", None)
            if wanted is None or found is None or found >= wanted:
                continue
            with engine.begin() as connection:
                connection.execute(text(_widen_column(engine.dialect, table.name, column)))
            widened.append(f"{table.name}.{column.name}")
    return widened


def _widen_column(dialect: Dialect, table: str, column: Column[Any]) -> str:
    quote = dialect.identifier_preparer.quote
    typed = column.type.compile(dialect=dialect)
    if dialect.name == "postgresql":
        # Widening a varchar rewrites nothing in PostgreSQL: the rows and indexes stay.
        return f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column.name)} TYPE {typed}"
    raise SchemaError(
        f"table {table}'s column {column.name} is narrower than {typed}, which "
        f"{dialect.name} is not known here to widen in place (SQLite and PostgreSQL are): "
        "widen it by hand"
    )


def _add_column(engine: Engine, table: str, column: Column[Any]) -> str:
    dialect = engine.dialect
    quote = dialect.identifier_preparer.quote
    parts = [quote(column.name), column.type.compile(dialect=dialect)]
    default = column.default
    if isinstance(default, ScalarElementColumnDefault):
        filled = literal(default.arg).compile(
            dialect=dialect, compile_kwargs={"literal_binds": True}
        )
        parts.append(f"DEFAULT {filled}")
    elif not column.nullable:
        raise SchemaError(
            f"table {table} has no column {column.name}, which has no default to fill the rows "
            "already there: migrate it by hand or start with a new database"
        )
    if not column.nullable:
        parts.append("NOT NULL")
    return f"ALTER TABLE {quote(table)} ADD COLUMN {' '.join(parts)}"


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
