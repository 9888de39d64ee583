"""Core statements compiled once and run on the DBAPI cursor (the refresh's hot path).

SQLAlchemy writes the SQL and converts the values: a statement is compiled once
per dialect by SQLAlchemy, and its parameters and result values go through the
column types' own bind and result processors, as ``Connection.execute`` would
send them. What is left out is ``Connection.execute``'s per-call machinery
(execution context, cache lookup, events, result objects): on a refresh that
cost more than the statements themselves. Errors come out as from
``Connection.execute``: SQLAlchemy's exception classes, a lost connection
invalidated. Statements run on the DBAPI
connection under the caller's SQLAlchemy ``Connection``, in its transaction,
and the caller commits through SQLAlchemy as before.

Not for everything: only statements whose every parameter the caller gives
(no column defaults filled in at execution: ``run`` refuses a missing name),
with no expanding (``IN``) parameters. ``tests/core/test_compiled_sql.py`` runs
each statement both ways on SQLite and PostgreSQL and holds them to the same
rows and the same database contents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.expression import Executable

__all__ = ["CompiledStatement"]

_Processor = Callable[[Any], Any]


class _ForDialect:
    """One statement compiled for one dialect: its text, parameter order, processors."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql: str = compiled.string
        # qmark (SQLite) takes a tuple in the text's order, a name repeated where the
        # text repeats it; pyformat (psycopg) takes a mapping.
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positional else None)
        # Each parameter by its name in the text: the caller's key for a required one
        # (``bindparam("rid")``), else the value the statement carries (``else_=None``).
        self.slots: dict[str, tuple[str | None, Any, _Processor | None]] = {}
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.slots[name] = ((bind.key, None, processor) if bind.required
                                else (None, bind.effective_value, processor))
        self.required = frozenset(key for key, _, _ in self.slots.values() if key is not None)
        columns = getattr(statement, "exported_columns", ())
        self.result: list[_Processor | None] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in columns]

    def named(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The statement's required parameters of ``values`` (every one is needed)."""
        missing = self.required.difference(values)
        if missing:
            raise KeyError(f"no value for {sorted(missing)}")
        return {key: values[key] for key in self.required}

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """The parameters as the DBAPI takes them: processed, in the paramstyle's shape."""
        given = self.named(values)
        processed = {}
        for name, (key, default, processor) in self.slots.items():
            value = default if key is None else given[key]
            processed[name] = value if processor is None else processor(value)
        if self.order is None:
            return processed
        return tuple(processed[name] for name in self.order)

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(value if process is None or value is None else process(value)
                     for process, value in zip(self.result, raw, strict=True))


class CompiledStatement:
    """A Core statement run on the DBAPI cursor of a SQLAlchemy ``Connection``."""

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        # Per dialect instance: its processors follow the engine's settings (a JSON
        # serializer); an engine disposed of takes its entry with it.
        self._by_dialect: WeakKeyDictionary[Dialect, _ForDialect] = WeakKeyDictionary()

    @property
    def statement(self) -> Executable:
        """The Core statement this runs."""
        return self._statement

    def _for(self, dialect: Dialect) -> _ForDialect:
        found = self._by_dialect.get(dialect)
        if found is None:
            found = self._by_dialect[dialect] = _ForDialect(self._statement, dialect)
        return found

    def run(self, conn: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute with ``values`` (every parameter by name); the rows it returns, if any."""
        compiled = self._for(conn.dialect)
        if _watched(conn):
            result = conn.execute(self._statement, compiled.named(values))
            return [tuple(row) for row in result] if result.returns_rows else []
        parameters = compiled.parameters(values)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, parameters)
            if cursor.description is None or not compiled.result:
                return []  # (a statement that names no columns returns none)
            return [compiled.row(raw) for raw in cursor.fetchall()]
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, exc, compiled.sql, parameters) from exc
        finally:
            cursor.close()

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per mapping of ``rows`` (one ``executemany``); no rows back."""
        compiled = self._for(conn.dialect)
        if _watched(conn):
            conn.execute(self._statement, [compiled.named(row) for row in rows])
            return
        parameters = [compiled.parameters(row) for row in rows]
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(compiled.sql, parameters)  # type: ignore[arg-type]
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, exc, compiled.sql, parameters) from exc
        finally:
            cursor.close()

    def first(self, conn: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row, or None."""
        rows = self.run(conn, values)
        return rows[0] if rows else None


def _watched(conn: Connection) -> bool:
    """Whether something listens to this connection's statements (tracing, Flask-
    SQLAlchemy's query recording, tests that count statements): then it runs through
    ``Connection.execute``, which tells them. (Listeners of other events, such as the
    revocation mirror's ``engine_disposed``, do not count.) A listener on the connection
    itself counts whatever it listens to: ``conn.dispatch`` joins the connection's and
    the engine's listeners anew on every look, the engine's own are cheap to read."""
    if conn._has_events:
        return True
    events = conn.engine.dispatch
    return bool(events.before_execute or events.after_execute
                or events.before_cursor_execute or events.after_cursor_execute)


def _wrapped(conn: Connection, exc: Any, sql: str, parameters: Any) -> StatementError:
    """The DBAPI's error as ``Connection.execute`` raises it: SQLAlchemy's class of it
    (``IntegrityError``, ``OperationalError``...), so callers catch what they always
    caught; a lost connection is invalidated, so the pool never hands it out again."""
    dbapi_connection = conn.connection.dbapi_connection
    disconnected = conn.dialect.is_disconnect(exc, dbapi_connection, None)
    if disconnected:
        conn.invalidate(exc)
    wrapped: StatementError = DBAPIError.instance(
        sql, parameters, exc, conn.dialect.loaded_dbapi.Error,
        hide_parameters=conn.engine.hide_parameters, connection_invalidated=disconnected,
        dialect=conn.dialect)
    return wrapped
