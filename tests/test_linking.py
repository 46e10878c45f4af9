"""Linked registries through a transaction log (issue 15 item 4; DOMAIN.md 1 "ITL checks", 6).

One scenario runs across a memory, an SQLite and a PostgreSQL registry at once (JP, EU, CH):
transfers complete on both sides, an issuance that reuses another registry's serials is
refused, a recycled surrendered unit is refused in the other registry, the receiving scheme
must accept the units, the sender keeps its commitment period reserve, a failed receiving
side is compensated and a crash is recovered from the states written down. Hypothesis runs
random operations over two linked registries: serials are never active in two registries
and units are conserved per registry and in total.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonbook import UnitType
from carbonbook.errors import (
    DuplicateSerial,
    InsufficientUnits,
    OperationRefused,
    RegistryError,
    RegistryUnavailable,
)
from carbonbook.registry import AccountKind, BlockState, MemoryRegistry, Scheme, Serials, SQLiteRegistry
from carbonbook.registry._audit import active_blocks
from carbonbook.registry._state import StateRegistry
from carbonbook.registry.linking import TransactionLog

CER, EUA, JPA = UnitType.CER, UnitType.EUA, UnitType.JPA
ACTIVE, EXPORTED = BlockState.ACTIVE, BlockState.EXPORTED
JVETS = Scheme("JVETS", frozenset({JPA}), frozenset({CER}), 100)
EUETS = Scheme("EUETS", frozenset({EUA}), frozenset({CER}), 100)


def _pg() -> Iterator[StateRegistry]:
    if os.environ.get("CARBONBOOK_PG_SKIP") == "1":
        pytest.skip("CARBONBOOK_PG_SKIP=1")
    import psycopg
    from psycopg import sql

    from carbonbook.registry.postgres import PostgresRegistry

    dsn = os.environ.get("CARBONBOOK_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"cblink_{uuid.uuid4().hex[:8]}"
    reg = PostgresRegistry(dsn, schema=schema)
    try:
        yield reg
    finally:
        reg.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def pg() -> Iterator[StateRegistry]:
    yield from _pg()


def party(reg: StateRegistry, home: Scheme, *accounts: str) -> StateRegistry:
    """A registry with scheme CDM (CER; mirrored by every linked registry), ``home`` and ``accounts``
    (operators of ``home``), a retirement account ``ret``; the home scheme's cap is 10,000 a year."""
    reg.create_scheme(Scheme("CDM", frozenset({CER})))
    reg.set_cap("CDM", 2008, 10_000)
    reg.create_scheme(home)
    reg.set_cap(home.name, 2010, 10_000)
    for a in accounts:
        reg.open_account(a, scheme=home.name)
    reg.open_account("ret", AccountKind.RETIREMENT)
    return reg


def holdings(reg: StateRegistry) -> list[tuple[str, int, int, str, BlockState]]:
    return [(b.origin, b.start, b.end, b.holder, b.state) for b in reg.blocks()]


