"""The compiled ledger (holds, reserved totals, counters and unit blocks as C records, its hold
changes' undo records its own) against the reference, operation by operation: the same results
and registry state after every step of a batch, and after a rollback anywhere in it (a nested
transaction that fails, a settlement that fails between its legs, the whole batch); in memory,
and in the rows SQLite writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from carbonbook import UnitType
from carbonbook.errors import RegistryError
from carbonbook.registry import AccountStatus, MemoryRegistry, Registry, SQLiteRegistry
from carbonbook.registry._ledger import Ledger
from registry_contract import world

COMPILED: Any = None
try:
    from carbonbook import _cvenue

    COMPILED = _cvenue.Ledger
except ImportError:  # the compiled parts were not built: nothing to compare
    pass

pytestmark = pytest.mark.skipif(COMPILED is None, reason="the compiled ledger was not built")

JPA = UnitType.JPA
HOLDS = st.integers(0, 5)
ACCOUNT = st.sampled_from(("a", "b", "c", "blk"))
SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_simple = st.one_of(
    st.tuples(st.just("reserve"), HOLDS, ACCOUNT, st.integers(-1, 400)),
    st.tuples(st.just("reserve_cash"), HOLDS, ACCOUNT, st.integers(-1, 40_000)),
    st.tuples(st.just("release"), HOLDS, st.none() | st.integers(-1, 300)),
    st.tuples(st.just("settle"), st.integers(0, 3), ACCOUNT, ACCOUNT, st.integers(1, 300),
              st.integers(1, 30_000), st.none() | HOLDS, st.none() | HOLDS, st.booleans()),
    st.tuples(st.just("deposit"), ACCOUNT, st.integers(1, 5_000)),
    st.tuples(st.just("transfer"), ACCOUNT, ACCOUNT, st.integers(1, 200)),
    st.tuples(st.just("status"), ACCOUNT, st.sampled_from((AccountStatus.OPEN, AccountStatus.BLOCKED))),
)
OPS = st.lists(st.one_of(_simple, st.tuples(st.just("nested"), st.lists(_simple, max_size=4), st.booleans())),
               max_size=25)


class Boom(Exception):
    """A failure injected into a transaction."""


def boom() -> None:
    raise Boom("between the legs")


def apply(reg: Any, op: tuple[Any, ...]) -> Any:
    """Carry out ``op`` on ``reg``: its result, or its refusal (or injected failure) by name."""
    kind, *args = op
    try:
        if kind == "reserve":
            return reg.reserve(args[0], args[1], JPA, args[2])
        if kind == "reserve_cash":
            return reg.reserve_cash(args[0], args[1], "JPY", args[2])
        if kind == "release":
            return reg.release(*args)
        if kind == "settle":
            trade, seller, buyer, qty, amount, unit_hold, cash_hold, crash = args
            if crash:
                reg._between_legs = boom
            try:
                return reg.settle_batch([(trade, seller, buyer, JPA, qty, "JPY", amount, unit_hold, cash_hold)])
            finally:
                reg.__dict__.pop("_between_legs", None)
        if kind == "deposit":
            return reg.deposit(args[0], "JPY", args[1])
        if kind == "transfer":
            return reg.transfer(args[0], args[1], JPA, args[2])
        if kind == "status":  # an account blocked or open again between settlements
            return reg.set_status(args[0], args[1])
        with reg.transaction():  # nested
            done = [apply(reg, inner) for inner in args[0]]
            if args[1]:
                raise Boom(repr(done))
            return done
    except (RegistryError, Boom) as e:
        return type(e).__name__, str(e)


def state(reg: Any) -> Any:
    """Everything the registry holds, the ledger's part as the reference's dicts read it."""
    return (dict(reg._holds.items()), {k: v for k, v in reg._ureserved.items() if v},
            {k: v for k, v in reg._creserved.items() if v}, dict(reg._cash.items()),
            {k: v for k, v in reg._held.items() if v}, {k: list(v) for k, v in reg._index.items() if v},
            dict(reg._blocks), dict(reg._settlements), dict(reg._meta.items()), list(reg.journal()),
            [reg.hold(h) for h in range(6)])


def lockstep(regs: list[Any], ops: list[tuple[Any, ...]], abort: bool) -> None:
    """Run ``ops`` in one transaction on each of ``regs``, comparing them after every step; then
    commit it, or (``abort``) fail it, after which each is as it was before."""
    before = [state(reg) for reg in regs]
    txs = [reg.transaction() for reg in regs]
    for tx in txs:
        tx.__enter__()
    for op in ops:
        outcomes = [apply(reg, op) for reg in regs]
        assert outcomes[0] == outcomes[1], op
        assert state(regs[0]) == state(regs[1]), op
    for tx in txs:
        if abort:
            tx.__exit__(Boom, Boom("abort"), None)
        else:
            tx.__exit__(None, None, None)
    after = [state(reg) for reg in regs]
    assert after[0] == after[1]
    if abort:
        assert after == before
    for reg in regs:
        reg.check()


def ledgered(base: type[Registry], ledger: Any) -> Callable[..., Any]:
    return type(base.__name__, (base,), {"_ledger_type": ledger})


@SETTINGS
@given(ops=OPS, abort=st.booleans())
def test_the_compiled_ledger_does_what_the_reference_does(ops: list[tuple[Any, ...]], abort: bool) -> None:
    regs = [world(ledgered(MemoryRegistry, ledger)()) for ledger in (Ledger, COMPILED)]
    lockstep(regs, ops, abort)
    lockstep(regs, ops, False)  # and again on what the first batch left


def tables(path: Path) -> dict[str, list[Any]]:
    """Every row of the database at ``path``, table by table."""
    with sqlite3.connect(path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {name: sorted(db.execute(f"SELECT * FROM {name}").fetchall(), key=repr) for name in names}


@settings(SETTINGS, max_examples=40)
@given(ops=OPS, abort=st.booleans())
def test_the_compiled_ledger_writes_the_reference_rows(ops: list[tuple[Any, ...]], abort: bool) -> None:
    with TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"{name}.db" for name in ("reference", "compiled")]
        regs = [world(ledgered(SQLiteRegistry, ledger)(path))
                for ledger, path in zip((Ledger, COMPILED), paths, strict=True)]
        try:
            lockstep(regs, ops, abort)
            lockstep(regs, ops, False)
            assert tables(paths[0]) == tables(paths[1])
        finally:
            for reg in regs:
                reg.close()  # type: ignore[attr-defined]


def test_the_compiled_tables_read_as_dicts() -> None:
    """The compiled ledger's holds, reserved totals, holdings, balances, counters and settlement
    records answer the dict operations the rule families and backends use as the reference's
    dicts do."""
    regs = [world(ledgered(MemoryRegistry, ledger)()) for ledger in (Ledger, COMPILED)]
    for reg in regs:
        reg.reserve(7, "a", JPA, 10)
        reg.reserve_cash(8, "b", "JPY", 500)
    ref, compiled = ([reg._holds, reg._ureserved, reg._creserved, reg._meta, reg._held, reg._cash]  # type: ignore[attr-defined]
                     for reg in regs)
    for r, c in zip(ref, compiled, strict=True):
        assert c == r and r == dict(c.items()) and len(c) == len(r) and sorted(c) == sorted(r)
        assert sorted(c.keys()) == sorted(r.keys()) and sorted(c.values()) == sorted(r.values())
    for r, c in zip(ref[::3], compiled[::3], strict=True):  # holds and counters: in a dict's order too
        assert list(c) == list(r) and list(c.values()) == list(r.values())
    holds, meta = compiled[0], compiled[3]
    assert holds[7] == ("a", "units", "JPA", 10) and holds.get(9) is None and 8 in holds and "x" not in holds
    holds[-3] = ("c", "units", "JPA", 4)
    assert list(holds) == [7, 8, -3] and holds.pop(-3) == ("c", "units", "JPA", 4) and holds.pop(-3, 0) == 0
    with pytest.raises(KeyError):
        del holds[-3]
    with pytest.raises(ValueError):
        holds[1] = ("a", "gold", "JPA", 1)
    ureserved = compiled[1]
    assert ureserved[("a", "JPA")] == ureserved.get(("a", JPA)) == 10 and ("a", "EUA") not in ureserved
    ureserved[("c", "JPA")] = 3
    assert ureserved.pop(("c", "JPA")) == 3 and ureserved.get(("c", "JPA"), 0) == 0
    held, cash = compiled[4], compiled[5]
    assert held[("a", "JPA")] == held[("a", JPA)] == 1000 and ("c", JPA) not in held
    cash[("c", "EUR")] = 0  # a balance of 0 is present (a row), unlike a reserved total of 0
    assert ("c", "EUR") in cash and cash.pop(("c", "EUR")) == 0 and cash.get(("c", "EUR")) is None
    assert meta.setdefault("day", 4) == 4 and meta["day"] == 4 and list(meta) == ["txid", "block", "day"]
    del meta["day"]
    assert meta.get("day") is None and meta.pop("day", None) is None
    for reg in regs:  # a trade settled, one refused
        reg.settle_batch([(5, "a", "b", JPA, 5, "JPY", 100, None, None),
                          (2, "a", "a", JPA, 5, "JPY", 100, None, None)])
    r, c = (reg._settlements for reg in regs)  # type: ignore[attr-defined]
    assert c == r and list(c) == list(r) == [5, 2] and list(c.values()) == list(r.values()) and len(c) == 2
    assert c[5] == r[5] and c.get(3) is None and 2 in c and "x" not in c and type(c[2]) is not type(c[5])
    c[3] = r[5]
    assert list(c) == [5, 2, 3] and c.pop(3) == r[5] and c.pop(3, None) is None and c == r
    with pytest.raises(TypeError):
        c["x"] = r[5]


def test_the_compiled_journal_reads_as_a_list_across_its_chunks() -> None:
    """The compiled journal (hold rows as C records, in chunks of 1,024 rows) reads as the
    reference's list (``len``, indexes, slices, iteration) through rows of every kind in several
    chunks, a batch rolled back across a chunk's end, and ``del journal[n:]``; it takes no
    Purse from outside the ledger."""
    regs = [world(ledgered(MemoryRegistry, ledger)()) for ledger in (Ledger, COMPILED)]
    for reg in regs:
        for h in range(900):  # a reserve and a release each of units and of cash, a deposit
            reg.reserve(h, "a", JPA, 1 + h % 5)
            reg.reserve_cash(h + 10_000, "b", "JPY", 10 + h)
            reg.release(h)
            reg.release(h + 10_000, 5)
            if h % 100 == 0:
                reg.deposit("c", "EUR", h + 1)
        try:
            with reg.transaction():  # rows 3,6xx to past 4,096: undone
                for h in range(300):
                    reg.reserve(h, "a", JPA, 1)
                    reg.release(h)
                raise Boom("rolled back")
        except Boom:
            pass
    ref, compiled = (reg._journal for reg in regs)  # type: ignore[attr-defined]
    assert 3 * 1024 < len(compiled) == len(ref) < 4096 and list(compiled) == ref
    assert compiled[1023:1026] == ref[1023:1026] and compiled[-1] == ref[-1] and compiled[::-7] == ref[::-7]
    with pytest.raises(IndexError):
        compiled[len(ref)]
    del compiled[2047:], ref[2047:]
    for reg in regs:
        reg.reserve(5_000, "a", JPA, 3)
    assert list(compiled) == ref and len(ref) == 2048
    with pytest.raises(TypeError):
        compiled.append(_cvenue.Purse())


def _alike(table: Any, ref: dict[Any, Any], op: str, key: int, value: Any) -> None:
    """``op`` (set, del, pop or get) of ``key`` on the C ``table`` and on the dict ``ref``, which must
    answer alike and keep the same length (del of an absent key reads it instead)."""
    if op == "set":
        table[key] = ref[key] = value
    elif op == "del" and key in ref:
        del table[key], ref[key]
    elif op == "pop":
        assert table.pop(key, None) == ref.pop(key, None)
    else:  # get, or del of an absent key
        assert table.get(key) == ref.get(key) and (key in table) == (key in ref)
    assert len(table) == len(ref)


@given(st.lists(st.tuples(st.sampled_from(["set", "del", "pop", "get"]),
                          st.integers(0, 200) | st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1)),
                max_size=400))
@SETTINGS
def test_the_gates_resting_buys_read_as_a_dict(ops: list[tuple[str, int, int]]) -> None:
    """The compiled gate's resting buys (C integers, probed linearly, removal shifting back) answer
    the dict operations the hold gate uses as a dict does, through growth and removals."""
    buys: Any = _cvenue.Gate.new_buys()
    ref: dict[int, int] = {}
    for op, key, value in ops:
        _alike(buys, ref, op, key, value)
    assert buys == ref and sorted(buys) == sorted(ref) and sorted(buys.items()) == sorted(ref.items())
    assert buys.get("x") is None and -1 not in buys and 2**64 not in buys
    with pytest.raises(KeyError):
        del buys[-1]
    with pytest.raises(ValueError):
        buys[-1] = 5
    with pytest.raises(ValueError):
        buys[5] = -1


@given(st.lists(st.tuples(st.sampled_from(["next", "next", "next", "set", "del", "pop", "get"]),
                          st.integers(-5, 300) | st.integers(-2**63, 2**63 - 1)), max_size=400))
@SETTINGS
def test_the_settlement_records_read_as_a_dict(ops: list[tuple[str, int]]) -> None:
    """The compiled ledger's settlement records (no index while the trade ids rise, found by
    bisection; the first id out of order builds it) answer as a dict does, in its order, through
    removals, growth and the change to an index."""
    records: Any = _cvenue.Ledger.new_settlements()
    ref: dict[int, tuple[int, str]] = {}
    top = 0
    for op, key in ops:
        if op == "next":  # a new trade: the id above every one so far
            top += key % 7 + 1
            op, key = "set", top
        _alike(records, ref, op, key, (key, op))
    assert records == ref and list(records) == list(ref) and list(records.items()) == list(ref.items())
    assert all(records[k] == v for k, v in ref.items()) and records.get("x") is None and 2**64 not in records


def test_a_hold_used_up_by_the_reference_and_taken_again_is_written_in_order() -> None:
    """A hold the database has, used up in a transaction by a settlement the compiled ledger hands
    to the reference (a hook between its legs), then taken again and given back by the compiled
    ledger, is deleted at the commit: its first change says it was there (the commit reads the
    hold changes in the order they were made when both ledgers made some)."""
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "venue.db"
        reg: Any = world(ledgered(SQLiteRegistry, COMPILED)(path))
        try:
            reg.reserve(1, "a", JPA, 10)
            assert len(tables(path)["holds"]) == 1
            with reg.transaction():
                reg._between_legs = lambda: None
                reg.settle_batch([(7, "a", "b", JPA, 10, "JPY", 100, 1, None)])
                del reg._between_legs
                reg.reserve(1, "a", JPA, 5)
                reg.release(1)
            assert reg.hold(1) == 0 and tables(path)["holds"] == []
        finally:
            reg.close()


def test_the_compiled_blocks_read_as_a_dict() -> None:
    """The compiled ledger's blocks answer the dict operations the rule families, queries and
    backends use as the reference's dict does, a block moved by a settlement read as the Block
    the reference made; an id that is not a row's (or a value that is not a plain Block) is kept
    aside, and settlements then go through the reference ledger, with the same effect."""
    regs = [world(ledgered(MemoryRegistry, ledger)()) for ledger in (Ledger, COMPILED)]
    for reg in regs:
        reg.transfer("a", "c", JPA, 10)
        reg.settle_batch([(1, "a", "b", JPA, 15, "JPY", 100, None, None)])
    ref, compiled = (reg._blocks for reg in regs)  # type: ignore[attr-defined]
    assert compiled == ref and ref == dict(compiled.items()) and len(compiled) == len(ref)
    assert sorted(compiled) == sorted(ref) and sorted(compiled.keys()) == sorted(ref.keys())
    assert sorted(compiled.values(), key=repr) == sorted(ref.values(), key=repr)
    bid = max(ref)
    assert compiled[bid] == ref[bid] and compiled.get(bid) == ref[bid] and compiled[bid].holder == "b"
    assert bid in compiled and bid + 1 not in compiled and "x" not in compiled and compiled.get(-1, 0) == 0
    taken = compiled.pop(bid)
    assert bid not in compiled and compiled.pop(bid, None) is None
    with pytest.raises(KeyError):
        del compiled[bid]
    compiled[bid] = taken
    assert compiled[bid] == taken and compiled == ref
    for reg in regs:  # an id no row has, and a value that is not a plain Block: kept aside
        reg._blocks[-5] = reg._blocks[bid]  # type: ignore[attr-defined]
        reg._blocks[bid] = (reg._blocks[bid],)  # type: ignore[attr-defined]
    assert compiled == ref and len(compiled) == len(ref) and compiled[-5] == ref[-5] and compiled.more
    outcomes = [apply(reg, ("settle", 2, "a", "b", 20, 200, None, None, False)) for reg in regs]
    assert outcomes[0] == outcomes[1] and state(regs[0]) == state(regs[1])
    for reg in regs:
        reg._blocks[bid] = reg._blocks[bid][0]  # type: ignore[attr-defined]
        del reg._blocks[-5]  # type: ignore[attr-defined]
        reg.check()
    assert not compiled.more and compiled == ref


def test_blocks_take_rows_up_to_a_million_ids_or_four_times_the_blocks() -> None:
    """A block id far past the compiled rows (a database load puts the blocks by id, many ids
    before it may be gone) takes a row below 2**20, or while the rows stay within four times the
    blocks; one past both is kept aside, and settlements then go to the reference ledger."""
    reg: Any = world(ledgered(MemoryRegistry, COMPILED)())
    blocks = reg._blocks
    b = blocks[1]
    blocks[900_000] = replace(b, id=900_000)
    blocks[1 << 22] = replace(b, id=1 << 22)
    assert list(blocks.more) == [1 << 22] and 900_000 in blocks and len(blocks) == 4
    assert sorted(blocks) == [1, 2, 900_000, 1 << 22]
