"""The registry contract against PostgreSQL.

Uses ``CARBONBOOK_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``); each
registry gets its own schema, dropped at teardown. When the server is unreachable these
tests FAIL; set ``CARBONBOOK_PG_SKIP=1`` to skip them explicitly instead.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator

import msgspec
import pytest

from carbonbook import UnitType
from carbonbook.errors import ConcurrentModification, RegistryInUse, RegistryUnavailable
from carbonbook.registry import Registry
from carbonbook.registry.base import Settled
from registry_contract import Factory, RegistryContract, fingerprint, stored_in_pages, world

if os.environ.get("CARBONBOOK_PG_SKIP") == "1":
    pytest.skip("CARBONBOOK_PG_SKIP=1", allow_module_level=True)

import psycopg

from carbonbook.registry.postgres import PostgresRegistry

DSN = os.environ.get("CARBONBOOK_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _drop(schemas: list[str]) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        for schema in schemas:
            drop = psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
            conn.execute(drop.format(psycopg.sql.Identifier(schema)))


@pytest.fixture
def pg_factory() -> Iterator[Callable[[], PostgresRegistry]]:
    run = uuid.uuid4().hex[:8]
    counter = itertools.count()
    made: list[PostgresRegistry] = []

    def make() -> PostgresRegistry:
        reg = PostgresRegistry(DSN, schema=f"cbtest_{run}_{next(counter)}")
        made.append(reg)
        return reg

    yield make
    for reg in made:
        reg.close()
    _drop([reg.schema for reg in made])


class TestPostgresRegistry(RegistryContract):
    @pytest.fixture
    def make_registry(self, pg_factory: Callable[[], PostgresRegistry]) -> Factory:
        return pg_factory

    @pytest.fixture
    def reopen(self) -> Callable[[Registry], Registry]:
        def again(reg: Registry) -> Registry:
            assert isinstance(reg, PostgresRegistry)
            fresh = PostgresRegistry(DSN, schema=reg.schema)
            return fresh

        return again


def test_unreachable_server_is_registry_unavailable() -> None:
    with pytest.raises(RegistryUnavailable, match="postgres") as info:
        PostgresRegistry("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)
    assert isinstance(info.value.__cause__, psycopg.Error)


def test_second_writer_is_detected(pg_factory: Callable[[], PostgresRegistry]) -> None:
    one = world(pg_factory())
    two = PostgresRegistry(DSN, schema=one.schema)
    try:
        two.transfer("a", "b", UnitType.JPA, 5)
        with pytest.raises(ConcurrentModification, match="reload"):
            one.transfer("a", "c", UnitType.JPA, 5)
        one.reload()
        one.transfer("a", "c", UnitType.JPA, 5)
        one.check()
    finally:
        two.close()


def test_one_claimed_writer_at_a_time(pg_factory: Callable[[], PostgresRegistry]) -> None:
    """``claim_writer()``: a second registry on the schema is refused until the first closes; the
    next claim loads what the first wrote. Schemas apart do not collide."""
    one = world(pg_factory())
    one.claim_writer()
    two = PostgresRegistry(DSN, schema=one.schema)
    other = pg_factory()
    try:
        with pytest.raises(RegistryInUse, match=f"schema {one.schema} is in use by another writer"):
            two.claim_writer()
        other.claim_writer()
        one.transfer("a", "b", UnitType.JPA, 5)
        one.close()
        two.claim_writer()
        assert two.holding("a", UnitType.JPA) == 995
    finally:
        two.close()


def test_a_journal_stored_one_row_per_entry_is_moved_into_runs(
        pg_factory: Callable[[], PostgresRegistry]) -> None:
    """A schema written before runs and pages (a ``journal`` table of one row per entry, a
    ``settlements`` table of one row per record, a ``blocks`` table of one row per block) opens with
    the same journal, records and blocks, moved into ``journal_runs``, ``settlement_runs`` and
    ``block_pages``, the old tables dropped."""
    one = world(pg_factory())
    one.transfer("a", "b", UnitType.JPA, 5)
    settled = one.settle(7, seller="a", buyer="b", unit=UnitType.JPA, qty=10, currency="JPY", amount=700)
    assert isinstance(settled, Settled)
    before, blocks = fingerprint(one), one.blocks()
    one.close()
    cols = "txid, kind, account, counterparty, unit, qty, currency, amount, ref, detail, actor, approver"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(one.schema)))
        conn.execute("DROP TABLE journal_runs")
        conn.execute("DROP TABLE settlement_runs")
        conn.execute("DROP TABLE block_pages")
        conn.execute("CREATE TABLE blocks (id BIGINT PRIMARY KEY, origin TEXT, unit TEXT, first BIGINT, "
                     "last BIGINT, holder TEXT, state TEXT, period BIGINT, scheme TEXT, project TEXT, "
                     "expiry BIGINT, project_type TEXT)")
        conn.cursor().executemany(f"INSERT INTO blocks VALUES ({', '.join(['%s'] * 12)})",
                                  [msgspec.structs.astuple(b) for b in blocks])
        conn.execute("CREATE TABLE settlements (trade_id BIGINT PRIMARY KEY, status TEXT, txid BIGINT, "
                     "seller TEXT, buyer TEXT, unit TEXT, qty BIGINT, currency TEXT, amount BIGINT, "
                     "reason TEXT, detail TEXT)")
        conn.execute("INSERT INTO settlements VALUES (7, 'settled', %s, 'a', 'b', 'JPA', 10, 'JPY', 700, NULL, "
                     "NULL)", (settled.txid,))
        conn.execute("CREATE TABLE journal (txid BIGINT PRIMARY KEY, kind TEXT, account TEXT, "
                     "counterparty TEXT, unit TEXT, qty BIGINT, currency TEXT, amount BIGINT, ref BIGINT, "
                     "detail TEXT, actor TEXT, approver TEXT)")
        conn.cursor().executemany(f"INSERT INTO journal ({cols}) VALUES ({', '.join(['%s'] * 12)})",
                                  [msgspec.structs.astuple(e)[:12] for e in before[1]])
    two = PostgresRegistry(DSN, schema=one.schema)
    try:
        assert fingerprint(two) == before and two.blocks() == blocks
        assert two.settlement(7) == settled
        assert two._read("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                         "current_schema() AND (table_name LIKE 'journal%' OR table_name LIKE 'settlement%' "
                         "OR table_name LIKE 'block%') ORDER BY table_name") == [
            ("block_pages",), ("journal_runs",), ("settlement_runs",)]
        two.check()
    finally:
        two.close()


def test_blocks_are_stored_in_pages(pg_factory: Callable[[], PostgresRegistry]) -> None:
    reg = world(pg_factory())

    def arm(page: int) -> None:
        reg._conn.execute("CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
                          "$$ BEGIN RAISE EXCEPTION 'boom'; END $$")
        reg._conn.execute(f"CREATE TRIGGER boom BEFORE INSERT ON block_pages FOR EACH ROW "
                          f"WHEN (NEW.page = {page}) EXECUTE FUNCTION boom()".encode())

    stored_in_pages(reg, lambda r: PostgresRegistry(DSN, schema=reg.schema), arm,
                    lambda: reg._conn.execute(b"DROP TRIGGER boom ON block_pages"), RegistryUnavailable)