def test_transfers_across_memory_sqlite_and_postgres(tmp_path: Path, pg: StateRegistry) -> None:
    jp = party(MemoryRegistry(), JVETS, "mitsui")
    eu = party(SQLiteRegistry(tmp_path / "eu.db"), EUETS, "rwe")
    ch = party(pg, Scheme("CHETS", frozenset({UnitType.UKA}), frozenset({CER}), 100), "holcim")
    jp.issue("mitsui", CER, 100, scheme="CDM", period=2008, origin="CN", project="CDM-1851")
    itl = TransactionLog({"JP": jp, "EU": eu, "CH": ch})

    # proposed, checked, completed on both sides
    out = itl.transfer("JP", "mitsui", "EU", "rwe", CER, 60)
    assert (out.state, out.direction, out.registry, out.qty) == ("completed", "out", "EU", 60)
    inn = eu.external(out.id)
    assert inn is not None
    assert (inn.state, inn.direction, inn.account, inn.registry) == ("completed", "in", "rwe", "JP")
    assert holdings(jp) == [("CN", 1, 60, "mitsui", EXPORTED), ("CN", 61, 100, "mitsui", ACTIVE)]
    assert holdings(eu) == [("CN", 1, 60, "rwe", ACTIVE)]
    assert (jp.holding("mitsui", CER), eu.holding("rwe", CER)) == (40, 60)

    # an issuance that reuses another registry's serials is refused, in any of them
    for reg in (eu, ch):
        with pytest.raises(DuplicateSerial, match="no serial is issued twice"):
            reg.issue("rwe" if reg is eu else "holcim", CER, 10, scheme="CDM", period=2008, origin="CN",
                      start=95, project="P")

    # the receiving scheme must accept the unit type; the link must cover the issuing scheme
    eu.issue("rwe", EUA, 10, scheme="EUETS", period=2010, origin="EU")
    refused = itl.transfer("EU", "rwe", "JP", "mitsui", EUA, 10)
    assert (refused.state, refused.reason) == ("rejected", "not_accepted")
    assert eu.holding("rwe", EUA) == 10

    # round trip: CH -> EU revives EU's exported blocks, their other serials stay exported
    there = itl.transfer("EU", "rwe", "CH", "holcim", CER, 30)
    assert there.state == "completed" and ch.holding("holcim", CER) == 30
    back = itl.transfer("CH", "holcim", "EU", "rwe", CER, 5, serials=Serials("CN", 10, 14))
    assert back.state == "completed"
    assert [h for h in holdings(eu) if h[0] == "CN"] == [
        ("CN", 1, 9, "rwe", EXPORTED), ("CN", 10, 14, "rwe", ACTIVE), ("CN", 15, 30, "rwe", EXPORTED),
        ("CN", 31, 60, "rwe", ACTIVE)]

    # EU surrenders 20 of them (CN 31-50, its oldest block); a rogue compensation in JP revives
    # the units it exported (the 2010 recycling: units surrendered in one registry offered again
    # from another): the transaction log refuses them in the other registry
    eu.record_emissions("rwe", 2010, 20)
    eu.surrender("rwe", 2010, CER, 20, to="ret")
    assert [h for h in holdings(eu) if h[1] == 31] == [("CN", 31, 50, "ret", BlockState.SURRENDERED)]
    jp.export_compensate(out.id, "rogue")
    assert jp.holding("mitsui", CER) == 100
    before = holdings(ch)
    refused = itl.transfer("JP", "mitsui", "CH", "holcim", CER, 10, serials=Serials("CN", 31, 40))
    assert (refused.state, refused.reason) == ("rejected", "terminal_units")
    refused = itl.transfer("JP", "mitsui", "CH", "holcim", CER, 5, serials=Serials("CN", 51, 55))
    assert (refused.state, refused.reason) == ("rejected", "duplicate_serial")  # active in EU too
    ch_in = ch.external(refused.id)
    assert ch_in is not None and ch_in.state == "rejected"
    assert holdings(ch) == before and ch.holding("holcim", CER) == 25

    for reg in (jp, eu, ch):
        reg.check()
        assert active_blocks(reg.journal(), reg._ledgers.moves) == sorted(holdings(reg))
    again = SQLiteRegistry(tmp_path / "eu.db")  # written down for good
    assert again.external(back.id) == eu.external(back.id) and holdings(again) == holdings(eu)
    again.check()
    again.close()


def test_commitment_period_reserve_and_bad_input(tmp_path: Path) -> None:
    jp = party(MemoryRegistry(), JVETS, "mitsui")
    eu = party(SQLiteRegistry(tmp_path / "eu.db"), EUETS, "rwe")
    jp.issue("mitsui", CER, 100, scheme="CDM", period=2008, origin="CN", project="P")
    itl = TransactionLog({"JP": jp, "EU": eu})
    itl.set_reserve("JP", frozenset({CER, UnitType.AAU}), 50)
    refused = itl.transfer("JP", "mitsui", "EU", "rwe", CER, 51)
    assert (refused.state, refused.reason) == ("rejected", "commitment_period_reserve")
    assert itl.transfer("JP", "mitsui", "EU", "rwe", CER, 40).state == "completed"
    before = (holdings(jp), holdings(eu), list(jp.journal()), list(eu.journal()))
    for call, exc in [
        (lambda: itl.transfer("JP", "mitsui", "XX", "rwe", CER, 1), OperationRefused),
        (lambda: itl.transfer("JP", "mitsui", "JP", "mitsui", CER, 1), OperationRefused),
        (lambda: itl.transfer("JP", "mitsui", "EU", "rwe", CER, 61), InsufficientUnits),
        (lambda: itl.transfer("JP", "mitsui", "EU", "rwe", CER, 0), RegistryError),
        (lambda: itl.transfer("JP", "nobody", "EU", "rwe", CER, 1), RegistryError),
        (lambda: itl.transfer("JP", "mitsui", "EU", "rwe", CER, 2, serials=Serials("CN", 1, 2)), RegistryError),
        (lambda: itl.set_reserve("JP", frozenset({CER}), -1), OperationRefused),
        (lambda: itl.link("JP", jp), OperationRefused),
    ]:
        with pytest.raises(exc):
            call()
    assert (holdings(jp), holdings(eu), list(jp.journal()), list(eu.journal())) == before
    refused = itl.transfer("JP", "mitsui", "EU", "nobody", CER, 1)  # checked: the receiving account
    assert (refused.state, refused.reason) == ("rejected", "unknown_account")
    rogue = party(MemoryRegistry(), Scheme("HU", frozenset({UnitType.AAU})), "x")
    rogue.issue("x", CER, 10, scheme="CDM", period=2008, origin="CN", start=5, project="P")
    with pytest.raises(DuplicateSerial):  # its serials are JP's: it is not linked
        itl.link("HU", rogue)
    assert list(itl.registries) == ["JP", "EU"]


