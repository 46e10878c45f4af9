"""The registry contract against the in-memory backend, on each ledger this installation has
(the reference and, when it was built, the compiled twin), whichever runs by default."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

import pytest

from carbonbook.registry import MemoryRegistry
from carbonbook.registry._ledger import Ledger
from carbonbook.registry._sql import RUN, _run_entries
from carbonbook.registry._store import _entry
from carbonbook.registry.base import Settled
from registry_contract import Factory, RegistryContract

LEDGERS: dict[str, Any] = {"reference": Ledger}
if find_spec("carbonbook._cvenue") is not None:
    from carbonbook import _cvenue

    LEDGERS["compiled"] = _cvenue.Ledger


class TestMemoryRegistry(RegistryContract):
    @pytest.fixture(params=sorted(LEDGERS))
    def make_registry(self, request: pytest.FixtureRequest) -> Factory:
        return type("MemoryRegistry", (MemoryRegistry,), {"_ledger_type": LEDGERS[request.param]})


def test_the_registry_runs_the_compiled_ledger_with_the_compiled_core() -> None:
    """The registries' hot path is the compiled ledger exactly when the compiled core runs
    (CARBONBOOK_PURE=1 runs this suite on the reference ledger)."""
    from importlib.util import find_spec

    from carbonbook import core
    from carbonbook.registry._ledger import Ledger

    ledger = type(MemoryRegistry()._ledger)
    compiled = core.NAME == "compiled" and find_spec("carbonbook._cvenue") is not None
    assert (ledger.__module__ == "carbonbook._cvenue") is compiled
    assert (ledger is Ledger) is not compiled


@pytest.mark.skipif("compiled" not in LEDGERS, reason="the compiled ledger was not built")
def test_the_compiled_journal_reads_as_the_reference_list() -> None:
    """The compiled ledger's journal (hold rows as C records) reads, slices, truncates and
    encodes its runs for an SQL commit (``wire``) as the reference's list of rows."""
    import msgspec

    from carbonbook._types import UnitType
    from registry_contract import world

    regs = [world(type("MemoryRegistry", (MemoryRegistry,), {"_ledger_type": LEDGERS[name]})())
            for name in ("reference", "compiled")]
    for reg in regs:
        with reg.transaction():  # more rows than a run stores
            for hold in range(RUN // 2 + 1):
                reg.reserve(hold, "a", UnitType.JPA, 1)
                reg.release(hold)
        with reg.transaction():
            reg.reserve(1, "a", UnitType.JPA, 300)
            reg.reserve_cash(2, "b", "JPY", 30_000)
            reg.release(1, 100)
            reg.settle(9, seller="a", buyer="b", unit=UnitType.JPA, qty=100, currency="JPY", amount=10_000,
                       unit_hold=1, cash_hold=2)
            reg.release(2)
    big = "x" * 40  # a name of 32 bytes or more is not a fixstr
    for reg in regs:
        reg.open_account(big)
        reg.deposit(big, "EUR", 2**62 + 1)
        with reg.transaction():  # a hold under a negative id (a pending transfer's) given back
            reg._put(reg._holds, -300, ("a", "units", "JPA", 5))  # type: ignore[attr-defined]
            reg._add(reg._ureserved, ("a", UnitType.JPA), 5)  # type: ignore[attr-defined]
        for hold in (0, 127, 128, 255, 256, 65_535, 65_536, 2**32, 2**62):  # each size of integer
            reg.reserve_cash(hold, big, "EUR", hold + 1)
            reg.release(hold)
        reg.release(-300)
    ref, compiled = (reg._journal for reg in regs)  # type: ignore[attr-defined]
    assert type(ref) is list and type(compiled) is not list
    assert len(compiled) == len(ref) and list(compiled) == ref
    assert compiled[-5:] == ref[-5:] and compiled[-1] == ref[-1] and compiled[::2] == ref[::2]
    encode = msgspec.msgpack.Encoder().encode
    assert len(ref) > RUN and any(type(row) is Settled for row in ref[-30:])  # a settlement's row among them
    for start in (0, len(ref) - 30, len(ref)):
        for run in (1, 2, 15, 16, 17, RUN) if start else (RUN,):  # each size of array header
            wire = regs[1]._ledger.wire(compiled, start, run, encode)  # type: ignore[attr-defined]
            assert wire == Ledger.wire(ref, start, run, encode)
            assert [e for _, data in wire for e in _run_entries(data)] == [_entry(r) for r in ref[start:]]
    with pytest.raises(IndexError):
        compiled[len(ref)]
    with pytest.raises(TypeError):
        del compiled[1]
    with pytest.raises(TypeError):
        del compiled[1:2]
    del compiled[len(ref) - 3:]
    del ref[len(ref) - 3:]
    assert list(compiled) == ref
    del compiled[:]
    assert len(compiled) == 0 and list(compiled) == []


@pytest.mark.skipif("compiled" not in LEDGERS, reason="the compiled ledger was not built")
def test_the_compiled_ledger_writes_settlements_as_the_reference() -> None:
    """An SQL commit's settlement records (``pack``: a run of named rows, a Settled record as its
    journal row, a SettlementFailed as its map) and a settlement's journal row (``wire``: its Entry's
    fields to the last not at its default, its names by index; a run of whole Entries, as stored
    before, reads the same) are the reference's bytes, values msgspec writes (a long or non-ASCII
    name, the largest int) included, and read back as they were."""
    import msgspec

    from carbonbook._types import UnitType
    from carbonbook.registry._sql import _run_records
    from carbonbook.registry.base import SettlementFailed

    records = [Settled(7, 3, "a", "b", UnitType.JPA, 10, "JPY", 700),
               Settled(2**63 - 1, 2**63 - 1, "s" * 300, "b\u00e9", UnitType.EUA, 2**63 - 1, "EUR", 2**63 - 1),
               SettlementFailed(8, "insufficient_units", "a has 5", "a", "b", "JPA", 10, "JPY", 1),
               Settled(9, 4, "a", "b", UnitType.CER, 1, "JPY" * 100, 1)]
    packed = _cvenue.Ledger.pack(records)
    assert packed == Ledger.pack(records)
    assert _run_records(packed) == records
    names = ["settle", "a", "b", "JPA", "JPY", "s" * 300, "b\u00e9", "EUA", "EUR", "CER", "JPY" * 100]
    assert msgspec.msgpack.decode(packed)[:2] == [1, names]
    failed = msgspec.msgpack.decode(msgspec.msgpack.encode(records[2]))  # a SettlementFailed as its map
    assert msgspec.msgpack.decode(packed)[2][::2] == [[3, 0, 1, 2, 3, 10, 4, 700, 7], failed]
    journal = _cvenue.Ledger.new_journal()
    for r in records:
        if type(r) is Settled:
            journal.append(r)
    encode = msgspec.msgpack.Encoder().encode
    wire = _cvenue.Ledger.wire(journal, 0, 65_536, encode)
    assert wire == Ledger.wire(list(journal), 0, 65_536, encode)
    assert _run_entries(wire[0][1]) == [_entry(r) for r in records if type(r) is Settled]
    assert msgspec.msgpack.decode(wire[0][1])[:2] == [1, names]
    assert msgspec.msgpack.decode(wire[0][1])[2][0] == [3, 0, 1, 2, 3, 10, 4, 700, 7]  # to ref, names by index
    old = encode([_entry(r) for r in records if type(r) is Settled])  # as carbonbook before 2026-12 stored them
    assert _run_entries(old) == _run_entries(wire[0][1])


@pytest.mark.skipif("compiled" not in LEDGERS, reason="the compiled ledger was not built")
def test_the_compiled_ledger_writes_pages_as_the_reference() -> None:
    """A page of blocks (``page``) is the reference's bytes, msgspec's list of the Blocks, when the
    compiled ledger writes the fields its rows do not hold from those it cached for a Block (the
    blocks settlements made from one of the seller's, written again), after a block of another
    Block took the slot, and for Blocks of every optional field (project, expiry, project type)."""
    from carbonbook._types import UnitType
    from carbonbook.registry.base import Scheme
    from registry_contract import world

    reg = world(type("MemoryRegistry", (MemoryRegistry,), {"_ledger_type": _cvenue.Ledger})())
    reg.create_scheme(Scheme("CDM", frozenset({UnitType.TCER}), frozenset()))
    reg.set_cap("CDM", 2010, 1_000)
    reg.issue("c", UnitType.JVER, 40, scheme="JVETS", period=2010, project="JV-002", project_type="E001")
    reg.issue("c", UnitType.TCER, 40, scheme="CDM", period=2010, project="CDM-7", expiry=2012)
    legs = (("a", "b", UnitType.JPA), ("c", "b", UnitType.JVER), ("c", "a", UnitType.TCER))
    for trade in range(90):  # blocks made by settlements from a's and c's
        seller, buyer, unit = legs[trade % 3]
        settled = reg.settle(trade, seller=seller, buyer=buyer, unit=unit, qty=1, currency="JPY", amount=1)
        assert type(settled) is Settled
    blocks = reg._blocks  # type: ignore[attr-defined]
    top = max(blocks) + 1
    assert {(b.project, b.expiry, b.project_type) for b in blocks.values()} >= {
        (None, None, None), ("JV-002", None, "E001"), ("CDM-7", 2012, None)}
    for _ in range(2):  # the cache empty, then full
        for lo in range(0, top, 32):
            assert _cvenue.Ledger.page(blocks, lo, lo + 32) == Ledger.page(dict(blocks.items()), lo, lo + 32)
