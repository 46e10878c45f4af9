"""The shipped example, examples/jvets-2010.jsonl: a JVETS market year replayed into a registry.

``carbonbook replay examples/jvets-2010.jsonl --registry sqlite:///...`` runs the setup (schemes,
caps, accounts, allocation, credits, cash), a trading day whose every trade settles, and the
true-up (verified emissions, surrender, a voluntary offset, banking). These tests pin its
outcomes exactly and check that the file is what examples/make_session.py writes.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest

from carbonbook._types import UnitType
from carbonbook.codec import DecodeFailure, json_decoder
from carbonbook.operations.cli import EXIT_OK, main
from carbonbook.registry import Registry, open_registry
from carbonbook.registry.base import BlockState
from carbonbook.venue.checkpoint import Checkpoint

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "jvets-2010.jsonl"


def make_session() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_session", ROOT / "examples" / "make_session.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_session"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def read_events(path: Path) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in path.read_bytes().splitlines()]


def log_records() -> list[Any]:
    """The log's lines as JSON objects; None for a line that is not a command."""
    out: list[Any] = []
    for line in EXAMPLE.read_bytes().split(b"\n")[:-1]:
        try:
            json_decoder.decode(line)
        except DecodeFailure:
            out.append(None)
        else:
            out.append(msgspec.json.decode(line))
    return out


