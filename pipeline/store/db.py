"""Opening the DuckDB file, transactions, and bulk writes through DuckDB's pandas/Arrow scan."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.store.schema import TABLE, TABLES, VIEWS, tables_sql


class StoreLockedError(RuntimeError):
    """Another process holds the database (DuckDB allows one writer, or many readers)."""


def connect(db: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the database (creating the schema when writable), with a clear error on locks."""
    db = Path(db)
    if read_only and not db.exists():
        raise FileNotFoundError(f"no database at {db}: run `callreview run` first")
    try:
        con = duckdb.connect(str(db), read_only=read_only)
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise StoreLockedError(
                f"{db} is in use by another process (DuckDB allows one writer or several "
                f"read-only readers, not both). Close other sessions on it and retry.\n{e}"
            ) from e
        raise
    if not read_only:
        con.execute(tables_sql())
        _add_new_columns(con)
        con.execute(VIEWS)
    return con


# Added columns that stored rows can fill from what they already hold (the same formula as the
# code that writes new rows), so the history has them without measuring any call again.
_FILLED_FROM_STORED = {
    ("call_figures", "agent_loudness_vs_customer_db"): (
        "agent_loudness_dbfs - customer_loudness_dbfs"  # pipeline/metrics.py
    ),
}


def _add_new_columns(con: duckdb.DuckDBPyConnection) -> None:
    """A database written by an older version gains the columns added since (as nulls, or
    computed from the row's stored figures where `_FILLED_FROM_STORED` says how)."""
    for table in TABLES:
        have = {r[0] for r in con.execute(f"DESCRIBE {table.name}").fetchall()}
        for name, sql_type in table.columns():
            if name not in have:
                con.execute(f"ALTER TABLE {table.name} ADD COLUMN {name} {sql_type}")
                formula = _FILLED_FROM_STORED.get((table.name, name))
                if formula:
                    con.execute(f"UPDATE {table.name} SET {name} = {formula}")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: a crash or an exception inside leaves the database as it was."""
    con.execute("BEGIN")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def write_frame(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, replace_key: str | None = None
) -> None:
    """Insert a frame by column name; rows with the same `replace_key` values go first.

    Only the table's own columns are written, so a frame may carry extra working columns.
    """
    if frame.empty:
        return
    columns = [c for c in TABLE[table].column_names() if c in frame.columns]
    con.register("_frame", frame[columns])
    try:
        if replace_key:
            con.execute(
                f"DELETE FROM {table} WHERE {replace_key} IN "
                f"(SELECT DISTINCT {replace_key} FROM _frame)"
            )
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _frame")
    finally:
        con.unregister("_frame")


def write_changed(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    scope: str,
    params: Sequence[object] = (),
) -> None:
    """Make the table's rows matching the SQL condition `scope` equal to `frame`: delete those
    no frame row equals, insert the frame rows no stored row equals (whole rows compared, NULLs
    equal). Same result as delete-then-insert; a night whose recomputed rows mostly come out as
    they were writes only the few that changed."""
    columns = TABLE[table].columns()
    names = [name for name, _ in columns]
    # Declared, not CREATE ... AS SELECT ... LIMIT 0: in DuckDB 2.0.0 a table made that way
    # inside a transaction keeps "empty" statistics, and a set operation or anti-join over it
    # then sees no rows once more than a row group (122,880 rows) is inserted.
    typed = ", ".join(f"{name} {sql_type}" for name, sql_type in columns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _new ({typed})")
    try:
        if not frame.empty:
            con.register("_frame", frame[[c for c in names if c in frame.columns]])
            try:
                con.execute("INSERT INTO _new BY NAME SELECT * FROM _frame")
            finally:
                con.unregister("_frame")
        same = " AND ".join(f"_new.{c} IS NOT DISTINCT FROM {table}.{c}" for c in names)
        con.execute(
            f"DELETE FROM {table} WHERE ({scope}) AND NOT EXISTS (SELECT 1 FROM _new WHERE {same})",
            list(params),
        )
        con.execute(
            f"INSERT INTO {table} BY NAME SELECT * FROM _new "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {same})"
        )
    finally:
        con.execute("DROP TABLE IF EXISTS _new")


def update_from_frame(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, key: tuple[str, ...]
) -> None:
    """Set the frame's other columns on the table's rows whose `key` columns match a frame row."""
    if frame.empty:
        return
    assignments = ", ".join(f"{c} = f.{c}" for c in frame.columns if c not in key)
    match = " AND ".join(f"{table}.{c} = f.{c}" for c in key)
    con.register("_frame", frame)
    try:
        con.execute(f"UPDATE {table} SET {assignments} FROM _frame f WHERE {match}")
    finally:
        con.unregister("_frame")


def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    con.execute(f"DELETE FROM {table}")
    write_frame(con, table, frame)


def to_json(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """An analyst's own SQL, on a read-only connection."""
    return con.sql(sql).df()
