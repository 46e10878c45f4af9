"""The PostgreSQL registry (psycopg 3; install the ``postgres`` extra).

All tables live in one schema (``carbonbook`` by default; created if missing), so
several registries can share a database. See :mod:`carbonbook.registry._sql` for how
the cache and the database stay in step. Driver errors are raised as
:class:`~carbonbook.errors.RegistryUnavailable` (or
:class:`~carbonbook.errors.RegistryIntegrityError` for a constraint violation) with the
psycopg error chained.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec.json as _json

from carbonbook.errors import (
    ConcurrentModification,
    RegistryError,
    RegistryIntegrityError,
    RegistryInUse,
    RegistryUnavailable,
)
from carbonbook.registry._sql import _BLOBS, _INT_COLUMNS, Row, SqlRegistry, ddl, upgrade

try:
    import psycopg
    from psycopg import sql as _sql
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("PostgresRegistry needs psycopg 3: pip install 'carbonbook[postgres]'") from e


def _translate(e: Exception) -> RegistryError:
    if isinstance(e, psycopg.IntegrityError):
        return RegistryIntegrityError(f"postgres: {e}")
    return RegistryUnavailable(f"postgres: {e}")


class PostgresRegistry(SqlRegistry):
    """A registry stored in schema ``schema`` of the PostgreSQL database at ``dsn``
    (a libpq connection string or ``postgresql://`` URL)."""

    _ph = "%s"

    def __init__(self, dsn: str, *, schema: str = "carbonbook", connect_timeout: int = 5) -> None:
        super().__init__()
        self._json_sql: dict[str, bytes] = {}
        self._blob_sql = {*self._insert_run.values(), self._put_page}
        self.schema = schema
        self.lock_timeout = 10.0
        """Seconds :meth:`writing` waits for its turn to write."""
        self._lock_key = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:4], "big", signed=True)
        """The schema's advisory locks: (key, 1) while creating it, (key, 2) held by its writer (or
        shared by many), (key, 3) by its venue among many writers."""
        try:
            self._conn: psycopg.Connection[Any] = psycopg.connect(
                dsn, autocommit=True, connect_timeout=connect_timeout)
            with self._conn.transaction():
                # two registries creating one schema at once would collide in the catalog
                self._conn.execute(b"SELECT pg_advisory_xact_lock(%s, 1)", (self._lock_key,))
                self._conn.execute(_sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(_sql.Identifier(schema)))
                self._conn.execute(_sql.SQL("SET search_path TO {}").format(_sql.Identifier(schema)))
                fresh = [(table, col) for table, (_, col) in _BLOBS.items() if not self._has_column(table, col)]
                for stmt in ddl():
                    self._conn.execute(stmt.encode())
                for table, col in fresh:  # stored as they are: pglz made a commit's write of runs 5x slower
                    self._conn.execute(f"ALTER TABLE {table} ALTER COLUMN {col} SET STORAGE EXTERNAL".encode())
                for stmt in upgrade(self._has_column):
                    self._conn.execute(stmt.encode())
                for stmt, runs, old in list(self._regrouped(self._has_column)):
                    self._conn.cursor().executemany(stmt.encode(), runs)
                    self._conn.execute(f"DROP TABLE {old}".encode())
        except psycopg.Error as e:
            raise _translate(e) from e
        self.reload()

    def _has_column(self, table: str, column: str) -> bool:
        row = self._conn.execute(b"SELECT 1 FROM information_schema.columns WHERE table_schema = "
                                 b"current_schema() AND table_name = %s AND column_name = %s", (table, column))
        return row.fetchone() is not None

    def _read(self, sql: str) -> list[Row]:
        try:
            return self._conn.execute(sql.encode()).fetchall()
        except psycopg.Error as e:
            raise _translate(e) from e

    def _write(self, ops: list[tuple[str, list[Row]]], version: int) -> None:
        conn = self._conn
        try:
            with conn.transaction(), conn.cursor() as cur:
                row = cur.execute(b"SELECT v FROM meta WHERE k = 'version' FOR UPDATE").fetchone()
                if (row[0] if row else 0) != version:
                    raise ConcurrentModification(
                        f"schema {self.schema} was changed by another writer (version "
                        f"{row[0] if row else 0}, expected {version}); reload() and retry")
                for stmt, rows in ops:
                    if len(rows) > 1 and stmt.startswith("INSERT") and stmt not in self._blob_sql:
                        # one INSERT ... SELECT FROM the rows as one JSON array: psycopg's pipelined
                        # executemany costs ~40 us of Python per row, its arrays of ~2 us per value
                        cur.execute(self._from_json(stmt), (_json.encode(rows).decode(),))
                    else:
                        cur.executemany(stmt.encode(), rows)
                cur.execute(b"INSERT INTO meta (k, v) VALUES ('version', %s) "
                            b"ON CONFLICT (k) DO UPDATE SET v = excluded.v", (version + 1,))
        except psycopg.Error as e:
            raise _translate(e) from e

    def _from_json(self, stmt: str) -> bytes:
        """``stmt`` (``INSERT INTO t (cols) VALUES (%s, ...) rest``) as ``INSERT INTO t (cols)
        SELECT r->>0, ... FROM jsonb_array_elements(%s::jsonb) r rest``: one parameter, the rows
        as a JSON array of arrays (msgspec), taken apart by the server."""
        out = self._json_sql.get(stmt)
        if out is None:
            i = stmt.index(" VALUES (")
            head, tail = stmt[:i], stmt[stmt.index(")", i) + 1:]
            cols = head[head.index("(") + 1:head.rindex(")")].split(", ")
            values = ", ".join(f"(r->>{i}){'::bigint' if c in _INT_COLUMNS else ''}"
                               for i, c in enumerate(cols))
            out = self._json_sql[stmt] = (f"{head} SELECT {values} FROM jsonb_array_elements(%s::jsonb) r "
                                          f"WHERE true{tail}").encode()
        return out

    def claim_writer(self) -> None:
        """As :meth:`Registry.claim_writer`: a session-level advisory lock on the schema (released
        when the connection ends), then :meth:`reload`."""
        self._lock(b"SELECT pg_try_advisory_lock(%s, 2)", f"schema {self.schema}")
        self.reload()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One database transaction holding the ``version`` row lock (``SELECT ... FOR UPDATE``,
        waiting up to :attr:`lock_timeout` seconds: ConcurrentModification after) from before this
        registry reads its state (reloaded if another writer committed) to its commit, which
        joins it: writers queue on the lock instead of failing at commit, so one of many never
        starves. What :func:`carbonbook.registry.writers.retrying` runs each attempt in."""
        conn = self._conn
        lock_timeout = self.lock_timeout
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout * 1000)}".encode())
                row = conn.execute(b"SELECT v FROM meta WHERE k = 'version' FOR UPDATE").fetchone()
                if (row[0] if row else 0) != self._version:
                    self.reload()
                yield
        except psycopg.errors.LockNotAvailable as e:
            raise ConcurrentModification(f"schema {self.schema}: no turn to write in {lock_timeout} s") from e
        except psycopg.Error as e:
            raise _translate(e) from e

    def share_writer(self) -> None:
        """As :meth:`Registry.share_writer`: a shared session-level advisory lock on the schema,
        which :meth:`claim_writer`'s exclusive one excludes."""
        self._lock(b"SELECT pg_try_advisory_lock_shared(%s, 2)", f"schema {self.schema}")
        self.reload()

    def claim_venue(self) -> None:
        """Make this registry's the one venue among the schema's many writers (its checkpoint is
        one venue's): a session-level advisory lock, RegistryInUse while another registry holds it."""
        self._lock(b"SELECT pg_try_advisory_lock(%s, 3)", f"schema {self.schema} (another venue writes it)")

    def _lock(self, try_lock: bytes, where: str) -> None:
        """Take one of the schema's advisory locks with ``try_lock``; RegistryInUse(``where``) if it is held."""
        try:
            row = self._conn.execute(try_lock, (self._lock_key,)).fetchone()
        except psycopg.Error as e:
            raise _translate(e) from e
        if not (row and row[0]):
            raise RegistryInUse(where)

    def close(self) -> None:
        try:
            if not self._conn.closed:  # the server drops a session's locks only once its backend has exited
                self._conn.execute(b"SELECT pg_advisory_unlock_all()")
            self._conn.close()
        except psycopg.Error as e:  # pragma: no cover - close rarely fails
            raise _translate(e) from e
