"""The id index and the storage of resting orders, on every core.

The index contract (:class:`carbonbook.core.book.Index`): each core's ``new_index()`` keeps ids and
their entries as a dict does, in the order first set, whatever the ids (the compiled core's C
hash table included: sequential ids, ids sharing their low bits, the 64-bit extremes). And an
engine that is dropped frees its orders, however long its queues (the compiled core's queues
are linked lists through its orders, a reference cycle with their level that the book breaks).
"""

from __future__ import annotations

import gc
import random
import tracemalloc

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonbook import (
    CancelOrder,
    Command,
    Engine,
    ListInstrument,
    ModifyOrder,
    NewOrder,
    SelfTradePrevention,
    Side,
    UnitType,
)
from carbonbook import core as cores

_IDS = st.one_of(st.integers(0, 50), st.integers(0, 2**63 - 1), st.integers(0, 2**20).map(lambda i: i << 40),
                 st.sampled_from([0, 2**63 - 1, 2**32, 2**31 - 1]))
_ENTRIES = st.sampled_from(["filled", "cancelled", "bid", "x"])
_encode = msgspec.json.Encoder().encode


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sets=st.lists(st.tuples(_IDS, _ENTRIES), max_size=300), absent=st.lists(_IDS, max_size=20))
def test_an_index_keeps_ids_as_a_dict_does(core: str, sets: list[tuple[int, str]], absent: list[int]) -> None:
    index = cores.get(core).new_index()
    model: dict[int, str] = {}
    for oid, entry in sets:
        index[oid] = entry
        model[oid] = entry
        assert index[oid] == entry
    assert len(index) == len(model)
    assert list(index.items()) == list(model.items())
    assert list(index.values()) == list(model.values())
    for oid in [*absent, -1, 2**63]:
        assert (oid in index) == (oid in model)
        assert index.get(oid) == model.get(oid)
    assert index.get("7") is None and "7" not in index


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sets=st.lists(st.tuples(st.integers(0, 200), st.integers(-1, 3)), max_size=300))
def test_an_index_keeps_orders_as_a_dict_does(core: str, sets: list[tuple[int, int]]) -> None:
    """Orders as entries: of their own id (the compiled index names those by their place in
    memory), of another id, and one order put in two indexes; then replaced, and the table
    grown past them."""
    module = cores.get(core)
    index, other = module.new_index(), module.new_index()
    model: dict[int, object] = {}
    orders: dict[int, object] = {}
    in_other: dict[int, object] = {}
    # kind -1: a status; 0: an order of oid; 1: an order of oid + 1; 2: put in both; 3: oid's order again
    for oid, kind in sets:
        if kind == -1:
            entry: object = "filled"
        elif kind == 3 and oid in orders:
            entry = orders[oid]
        else:
            entry = orders[oid] = module.Order(oid + (kind == 1), "a", "X", Side.BUY, 5, 1, False,
                                               SelfTradePrevention.CANCEL_INCOMING)
            if kind == 2:
                other[oid] = entry
                other[oid + 1000] = "cancelled"
                in_other[oid], in_other[oid + 1000] = entry, "cancelled"
        index[oid] = entry
        model[oid] = entry
        assert index[oid] is entry
    assert len(index) == len(model)
    assert [(k, id(v)) for k, v in index.items()] == [(k, id(v)) for k, v in model.items()]
    assert all(index.get(k) is v and k in index for k, v in model.items())
    assert all(k not in index for k in range(201, 230))
    for oid in model:  # everything replaced by a status
        index[oid] = "cancelled"
    assert list(index.values()) == ["cancelled"] * len(model)
    assert [(k, id(v)) for k, v in other.items()] == [(k, id(v)) for k, v in in_other.items()]
    for oid in in_other:
        other[oid] = "filled"
        assert other[oid] == "filled"
    assert list(other.values()) == ["filled"] * len(in_other)


def test_an_index_grows_past_a_million_ids(core: str) -> None:
    index = cores.get(core).new_index()
    for oid in range(0, 3 << 20, 3):
        index[oid] = "filled"
    assert len(index) == 1 << 20
    assert index.get(3 * 777_777) == "filled" and 3 * 777_777 + 1 not in index
    assert next(iter(index.items())) == (0, "filled")


