"""Primary auctions on a venue: bids hold cash, allocations settle against it (issue 4 item 4)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from carbonbook._types import UnitType
from carbonbook.codec import json_decoder
from carbonbook.commands import Command
from carbonbook.events import AllocationFailed, AllocationSettled, AuctionCleared, Event, Rejected
from carbonbook.registry import MemoryRegistry, Registry, SQLiteRegistry
from carbonbook.venue import Venue

JPA = UnitType.JPA

SETUP = [
    {"type": "scheme", "name": "JVETS", "allowances": ["JPA"]},
    {"type": "cap", "scheme": "JVETS", "period": 2010, "cap": 10_000},
    {"type": "account", "account": "moe", "kind": "issuance"},
    {"type": "account", "account": "tepco"},
    {"type": "account", "account": "kepco"},
    {"type": "account", "account": "poor"},
    {"type": "deposit", "account": "tepco", "currency": "JPY", "amount": 5_000_000},
    {"type": "deposit", "account": "kepco", "currency": "JPY", "amount": 5_000_000},
    {"type": "deposit", "account": "poor", "currency": "JPY", "amount": 100_000},
]
AUCTION = {"type": "auction", "auction": "A1", "unit": "JPA", "volume": 3000, "seller": "moe",
           "scheme": "JVETS", "period": 2010, "lot": 1000, "seed": 7}
BIDS = [
    {"type": "bid", "auction": "A1", "id": 1, "account": "tepco", "price": 1200, "qty": 2000},
    {"type": "bid", "auction": "A1", "id": 2, "account": "kepco", "price": 1100, "qty": 2000},
    {"type": "bid", "auction": "A1", "id": 3, "account": "poor", "price": 1500, "qty": 1000},
    {"type": "bid", "auction": "A1", "id": 4, "account": "kepco", "price": 1000, "qty": 1000},
]
CLOSE = {"type": "auction_close", "auction": "A1"}


def commands(*records: dict[str, object]) -> list[Command]:
    return [json_decoder.decode(msgspec.json.encode(r)) for r in records]


def run(reg: Registry, *records: dict[str, object]) -> list[Event]:
    return Venue(reg).apply_all(commands(*records))


def test_bids_hold_cash_and_winners_pay_the_clearing_price() -> None:
    reg = MemoryRegistry()
    venue = Venue(reg)
    venue.apply_all(commands(*SETUP, AUCTION, *BIDS[:2]))
    assert reg.hold(1) == 2_400_000 and reg.hold(2) == 2_200_000
    assert reg.available_cash("kepco", "JPY") == 2_800_000
    answers = venue.apply_all(commands(BIDS[2], BIDS[3]))
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in answers] == [
        ("Rejected", "insufficient_funds"), ("Accepted", None)]
    assert reg.hold(3) == 0 and reg.hold(4) == 1_000_000
    result_events = venue.apply_all(commands(CLOSE))
    result = result_events[0]
    assert isinstance(result, AuctionCleared) and result.price == 1100 and result.volume_sold == 3000
    assert [(a.id, a.account, a.qty) for a in result.allocations] == [(1, "tepco", 2000), (2, "kepco", 1000)]
    settled = result_events[1:]
    assert [(type(e), getattr(e, "id", None)) for e in settled] == [(AllocationSettled, 1),
                                                                     (AllocationSettled, 2)]
    assert [e.seq for e in settled] == [result.seq + 1, result.seq + 2]
    # units issued under the scheme's cap and delivered; cash at the clearing price; every hold released
    assert reg.issued(JPA) == 3000 and reg.holding("moe", JPA) == 0
    assert (reg.holding("tepco", JPA), reg.balance("tepco", "JPY")) == (2000, 5_000_000 - 2000 * 1100)
    assert (reg.holding("kepco", JPA), reg.balance("kepco", "JPY")) == (1000, 5_000_000 - 1000 * 1100)
    assert reg.balance("moe", "JPY") == 3000 * 1100
    assert [reg.hold(b) for b in (1, 2, 3, 4)] == [0, 0, 0, 0]
    assert reg.available_cash("kepco", "JPY") == reg.balance("kepco", "JPY")
    reg.check()


def test_cancelled_auction_releases_every_hold() -> None:
    reg = MemoryRegistry()
    run(reg, *SETUP, {**AUCTION, "volume": 9000}, *BIDS, CLOSE)
    assert reg.issued(JPA) == 0
    assert [reg.hold(b) for b in (1, 2, 3, 4)] == [0, 0, 0, 0]
    assert reg.balance("tepco", "JPY") == reg.available_cash("tepco", "JPY") == 5_000_000
    reg.check()


def test_allocation_failure_moves_nothing() -> None:
    """The cap leaves room for 2,000 units: the second allocation fails whole, the first stands."""
    reg = MemoryRegistry()
    events = run(reg, *SETUP[:1], {"type": "cap", "scheme": "JVETS", "period": 2010, "cap": 2000},
                 *SETUP[2:], AUCTION, *BIDS, CLOSE)
    tail = events[-2:]
    assert isinstance(tail[0], AllocationSettled) and tail[0].id == 1
    assert isinstance(tail[1], AllocationFailed) and (tail[1].id, tail[1].reason) == (2, "cap_exceeded")
    assert reg.holding("kepco", JPA) == 0 and reg.balance("kepco", "JPY") == 5_000_000
    assert reg.available_cash("kepco", "JPY") == 5_000_000 and reg.issued(JPA) == 2000
    reg.check()


def test_seller_delivers_held_units_without_a_scheme() -> None:
    reg = MemoryRegistry()
    setup = [*SETUP, {"type": "account", "account": "seller"},
             {"type": "issue", "account": "seller", "unit": "JPA", "qty": 3000, "scheme": "JVETS",
              "period": 2010}]
    auction = {k: v for k, v in AUCTION.items() if k not in ("scheme", "period")} | {"seller": "seller"}
    events = run(reg, *setup, auction, *BIDS, CLOSE)
    assert [type(e) for e in events[-2:]] == [AllocationSettled, AllocationSettled]
    assert reg.holding("seller", JPA) == 0 and reg.balance("seller", "JPY") == 3_300_000
    assert reg.issued(JPA) == 3000
    reg.check()


def test_bid_from_an_unknown_account_is_refused_with_the_registry_code() -> None:
    reg = MemoryRegistry()
    events = run(reg, *SETUP, AUCTION, {**BIDS[0], "account": "ghost"})
    assert isinstance(events[-1], Rejected) and events[-1].reason == "unknown_account"


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_replaying_the_auction_into_the_same_registry_changes_nothing(backend: str, tmp_path: Path) -> None:
    def open_reg() -> Registry:
        return MemoryRegistry() if backend == "memory" else SQLiteRegistry(tmp_path / "a.db")

    reg = open_reg()
    log = [*SETUP, AUCTION, *BIDS, CLOSE]
    first = msgspec.json.encode(run(reg, *log))
    journal = list(reg.journal())
    again = reg if backend == "memory" else open_reg()
    assert msgspec.json.encode(run(again, *log)) == first
    assert list(again.journal()) == journal
    assert again.holding("tepco", JPA) == 2000 and again.issued(JPA) == 3000
    again.check()
