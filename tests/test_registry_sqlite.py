"""The registry contract against SQLite (a WAL-mode file per registry), plus driver errors."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from carbonbook import UnitType
from carbonbook.errors import ConcurrentModification, RegistryIntegrityError, RegistryInUse, RegistryUnavailable
from carbonbook.registry import Registry, SQLiteRegistry
from carbonbook.registry._sql import ADDED_COLUMNS
from carbonbook.registry.base import Entry, Settled, SettlementFailed, SettlementRecord
from registry_contract import Factory, RegistryContract, fingerprint, stored_in_pages, world


class TestSQLiteRegistry(RegistryContract):
    @pytest.fixture
    def make_registry(self, tmp_path: Path) -> Iterator[Factory]:
        made: list[SQLiteRegistry] = []
        counter = itertools.count()

        def make() -> Registry:
            reg = SQLiteRegistry(tmp_path / f"reg{next(counter)}.db")
            made.append(reg)
            return reg

        yield make
        for reg in made:
            reg.close()

    @pytest.fixture
    def reopen(self) -> Callable[[Registry], Registry]:
        def again(reg: Registry) -> Registry:
            assert isinstance(reg, SQLiteRegistry)
            return SQLiteRegistry(reg.path)

        return again


def test_wal_mode(tmp_path: Path) -> None:
    reg = SQLiteRegistry(tmp_path / "r.db")
    assert reg._read("PRAGMA journal_mode") == [("wal",)]
    reg.close()


def test_driver_errors_are_registry_errors(tmp_path: Path) -> None:
    with pytest.raises(RegistryUnavailable, match="sqlite") as info:
        SQLiteRegistry(tmp_path / "missing-dir" / "r.db")
    assert isinstance(info.value.__cause__, sqlite3.Error)
    assert str(info.value).endswith(str(tmp_path / "missing-dir" / "r.db"))  # the file it tried
    reg = world(SQLiteRegistry(tmp_path / "r.db"))
    reg._conn.execute("DROP TABLE cash")
    before = fingerprint(reg)[0]
    with pytest.raises(RegistryUnavailable, match="no such table"):
        reg.deposit("a", "JPY", 5)
    assert reg.balance("a", "JPY") == 1_000 and fingerprint(reg)[0] == before


def test_second_writer_is_detected(tmp_path: Path) -> None:
    one = world(SQLiteRegistry(tmp_path / "r.db"))
    two = SQLiteRegistry(tmp_path / "r.db")
    two.transfer("a", "b", UnitType.JPA, 5)
    with pytest.raises(ConcurrentModification, match="reload"):
        one.transfer("a", "c", UnitType.JPA, 5)
    assert one.holding("a", UnitType.JPA) == 1000  # rolled back in the cache too
    one.reload()
    one.transfer("a", "c", UnitType.JPA, 5)
    one.check()
    assert one.holding("a", UnitType.JPA) == 990


def test_one_claimed_writer_at_a_time(tmp_path: Path) -> None:
    """``claim_writer()``: a second registry on the file is refused until the first closes; the next
    claim loads what the first wrote."""
    one = world(SQLiteRegistry(tmp_path / "r.db"))
    one.claim_writer()
    two = SQLiteRegistry(tmp_path / "r.db")
    with pytest.raises(RegistryInUse, match=r"r\.db is in use by another writer"):
        two.claim_writer()
    one.transfer("a", "b", UnitType.JPA, 5)
    one.close()
    two.claim_writer()
    assert two.holding("a", UnitType.JPA) == 995
    two.close()


def test_a_database_without_the_later_columns_opens(tmp_path: Path) -> None:
    """A registry file written before schemes had phases, borrowing, offset tables and links,
    compliance rows a borrowed count, blocks a project type, deadlines a reporting day, and
    before the allocation, credit-use and missed-report tables, opens: the columns and tables are
    added, keeping its old rules. Its journal, one row per entry without actor and approver, and
    its settlement records, one row each, are moved into runs, its blocks, one row each without a
    project type, into pages (the old tables dropped)."""
    path = tmp_path / "old.db"
    reg = world(SQLiteRegistry(path))
    reg.record_emissions("a", 2010, 7)
    reg.set_deadline("JVETS", 2010, 5)
    records = [reg.settle(7, seller="a", buyer="b", unit=UnitType.JPA, qty=10, currency="JPY", amount=700),
               reg.settle(8, seller="a", buyer="b", unit=UnitType.JPA, qty=10**6, currency="JPY", amount=1)]
    settled, failed = records
    assert isinstance(settled, Settled) and isinstance(failed, SettlementFailed)
    reg.transfer("a", "b", UnitType.JPA, 5)
    before, blocks = fingerprint(reg), reg.blocks()
    reg.close()  # type: ignore[attr-defined]
    conn = sqlite3.connect(path)
    for table, column, _ in ADDED_COLUMNS:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    for table in ("allocations", "credit_use", "missed", "journal_runs", "settlement_runs", "block_pages"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("CREATE TABLE blocks (id INTEGER PRIMARY KEY, origin TEXT, unit TEXT, first BIGINT, "
                 "last BIGINT, holder TEXT, state TEXT, period BIGINT, scheme TEXT, project TEXT, "
                 "expiry BIGINT)")
    conn.executemany("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [(b.id, b.origin, b.unit, b.start, b.end, b.holder, b.state, b.period, b.scheme, b.project,
                       b.expiry) for b in blocks])
    conn.execute("CREATE TABLE settlements (trade_id INTEGER PRIMARY KEY, status TEXT, txid BIGINT, "
                 "seller TEXT, buyer TEXT, unit TEXT, qty BIGINT, currency TEXT, amount BIGINT, reason TEXT, "
                 "detail TEXT)")
    conn.executemany("INSERT INTO settlements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [(7, "settled", settled.txid, "a", "b", "JPA", 10, "JPY", 700, None, None),
                      (8, "failed", None, "a", "b", "JPA", 10**6, "JPY", 1, failed.reason, failed.detail)])
    conn.execute("CREATE TABLE journal (txid INTEGER PRIMARY KEY, kind TEXT, account TEXT, counterparty TEXT, "
                 "unit TEXT, qty BIGINT, currency TEXT, amount BIGINT, ref BIGINT, detail TEXT)")
    conn.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [(e.txid, e.kind, e.account, e.counterparty, e.unit, e.qty, e.currency, e.amount, e.ref,
                       e.detail) for e in before[1]])
    conn.commit()
    conn.close()
    again = SQLiteRegistry(path)
    assert fingerprint(again) == before and again.blocks() == blocks
    assert [again.settlement(7), again.settlement(8)] == records
    assert again._read("SELECT name FROM sqlite_master WHERE name LIKE 'journal%' OR name LIKE 'settlement%' "
                       "OR name LIKE 'block%' ORDER BY name") == [("block_pages",), ("journal_runs",),
                                                                   ("settlement_runs",)]
    assert again.compliance("a", 2010).borrowed == 0
    again.surrender("a", 2010, UnitType.JPA, 7, to="ret")
    assert [type(r).__name__ for r in again.pass_days(0, 6)] == ["Final"] * 3  # no reporting deadline
    again.check()


def test_blocks_with_and_without_project_fields_are_stored_as_they_are(tmp_path: Path) -> None:
    """Blocks with and without a project, an expiry or a project type, in one page, read back the same."""
    from carbonbook.registry import Scheme

    reg = SQLiteRegistry(tmp_path / "reg.db")
    reg.create_scheme(Scheme("CDM", frozenset({UnitType.EUA, UnitType.CER, UnitType.TCER})))
    reg.set_cap("CDM", 2008, 10_000)
    reg.open_account("a")
    reg.open_account("b")
    reg.issue("a", UnitType.EUA, 100, scheme="CDM", period=2008)
    with reg.transaction():
        reg.issue("a", UnitType.CER, 50, scheme="CDM", period=2008, project="CDM-1", project_type="hydro")
        reg.issue("a", UnitType.TCER, 30, scheme="CDM", period=2008, project="AR-1", expiry=2012)
        reg.transfer("a", "b", UnitType.EUA, 60)
    blocks = reg.blocks()
    assert {(b.project, b.expiry, b.project_type) for b in blocks} == {
        (None, None, None), ("CDM-1", None, "hydro"), ("AR-1", 2012, None)}
    again = SQLiteRegistry(reg.path)
    assert again.blocks() == blocks
    again.check()
    reg.close()
    again.close()


def test_blocks_are_stored_in_pages(tmp_path: Path) -> None:
    reg = world(SQLiteRegistry(tmp_path / "r.db"))

    def arm(page: int) -> None:
        reg._conn.execute(f"CREATE TRIGGER boom BEFORE INSERT ON block_pages WHEN NEW.page = {page} "
                          "BEGIN SELECT RAISE(ABORT, 'boom'); END")

    stored_in_pages(reg, lambda r: SQLiteRegistry(reg.path), arm,
                    lambda: reg._conn.execute("DROP TRIGGER boom"), RegistryIntegrityError)
    reg.close()


@pytest.mark.parametrize("form", ["rows", "maps"])
def test_older_runs_read_the_same(tmp_path: Path, form: str) -> None:
    """Runs of journal rows and of settlement records are stored as runs of named rows (a Settled
    record as its journal row); a registry that stored each journal row as the array of its Entry's
    fields and a Settled record as the array of its fields (``rows``: 2026-12 until named rows), or a
    settlement's journal row and its Settled record as the record's map (``maps``: carbonbook before
    2026-12), reads the same journal and records."""
    import msgspec
    from msgspec.structs import astuple

    from carbonbook.registry._sql import _run_entries, _run_records
    from carbonbook.registry._store import _stored

    reg = world(SQLiteRegistry(tmp_path / "r.db"))
    with reg.transaction():
        reg.reserve(1, "a", UnitType.JPA, 10)
        reg.reserve_cash(2, "b", "JPY", 700)
        records = [reg.settle(7, seller="a", buyer="b", unit=UnitType.JPA, qty=10, currency="JPY", amount=700,
                              unit_hold=1, cash_hold=2),
                   reg.settle(8, seller="a", buyer="b", unit=UnitType.JPA, qty=10**6, currency="JPY", amount=1)]
    assert [type(r) for r in records] == [Settled, SettlementFailed]
    before = fingerprint(reg)
    (data,), = reg._read("SELECT records FROM settlement_runs")
    assert msgspec.msgpack.decode(data)[:2] == [1, ["settle", "a", "b", "JPA", "JPY"]]
    assert msgspec.msgpack.decode(data)[2][0] == [records[0].txid, 0, 1, 2, 3, 10, 4, 700, 7]
    assert _run_records(data) == records
    assert all(data[:2] == b"\x93\x01" for (data,) in reg._read("SELECT entries FROM journal_runs"))
    reg.close()
    conn = sqlite3.connect(tmp_path / "r.db")
    old = msgspec.msgpack.Encoder().encode

    def as_stored(r: Entry | SettlementRecord) -> object:
        if type(r) is SettlementFailed:
            return r
        if type(r) is Settled:
            return astuple(r) if form == "rows" else r
        assert type(r) is Entry
        if form == "rows" or r.kind != "settle":
            return _stored(r)
        return Settled(r.ref, r.txid, r.account, r.counterparty, UnitType(r.unit), r.qty, r.currency,  # type: ignore[arg-type]
                       r.amount)

    for last, data in conn.execute("SELECT last, entries FROM journal_runs").fetchall():
        conn.execute("UPDATE journal_runs SET entries = ? WHERE last = ?",
                     (old([as_stored(e) for e in _run_entries(data)]), last))
    for first, data in conn.execute("SELECT first, records FROM settlement_runs").fetchall():
        conn.execute("UPDATE settlement_runs SET records = ? WHERE first = ?",
                     (old([as_stored(r) for r in _run_records(data)]), first))
    conn.commit()
    conn.close()
    again = SQLiteRegistry(tmp_path / "r.db")
    stored = again._read("SELECT entries FROM journal_runs")
    kinds = {type(r) for (data,) in stored for r in msgspec.msgpack.decode(data)}
    assert kinds == ({list, dict} if form == "maps" else {list})  # the old form
    assert fingerprint(again) == before
    assert [again.settlement(7), again.settlement(8)] == records
    again.check()
    again.close()