def test_an_index_is_read_and_set_while_it_grows(core: str) -> None:
    """Ids added past several growths (the compiled table moves its ids' slots into a table twice
    the size a few at a time, so lookups and changes meet ids in either), each add followed by
    lookups of present and absent ids and by changes of old entries: orders of their id put in
    (named by the compiled table) and replaced by a status or by another order of the id."""
    module = cores.get(core)
    rng = random.Random(5)
    index = module.new_index()
    model: dict[int, object] = {}
    ids: list[int] = []
    for n in range(9_000):
        oid = 7 * n + rng.randrange(7)  # runs of neighbouring ids, as an engine's
        entry: object = "filled" if n % 3 else module.Order(oid, "a", "X", Side.BUY, 5, 1, False,
                                                              SelfTradePrevention.CANCEL_INCOMING)
        index[oid] = model[oid] = entry
        ids.append(oid)
        for old in rng.sample(ids, min(3, len(ids))):
            assert index.get(old) is model[old] and old in index
            assert index.get(old + 7 * 9_000) is None
        old = ids[rng.randrange(len(ids))]
        entry = "cancelled" if rng.randrange(3) == 0 else module.Order(
            old, "b", "X", Side.SELL, 6, 2, False, SelfTradePrevention.CANCEL_INCOMING)
        index[old] = model[old] = entry
        assert index[old] is entry
    assert len(index) == len(model)
    assert [(k, id(v)) for k, v in index.items()] == [(k, id(v)) for k, v in model.items()]
    assert all(index.get(k) is v for k, v in model.items())


def test_an_index_takes_ids_below_its_largest_while_it_grows(core: str) -> None:
    """Ids added in no order (many below the largest so far, some negative) past several growths:
    a lookup meets ids below the largest id of the compiled core's old table in either table,
    and ids above it in the new one only; every id and absent neighbour answers as a dict."""
    module = cores.get(core)
    ids = [(i * 7_919) % 20_011 - 5_000 for i in range(20_011)]  # a permutation of -5000..15010
    index = module.new_index()
    model: dict[int, str] = {}
    for n, oid in enumerate(ids):
        assert oid not in index
        index[oid] = model[oid] = "filled" if n % 2 else "cancelled"
        for probe in (oid, ids[n // 2], ids[(n * 3) // 4]):
            assert index.get(probe) == model[probe]
        assert index.get(20_011) is None and (ids[n + 1] if n + 1 < len(ids) else -6_000) not in index
    assert [k for k, _ in index.items()] == ids


def test_a_deep_book_cancels_and_trades_while_its_index_grows(core: str) -> None:
    """Resting orders cancelled, filled and modified among new orders while the id index grows
    past 4,096 and 8,192 ids (on the compiled core, slots of either table): every event as
    the pure core's, and the book consistent."""
    commands: list[Command] = [ListInstrument("X", UnitType.EUA)]
    commands += [NewOrder(i, f"a{i % 5}", "X", Side.SELL if i % 2 else Side.BUY, 10,
                          price=1_000 + i % 40 if i % 2 else 900 - i % 40) for i in range(4_000)]
    rng = random.Random(8)
    next_id = 4_000
    for _ in range(6_000):
        r = rng.random()
        if r < 0.4:
            commands.append(CancelOrder(rng.randrange(next_id)))
        elif r < 0.5:
            commands.append(ModifyOrder(rng.randrange(next_id), price=950 + rng.randrange(20) * 2 + 1))
        else:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            commands.append(NewOrder(next_id, f"a{rng.randrange(5)}", "X", side, 10,
                                     price=rng.randrange(890, 1_050)))
            next_id += 1
    engine, reference = Engine(core=core), Engine(core="pure")
    events = [event for command in commands for event in engine.apply(command)]
    assert _encode(events) == _encode(reference.apply_all(commands))
    assert engine.state_hash() == reference.state_hash()
    engine.check()
    assert sum(1 for i in range(next_id) if engine.order(i) is not None) == next_id


def test_the_compiled_index_takes_64_bit_ids_only() -> None:
    if "compiled" not in cores.CORES:
        pytest.skip("the compiled core is not built here (.ci/run requires it)")
    index = cores.get("compiled").new_index()
    for bad in ("1", 2**63, 1.0, None):
        with pytest.raises(TypeError):
            index[bad] = "filled"
    with pytest.raises(KeyError):
        index[5]
    assert len(index) == 0


def test_a_dropped_engine_frees_its_orders(core: str) -> None:
    """A queue of 100,000 orders at one price (some dead, some filled), freed at once: no deep
    recursion and nothing left behind."""
    n = 100_000
    commands = [NewOrder(i, f"a{i % 7}", "X", Side.SELL, 10, price=5) for i in range(n)]
    cancels = [CancelOrder(i) for i in range(1, n, 3)]
    gc.collect()
    tracemalloc.start()
    engine = Engine(core=core)
    engine.apply_all([ListInstrument("X", UnitType.EUA), *commands, *cancels,
                      NewOrder(n, "buyer", "X", Side.BUY, 500, price=5)])
    best = engine.book("X").asks.best()
    assert best is not None and len(list(best.live())) == n - len(cancels) - 50
    held, _ = tracemalloc.get_traced_memory()
    del engine, best
    gc.collect()
    left, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert held > 40 * n
    assert left < n  # under a byte an order: nothing of the engine is left
