"""The SQLite registry: the embedded default, one database file in WAL mode (stdlib ``sqlite3``).

See :mod:`carbonbook.registry._sql` for how the cache and the file stay in step. Driver
errors are raised as :class:`~carbonbook.errors.RegistryUnavailable` (or
:class:`~carbonbook.errors.RegistryIntegrityError` for a constraint violation) with the
``sqlite3`` error chained.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from typing import TextIO

from carbonbook.errors import (
    ConcurrentModification,
    RegistryError,
    RegistryIntegrityError,
    RegistryInUse,
    RegistryUnavailable,
)
from carbonbook.registry._sql import Row, SqlRegistry, ddl, upgrade


def _translate(e: sqlite3.Error) -> RegistryError:
    if isinstance(e, sqlite3.IntegrityError):
        return RegistryIntegrityError(f"sqlite: {e}")
    return RegistryUnavailable(f"sqlite: {e}")


class SQLiteRegistry(SqlRegistry):
    """A registry stored in the SQLite file at ``path`` (created if missing).

    ``synchronous`` is the SQLite ``PRAGMA synchronous`` level: ``NORMAL`` (the default)
    is durable across application crashes in WAL mode, ``FULL`` also across power loss.
    """

    _ph = "?"

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL") -> None:
        super().__init__()
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"bad synchronous level {synchronous!r}")
        self.path = os.fspath(path)
        self._claim: TextIO | None = None
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._conn.execute("BEGIN IMMEDIATE")
            for stmt in ddl(rowid=True, blob="BLOB"):
                self._conn.execute(stmt)
            for stmt in upgrade(self._has_column):
                self._conn.execute(stmt)
            for stmt, runs, old in list(self._regrouped(self._has_column)):
                self._conn.executemany(stmt, runs)
                self._conn.execute(f"DROP TABLE {old}")
            self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise RegistryUnavailable(f"sqlite: {e}: {os.path.abspath(self.path)}") from e
        self.reload()

    def _has_column(self, table: str, column: str) -> bool:
        return any(row[1] == column for row in self._conn.execute(f"PRAGMA table_info({table})"))

    def _read(self, sql: str) -> list[Row]:
        try:
            return self._conn.execute(sql).fetchall()
        except sqlite3.Error as e:
            raise _translate(e) from e

    def _write(self, ops: list[tuple[str, list[Row]]], version: int) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT v FROM meta WHERE k = 'version'").fetchone()
                if (row[0] if row else 0) != version:
                    raise ConcurrentModification(
                        f"{self.path} was changed by another writer (version {row[0] if row else 0}, "
                        f"expected {version}); reload() and retry")
                for sql, rows in ops:
                    conn.executemany(sql, rows)
                conn.execute("INSERT INTO meta (k, v) VALUES ('version', ?) "
                             "ON CONFLICT (k) DO UPDATE SET v = excluded.v", (version + 1,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise _translate(e) from e

    def claim_writer(self) -> None:
        """As :meth:`Registry.claim_writer`: an exclusive ``flock`` on ``PATH-writer`` (the kernel
        releases it when the process ends), then :meth:`reload`."""
        self._lock(fcntl.LOCK_EX)

    def share_writer(self) -> None:
        """As :meth:`Registry.share_writer`: a shared ``flock`` on ``PATH-writer``."""
        self._lock(fcntl.LOCK_SH)

    def _lock(self, mode: int) -> None:
        if self._claim is None and self.path not in ("", ":memory:"):
            claim = open(self.path + "-writer", "a")  # noqa: SIM115 - held until close()
            try:
                fcntl.flock(claim, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                claim.close()
                raise RegistryInUse(self.path) from None
            self._claim = claim
        self.reload()

    def close(self) -> None:
        try:
            self._conn.close()
        except sqlite3.Error as e:  # pragma: no cover - close rarely fails
            raise _translate(e) from e
        finally:
            if self._claim is not None:
                self._claim.close()
                self._claim = None
