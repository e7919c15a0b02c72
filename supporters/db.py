"""The database: the declarative base every model shares (constraint names, UTC datetimes,
``utcnow()``), the unbound ``db`` built on it, and statements every feature uses.

``supporters.extensions`` hands ``db`` out with the other extensions; it is made here, beside
its base, so that the helpers below need nothing from a module that imports this one.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, registry
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that goes in and comes out timezone-aware in UTC, on every database.

    PostgreSQL stores ``timestamptz``; SQLite stores naive text, so the zone is put back on read.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use supporters.db.utcnow() or an aware value")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Typed declarative base with named constraints and aware datetimes."""

    registry = registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={dt.datetime: UTCDateTime()},
    )


ModelT = TypeVar("ModelT", bound=Base)

db = SQLAlchemy(model_class=Base)

# Models subclass `Model`: at run time Flask-SQLAlchemy's class, to type checkers our typed Base.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


def assign_changed(row: object, values: Mapping[str, object]) -> None:
    """Set the attributes whose values differ.

    A row told what it already says stays clean, and flushing a clean session costs nothing;
    a dirty one is compared column by column (with the report tables' listeners) to find no
    change.
    """
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)


def rows_matched(result: sa.Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched: its result holds the cursor's row count."""
    if not isinstance(result, sa.CursorResult):
        raise TypeError(f"not the result of an UPDATE or DELETE: {result!r}")
    return result.rowcount


def enum_column(enum_cls: type, name: str) -> sa.Enum:
    """A portable enum column stored as its string values, checked by a named CHECK constraint."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum_cls),  # type: ignore[attr-defined]
        values_callable=lambda cls: [m.value for m in cls],
        validate_strings=True,
    )


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def configure_engine_options(config: dict[str, Any]) -> None:
    """Tune the engine for the configured database before Flask-SQLAlchemy creates it.

    SQLite runs in WAL mode (readers never block the writer) with a busy timeout, so concurrent
    writers wait for each other instead of failing with "database is locked"; its foreign keys
    are switched on, as PostgreSQL's always are.

    A statement's values never go into an error's message or SQL logging: they include session
    ids, sign-in token hashes and members' addresses, and errors are logged.
    """
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options.setdefault("hide_parameters", True)
    if is_sqlite(config["SQLALCHEMY_DATABASE_URI"]):
        connect_args = dict(options.get("connect_args") or {})
        connect_args.setdefault("timeout", 30)
        options["connect_args"] = connect_args
    else:
        options.setdefault("pool_pre_ping", True)
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options


@sa.event.listens_for(sa.Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    import sqlite3

    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def insert_ignoring_conflicts(
    model: type[Base], values: dict[str, Any], *, connection: sa.Connection | None = None
) -> bool:
    """INSERT a row unless it would break a unique constraint; True when a row was written.

    Lets the database, not a read-then-write in Python, decide races between concurrent requests
    (two confirmations of the same sign-up, the same webhook twice, the same vote from two tabs).
    It runs through the session (whose listeners follow writes), or on ``connection`` for a
    table nothing listens to.
    """
    if connection is None:
        statement = _insert_ignoring(db.session.get_bind().dialect.name, model.__table__)
        return db.session.execute(statement, values).first() is not None
    statement = _insert_ignoring(connection.dialect.name, model.__table__)
    return connection.execute(statement, values).first() is not None


@functools.cache
def _insert_ignoring(dialect: str, table: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING <key>`` for a table, built once.

    RETURNING says whether a row was written; rowcount cannot (the dialect may add its own
    RETURNING for the primary key, and then reports -1). The values come as parameters.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)


def insert_returning(
    model: type[ModelT],
    values: dict[str, Any],
    *,
    conflict_on: Sequence[str],
    computed: Callable[[], Mapping[str, sa.ColumnElement[Any]]] | None = None,
) -> ModelT | None:
    """INSERT a row unless one with the same ``conflict_on`` columns exists; the new row or None.

    The row comes back from RETURNING as a loaded object of the session, so the caller needs no
    read after the write. A conflict on another unique constraint raises, as an ORM flush would.
    ``values`` are sent as parameters. ``computed`` gives the columns that are SQL expressions
    (a scalar subquery looking up a foreign key, say), whose bind parameters are among
    ``values``: a module-level function, called once, when the statement is first built.
    """
    statement = _insert_returning(
        db.session.get_bind().dialect.name,
        model,
        tuple(conflict_on),
        computed,
    )
    return db.session.scalars(statement, values).first()


@functools.cache
def _insert_returning(
    dialect: str,
    model: type[Base],
    conflict_on: tuple[str, ...],
    computed: Callable[[], Mapping[str, sa.ColumnElement[Any]]] | None,
) -> Any:
    """``INSERT ... ON CONFLICT (conflict_on) DO NOTHING RETURNING <row>``, built once.

    Building an INSERT with its values inside costs SQLAlchemy more than running it: with the
    values as parameters, one statement serves every call and its compiled form is reused.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model)
    if computed is not None:
        statement = statement.values(dict(computed()))
    # "orm": one row, its values as parameters, the row back as an object. Left to choose, the
    # ORM takes a dict of parameters for a bulk INSERT and rebuilds the statement every call.
    return (
        statement.on_conflict_do_nothing(index_elements=list(conflict_on))
        .returning(model)
        .execution_options(dml_strategy="orm")
    )


def insert_many(
    model: type[Base], rows: Sequence[Mapping[str, Any]], *, returning_ids: bool = False
) -> Sequence[int]:
    """INSERT rows in one executemany; with ``returning_ids``, their new ids in row order.

    For imports of thousands of rows. A Core INSERT rather than the ORM's bulk one, which
    leaves out None values (so rows that differ in which values are None split into many small
    statements) and takes about half as long again per row. Every row must have the same keys.
    The session's listeners see one statement of many rows, not each row.
    """
    if not rows:
        return []
    table = model.__table__
    assert isinstance(table, sa.Table)
    statement = sa.insert(table)
    if not returning_ids:
        db.session.execute(statement, rows)
        return []
    returning = statement.returning(table.c.id, sort_by_parameter_order=True)
    return db.session.scalars(returning, rows).all()


def render_migration_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Write our column types into migrations as plain SQLAlchemy types.

    Migrations must not import application code that will change after they are written.
    """
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def currency_check() -> sa.CheckConstraint:
    """A table's ``currency`` column holds an ISO 4217 code in capitals (named ``currency_iso``
    by the naming convention, in every table that has one)."""
    return sa.CheckConstraint(
        "length(currency) = 3 AND currency = upper(currency)", name="currency_iso"
    )