class Run(msgspec.Struct):
    db: Path
    out: Path
    events: list[dict[str, Any]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    d = tmp_path_factory.mktemp("example")
    db, out = d / "jvets.db", d / "events.jsonl"
    assert main(["replay", str(EXAMPLE), "--registry", f"sqlite:///{db}", "--out", str(out),
                 "--quiet"]) == EXIT_OK
    return Run(db, out, read_events(out))


@pytest.fixture
def registry(run: Run) -> Iterator[Registry]:
    reg = open_registry(f"sqlite:///{run.db}")
    yield reg
    reg.close()


# -- the file ---------------------------------------------------------------------------


def test_shipped_log_is_what_make_session_writes() -> None:
    ms = make_session()
    lines, kinds = ms.generate()
    assert ms.render(lines) == EXAMPLE.read_bytes()
    assert len(lines) == 4000
    assert Counter(k == "ok" for k in kinds) == {True: 4000 - len(ms.BAD_LINES), False: len(ms.BAD_LINES)}


def test_commands_in_the_log() -> None:
    records = log_records()
    kinds = Counter(r["type"] if isinstance(r, dict) and isinstance(r.get("type"), str) else "bad"
                    for r in records)
    for registry_command, n in {"scheme": 4, "cap": 4, "account": 17, "issue": 15, "transfer": 18,
                                "deposit": 14, "business_day": 2, "emissions": 8, "surrender": 16,
                                "retire": 1, "carry_over": 1}.items():
        assert kinds[registry_command] == n, registry_command
    news = [r for r in records if isinstance(r, dict) and r.get("type") == "new"]
    market_buys = [r for r in news if r.get("order_type") == "market" and r["side"] == "buy"
                   and "price" not in r]
    assert sum("cap" not in r for r in market_buys) == 1  # the broker who forgot it
    assert {r.get("tif", "gtc") for r in news} == {"gtc", "ioc", "fok"}
    assert any(r.get("post_only") for r in news)
    assert {r.get("stp", "cancel_incoming") for r in news} == {"cancel_incoming", "cancel_resting",
                                                               "cancel_both"}


# -- the replay into a registry ------------------------------------------------------------


def test_event_counts(run: Run) -> None:
    events = run.events
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert Counter(e["type"] for e in events) == {
        "accepted": 2585, "cancelled": 907, "instrument_listed": 4, "modified": 479, "recorded": 93,
        "rejected": 137, "trade_settled": 1432, "trade": 1432,
    }
    assert Counter(e["reason"] for e in events if e["type"] == "rejected") == {
        "bad_price": 2, "bad_qty": 2, "cap_exceeded": 1, "duplicate_id": 1, "duplicate_symbol": 1,
        "insufficient_funds": 4, "insufficient_units": 36, "malformed": 27, "offset_limit": 1,
        "post_only": 53, "refused": 1, "same_account": 1, "terminal_units": 1, "unit_not_allowed": 1,
        "unknown_account": 1, "unknown_order": 3, "unknown_symbol": 1,
    }
    assert Counter(e["symbol"] for e in events if e["type"] == "trade") == {
        "JPA-2010": 547, "CER-CP1": 395, "JVER-FOREST": 220, "JCR-2010": 270,
    }


def test_every_trade_settles_right_after_it(run: Run) -> None:
    trades = {e["seq"]: e for e in run.events if e["type"] == "trade"}
    settled = [e for e in run.events if e["type"] == "trade_settled"]
    assert not [e for e in run.events if e["type"] == "settlement_failure"]
    assert sorted(e["trade_id"] for e in settled) == sorted(trades)
    assert all(e["seq"] > e["trade_id"] for e in settled)
    assert len({e["txid"] for e in settled}) == len(settled)


def test_compliance(run: Run, registry: Registry) -> None:
    ms = make_session()
    status = {name: registry.compliance(name, 2010) for name in ms.TARGETS}
    assert {n: c.status for n, c in status.items()} == {
        "tepco-01": "A", "kansai-epco": "A", "chubu-epco": "A", "nippon-steel": "A", "jfe-steel": "B",
        "toyota-motor": "A", "asahi-glass": "A", "kirin-brewery": "A",
    }
    for name, c in status.items():
        assert c.verified == c.obligation == ms.TARGETS[name].verified
        assert c.offsets <= c.verified // 10
    jfe = status["jfe-steel"]
    assert (jfe.surrendered, jfe.offsets, jfe.shortfall) == (291_469, 5_500, 18_301)
    assert (status["tepco-01"].offsets, status["toyota-motor"].offsets) == (9_862, 1_292)
    # an account outside the scheme has no emissions: status C
    assert registry.compliance("marubeni", 2010).status == "C"
    # the recorded events say the same: the last surrender of each account gives its status
    last: dict[str, str] = {}
    for e in run.events:
        if e["type"] == "recorded" and e["command"] == "surrender":
            last[e["seq"]] = e["detail"]
    details = list(last.values())
    assert details[-1] == "30850 of 30850 surrendered for 2010: status A"
    assert "291469 of 309770 surrendered for 2010: status B" in details
    refused = [e for e in run.events if e["type"] == "rejected" and e["reason"] == "offset_limit"]
    assert len(refused) == 1 and "tepco-01" in refused[0]["detail"]


def test_registry_check_and_conservation(registry: Registry) -> None:
    ms = make_session()
    registry.check()
    blocks = registry.blocks()
    for unit in (UnitType.JPA, UnitType.CER, UnitType.JVER, UnitType.JCR):
        mine = [b for b in blocks if b.unit is unit]
        assert registry.issued(unit) == sum(b.qty for b in mine)
    allocation = sum(t.allocation for t in ms.TARGETS.values())
    assert registry.issued(UnitType.JPA) == allocation == 1_866_660
    assert registry.holding(ms.ISSUANCE, UnitType.JPA) == 0
    terminal = {(b.state, b.holder) for b in blocks if b.state is not BlockState.ACTIVE}
    assert terminal == {(BlockState.SURRENDERED, ms.RETIREMENT), (BlockState.CANCELLED, ms.CANCELLATION)}
    surrendered = sum(b.qty for b in blocks if b.state is BlockState.SURRENDERED)
    assert surrendered == sum(registry.compliance(n, 2010).surrendered for n in ms.TARGETS)
    cancelled = [b for b in blocks if b.state is BlockState.CANCELLED]
    assert sum(b.qty for b in cancelled) == 1_000 and {b.unit for b in cancelled} == {UnitType.JVER}
    assert {b.project for b in cancelled} == {"JVER-R043-shimokawa-forest"}
    # banking: asahi-glass's JPA left after the surrender is of 2011 now
    asahi = [b for b in blocks if b.holder == "asahi-glass" and b.unit is UnitType.JPA
             and b.state is BlockState.ACTIVE]
    assert {b.period for b in asahi} == {2011} and sum(b.qty for b in asahi) == 1_960
    banked = [e for e in registry.journal() if e.kind == "carry_over"]
    assert [(e.account, e.qty, e.ref) for e in banked] == [("asahi-glass", 1_960, 2010)]
    # cash only changes hands: the deposits are all there is
    assert sum(registry.balance(a, "JPY") for a in ms.CASH) == sum(ms.CASH.values())


UNIT_OF = {"JPA-2010": UnitType.JPA, "CER-CP1": UnitType.CER, "JVER-FOREST": UnitType.JVER,
           "JCR-2010": UnitType.JCR}


class Holds(msgspec.Struct):
    new: dict[int, dict[str, Any]]  # order id -> its `new` record
    resting: dict[int, int]  # resting order id -> what it should hold (units, or price * qty yen)
    held: dict[int, int]  # accepted order id -> what the registry holds for it


@pytest.fixture(scope="module")
def holds(run: Run) -> Holds:
    records = [r for r in log_records() if isinstance(r, dict)]
    new = {r["id"]: r for r in records if r.get("type") == "new"}
    snap_path = run.out.with_suffix(".book.json")
    # the same log into the same database: nothing changes, and --snapshot gives the books
    assert main(["replay", str(EXAMPLE), "--out", str(run.out.with_suffix(".snap.jsonl")),
                 "--registry", f"sqlite:///{run.db}", "--snapshot", str(snap_path), "--quiet"]) == EXIT_OK
    resting: dict[int, int] = {}
    for sides in msgspec.json.decode(snap_path.read_bytes()).values():
        for price, oid, qty in sides["bids"]:
            resting[oid] = price * qty
        for _, oid, qty in sides["asks"]:
            resting[oid] = qty
    reg = open_registry(f"sqlite:///{run.db}")
    held = {e["id"]: reg.hold(e["id"]) for e in run.events if e["type"] == "accepted"}
    reg.close()
    return Holds(new, resting, held)


def test_resting_orders_hold_exactly_their_remainder(holds: Holds) -> None:
    assert len(holds.resting) == 203
    assert {oid: holds.held[oid] for oid in holds.resting} == holds.resting


def test_units_are_reserved_by_resting_sells_only(holds: Holds, registry: Registry) -> None:
    ms = make_session()
    for account in ms.CASH:
        for symbol, unit in UNIT_OF.items():
            units = sum(v for oid, v in holds.resting.items() if holds.new[oid]["account"] == account
                        and holds.new[oid]["side"] == "sell" and holds.new[oid]["symbol"] == symbol)
            assert registry.holding(account, unit) - registry.available(account, unit) == units
    sells = {oid for oid, r in holds.new.items() if r["side"] == "sell"}
    assert not {oid: h for oid, h in holds.held.items() if oid in sells and oid not in holds.resting and h}


def test_cash_reserved_is_the_sum_of_the_buy_holds(holds: Holds, registry: Registry) -> None:
    ms = make_session()
    for account in ms.CASH:
        mine = sum(h for oid, h in holds.held.items() if holds.new[oid]["account"] == account
                   and holds.new[oid]["side"] == "buy")
        assert registry.balance(account, "JPY") - registry.available_cash(account, "JPY") == mine


def test_no_hold_outlives_its_order(holds: Holds) -> None:
    leaked = {oid: h for oid, h in holds.held.items() if oid not in holds.resting and h}
    assert (len(leaked), sum(leaked.values())) == (0, 0)


def test_replaying_into_the_same_database_changes_nothing(run: Run) -> None:
    reg = open_registry(f"sqlite:///{run.db}")
    journal = list(reg.journal())
    position = Checkpoint(reg).position
    reg.close()
    again = run.out.with_suffix(".again.jsonl")
    assert main(["replay", str(EXAMPLE), "--registry", f"sqlite:///{run.db}", "--out", str(again),
                 "--quiet"]) == EXIT_OK
    assert again.read_bytes() == run.out.read_bytes()
    reg = open_registry(f"sqlite:///{run.db}")
    assert list(reg.journal()) == journal and Checkpoint(reg).position == position == len(run.events)
    reg.close()


@pytest.mark.parametrize("seed", ["1", "2"])
def test_replaying_in_another_process_changes_nothing(run: Run, tmp_path: Path, seed: str) -> None:
    """Another process hashes strings with another seed, so sets iterate in another order: the
    log's running digest must not depend on it (OpenScheme and OpenAccount carry sets)."""
    again = tmp_path / "events.jsonl"
    proc = subprocess.run([sys.executable, "-m", "carbonbook", "replay", str(EXAMPLE), "--registry",
                           f"sqlite:///{run.db}", "--out", str(again), "--quiet"],
                          env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert again.read_bytes() == run.out.read_bytes()


def test_memory_registry_gives_the_same_events(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    assert main(["replay", str(EXAMPLE), "--registry", "memory:", "--out", str(out), "--quiet"]) == EXIT_OK
    assert out.read_bytes() == run.out.read_bytes()


# -- the replay without a registry ----------------------------------------------------------


def test_without_a_registry(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    assert main(["replay", str(EXAMPLE), "--out", str(out), "--quiet"]) == EXIT_OK
    events = read_events(out)
    assert Counter(e["type"] for e in events) == {
        "accepted": 2609, "cancelled": 873, "instrument_listed": 4, "modified": 468, "rejected": 253,
        "trade": 1493,
    }
    no_registry = [e for e in events if e["type"] == "rejected" and e["reason"] == "no_registry"]
    registry_lines = [r for r in log_records() if isinstance(r, dict) and r.get("type") in {
        "scheme", "cap", "account", "issue", "transfer", "deposit", "business_day", "emissions",
        "surrender", "retire", "carry_over"}]
    assert len(no_registry) == len(registry_lines) == 100