def test_a_failed_receiving_side_is_compensated_and_a_crash_recovered(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    jp = party(MemoryRegistry(), JVETS, "mitsui")
    eu = party(SQLiteRegistry(tmp_path / "eu.db"), EUETS, "rwe")
    jp.issue("mitsui", CER, 100, scheme="CDM", period=2008, origin="CN", project="P")
    itl = TransactionLog({"JP": jp, "EU": eu})

    def down(ext: int) -> int:
        raise RegistryUnavailable("sqlite: disk I/O error")

    monkeypatch.setattr(eu, "import_complete", down)
    out = itl.transfer("JP", "mitsui", "EU", "rwe", CER, 30)
    assert (out.state, out.reason) == ("compensated", "unavailable")
    inn = eu.external(out.id)
    assert inn is not None and (inn.state, inn.reason) == ("rejected", "unavailable")
    assert (jp.holding("mitsui", CER), eu.holding("rwe", CER)) == (100, 0)
    jp.check()
    assert active_blocks(jp.journal(), jp._ledgers.moves) == sorted(holdings(jp))  # type: ignore[attr-defined]
    monkeypatch.undo()

    def crash(*args: Any) -> None:
        raise SystemExit("killed between the two sides")

    monkeypatch.setattr(itl, "_arrive", crash)
    with pytest.raises(SystemExit):
        itl.transfer("JP", "mitsui", "EU", "rwe", CER, 40)
    monkeypatch.undo()
    assert jp.holding("mitsui", CER) == 60 and eu.holding("rwe", CER) == 0  # in flight
    (ext,) = itl.recover()
    assert [r.state for r in (jp.external(ext), eu.external(ext)) if r] == ["completed", "completed"]
    assert (jp.holding("mitsui", CER), eu.holding("rwe", CER)) == (60, 40)
    assert itl.recover() == []
    for reg in (jp, eu):
        reg.check()


ORIGINS = ("JP", "EU", "XX")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_operations_across_two_linked_registries(data: st.DataObject) -> None:
    regs = {"A": party(MemoryRegistry(), Scheme("S", frozenset({EUA}), frozenset({CER}), 100), "a1", "a2"),
            "B": party(MemoryRegistry(), Scheme("S", frozenset({EUA}), frozenset({CER}), 100), "b1", "b2")}
    itl = TransactionLog(regs)
    accounts = {"A": ("a1", "a2"), "B": ("b1", "b2")}
    issued = 0
    side = st.sampled_from(["A", "B"])
    ops = st.one_of(
        st.tuples(st.just("issue"), side, st.integers(0, 1), st.sampled_from(ORIGINS), st.integers(1, 40),
                  st.one_of(st.none(), st.integers(1, 120))),
        st.tuples(st.just("external"), side, st.integers(0, 1), st.integers(0, 1), st.integers(1, 20),
                  st.one_of(st.none(), st.tuples(st.sampled_from(ORIGINS), st.integers(1, 60)))),
        st.tuples(st.just("local"), side, st.integers(0, 1), st.integers(1, 50)),
        st.tuples(st.just("retire"), side, st.integers(0, 1), st.integers(1, 20)),
    )
    for op in data.draw(st.lists(ops, max_size=25)):
        name = op[1]
        reg = regs[name]
        mine = accounts[name][op[2]]
        try:
            if op[0] == "issue":
                reg.issue(mine, CER, op[4], scheme="CDM", period=2008, origin=op[3], start=op[5], project="P")
                issued += op[4]
            elif op[0] == "external":
                other = "B" if name == "A" else "A"
                serials = None if op[5] is None else Serials(op[5][0], op[5][1], op[5][1] + op[4] - 1)
                itl.transfer(name, mine, other, accounts[other][op[3]], CER, op[4], serials=serials)
            elif op[0] == "local":
                reg.transfer(mine, accounts[name][1 - op[2]], CER, op[3])
            else:
                reg.retire(mine, CER, op[3], to="ret")
        except RegistryError:
            pass
        for r in regs.values():
            r.check()
            assert active_blocks(r.journal(), r._ledgers.moves) == sorted(holdings(r))
        live: dict[tuple[str, int], str] = {}
        done = 0
        for n, r in regs.items():
            for b in r.blocks():
                if b.state is EXPORTED:
                    continue
                done += b.qty
                for serial in range(b.start, b.end + 1):  # never in two registries, active or terminal
                    assert (b.origin, serial) not in live, (b, live[b.origin, serial])
                    live[b.origin, serial] = n
        assert done == issued  # conserved in total: every unit issued is in exactly one registry
