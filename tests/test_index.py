"""The id index and the storage of resting orders, on every core.

The index contract (:class:`carbonbook.core.book.Index`): each core's ``new_index()`` keeps ids and
their entries as a dict does, in the order first set, whatever the ids (the compiled core's C
hash table included: sequential ids, ids sharing their low bits, the 64-bit extremes). And an
engine that is dropped frees its orders, however long its queues (the compiled core's queues
are linked lists through its orders, a reference cycle with their level that the book breaks).
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonbook import CancelOrder, Engine, ListInstrument, NewOrder, SelfTradePrevention, Side, UnitType
from carbonbook import core as cores

_IDS = st.one_of(st.integers(0, 50), st.integers(0, 2**63 - 1), st.integers(0, 2**20).map(lambda i: i << 40),
                 st.sampled_from([0, 2**63 - 1, 2**32, 2**31 - 1]))
_ENTRIES = st.sampled_from(["filled", "cancelled", "bid", "x"])


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
