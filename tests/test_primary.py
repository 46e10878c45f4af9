"""Primary allowance auctions through the order log: worked examples (EU and WCI ties), every
refusal, hostile lines, the pre-trade hook, properties, replay, snapshots and the journal."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonbook import (
    Accepted,
    AuctionCleared,
    AuctionOpened,
    CancelOrder,
    CloseAuction,
    Command,
    Engine,
    Event,
    ListInstrument,
    ModifyOrder,
    NewOrder,
    OpenAuction,
    PlaceBid,
    Rejected,
    RejectReason,
    Side,
    UnitType,
)
from carbonbook._types import NAME_MAX
from carbonbook.auction import (
    AuctionCancelReason,
    AuctionSpec,
    Bid,
    BidAllocation,
    BidderAllocation,
    BidRefusal,
    CapRule,
    CostContainmentReserve,
    RefusedBid,
    TieRule,
    clear_auction,
)
from carbonbook.codec import json_encoder
from carbonbook.core.snapshot import SnapshotFile, decode_snapshot, encode_snapshot
from carbonbook.operations.cli import main
from carbonbook.operations.journal import FsyncPolicy, Journal, decode_command, encode_command, recover
from carbonbook.operations.replay import replay

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EVENTS = msgspec.json.Decoder(list[Event])
MALFORMED, BAD_PRICE, BAD_QTY = RejectReason.MALFORMED, RejectReason.BAD_PRICE, RejectReason.BAD_QTY

# -- worked examples ------------------------------------------------------------------------

EU_OPEN = OpenAuction("EUA-2030-A17", UnitType.EUA, 9_000, "eu-auction", seed=42, lot=1_000, tick=5,
                      reserve_price=1_000, currency="EUR", scheme="EU-ETS", period=2030)
EU_BIDS = [
    PlaceBid("EUA-2030-A17", 11, "a", 1_500, 4_000),
    PlaceBid("EUA-2030-A17", 12, "b", 1_450, 3_000),
    PlaceBid("EUA-2030-A17", 13, "c", 1_400, 2_000),
    PlaceBid("EUA-2030-A17", 14, "d", 1_400, 3_000),
    PlaceBid("EUA-2030-A17", 15, "a", 1_400, 1_000),
    PlaceBid("EUA-2030-A17", 16, "e", 995, 1_000),  # below the (secret) reserve: refused at clearing
]
EU_LOG = [EU_OPEN, *EU_BIDS, CloseAuction("EUA-2030-A17")]


def test_eu_tie_order_is_the_seeded_shuffle_of_the_admitted_bids() -> None:
    ids = [11, 12, 13, 14, 15]
    random.Random(42).shuffle(ids)
    assert ids == [14, 12, 13, 15, 11]


def test_eu_auction_worked_example() -> None:
    """Ranked: 11 (1500), 12 (1450), then the 1400s in tie order 14, 13, 15. The running
    total reaches 9,000 at bid 14, so the price is 1400 and 14 (marginal) gets the 2,000 left."""
    engine = Engine()
    events = [e for cmd in EU_LOG for e in engine.apply(cmd)]
    name = "EUA-2030-A17"
    assert events == [
        AuctionOpened(1, name, UnitType.EUA, 9_000, "eu-auction", TieRule.EU, 1_000, 5, None, CapRule.CUT,
                      "EUR", "EU-ETS", 2030),
        *[Accepted(seq, oid, name) for seq, oid in zip(range(2, 8), range(11, 17), strict=True)],
        AuctionCleared(
            8, name, "eu-auction", UnitType.EUA, "EUR", "EU-ETS", 2030,
            cancelled=False, cancel_reason=None, price=1_400, volume=9_000, volume_sold=9_000,
            ccr_triggered=False, ccr_released=0, demand=13_000, tie_rule=TieRule.EU, seed=42, lot=1_000,
            tick=5, reserve_price=1_000, bidder_cap=None, cap_rule=CapRule.CUT, ccr=None,
            allocations=(BidAllocation(11, "a", 4_000), BidAllocation(12, "b", 3_000),
                         BidAllocation(14, "d", 2_000)),
            bidders=(BidderAllocation("a", 4_000, 1), BidderAllocation("b", 3_000, 1),
                     BidderAllocation("d", 2_000, 1)),
            refused=(RefusedBid(16, "e", BidRefusal.BELOW_RESERVE, 1_000),),
            tie_order=(14, 12, 13, 15, 11),
        ),
    ]
    engine.check()
    assert engine.order(14) is not None and engine.order(14).status == "bid"  # type: ignore[union-attr]


WCI_OPEN = OpenAuction("CCA-2030-Q1", UnitType.CCA, 10_000, "carb", tie_rule=TieRule.WCI, seed=3, lot=1_000,
                       reserve_price=1_500, bidder_cap=5_000, currency="USD", scheme="WCI-CA", period=2030)
WCI_BIDS = [
    PlaceBid("CCA-2030-Q1", 21, "a", 2_000, 4_000),
    PlaceBid("CCA-2030-Q1", 22, "a", 1_900, 3_000),  # crosses a's cap of 5,000: cut to 1,000
    PlaceBid("CCA-2030-Q1", 23, "b", 1_900, 2_000),
    PlaceBid("CCA-2030-Q1", 24, "c", 1_800, 3_000),
    PlaceBid("CCA-2030-Q1", 25, "d", 1_800, 3_000),
    PlaceBid("CCA-2030-Q1", 26, "c", 1_800, 1_000),
]
WCI_LOG = [WCI_OPEN, *WCI_BIDS, CloseAuction("CCA-2030-Q1")]


def test_wci_auction_worked_example() -> None:
    """Tie order 21, 23, 24, 26, 25, 22. After the cap, 7,000 t rank above 1800; the 3 lots left
    are shared over the tied accounts c (4 lots) and d (3): floor(4*3/7) = 1 and floor(3*3/7) = 1,
    and the leftover lot goes to c, first in tie order; c's 2 lots go to its first tied bid, 24."""
    ids = [21, 22, 23, 24, 25, 26]
    random.Random(3).shuffle(ids)
    assert ids == [21, 23, 24, 26, 25, 22]
    engine = Engine()
    events = [e for cmd in WCI_LOG for e in engine.apply(cmd)]
    name = "CCA-2030-Q1"
    assert events[0] == AuctionOpened(1, name, UnitType.CCA, 10_000, "carb", TieRule.WCI, 1_000, 1, 5_000,
                                      CapRule.CUT, "USD", "WCI-CA", 2030)
    assert events[1:7] == [Accepted(seq, oid, name)
                           for seq, oid in zip(range(2, 8), range(21, 27), strict=True)]
    assert events[7:] == [AuctionCleared(
        8, name, "carb", UnitType.CCA, "USD", "WCI-CA", 2030,
        cancelled=False, cancel_reason=None, price=1_800, volume=10_000, volume_sold=10_000,
        ccr_triggered=False, ccr_released=0, demand=14_000, tie_rule=TieRule.WCI, seed=3, lot=1_000, tick=1,
        reserve_price=1_500, bidder_cap=5_000, cap_rule=CapRule.CUT, ccr=None,
        allocations=(BidAllocation(21, "a", 4_000), BidAllocation(23, "b", 2_000),
                     BidAllocation(22, "a", 1_000), BidAllocation(24, "c", 2_000),
                     BidAllocation(25, "d", 1_000)),
        bidders=(BidderAllocation("a", 5_000, 2), BidderAllocation("b", 2_000, 1),
                 BidderAllocation("c", 2_000, 1), BidderAllocation("d", 1_000, 1)),
        refused=(RefusedBid(22, "a", BidRefusal.OVER_CAP, 2_000),),
        tie_order=(21, 23, 24, 26, 25, 22),
    )]
    engine.check()


def jsonl(commands: list[Any]) -> bytes:
    return json_encoder.encode_lines(commands)


def test_replay_cli_gives_the_engine_events(tmp_path: Path) -> None:
    """Both auctions, interleaved with trading, as a JSONL log through ``carbonbook replay``."""
    log: list[Any] = [ListInstrument("EUA-DEC30", UnitType.EUA), EU_LOG[0], WCI_LOG[0]]
    for eu, wci in zip(EU_LOG[1:-1], WCI_LOG[1:-1], strict=True):
        log += [eu, wci]
    log += [NewOrder(1, "x", "EUA-DEC30", Side.SELL, 10, price=7_000),
            NewOrder(11, "y", "EUA-DEC30", Side.BUY, 10, price=7_000),  # a bid's id: duplicate_id
            EU_LOG[-1], WCI_LOG[-1]]
    path, out = tmp_path / "auctions.jsonl", tmp_path / "events.jsonl"
    path.write_bytes(jsonl(log))
    assert main(["replay", str(path), "--out", str(out), "--quiet"]) == 0
    engine = Engine()
    expected = engine.apply_all(log)
    assert out.read_bytes() == json_encoder.encode_lines(expected)
    assert [e.__class__ for e in expected[-4:]] == [Accepted, Rejected, AuctionCleared, AuctionCleared]
    assert expected[-3].reason == RejectReason.DUPLICATE_ID  # type: ignore[union-attr]
    decoded = EVENTS.decode(b"[" + b",".join(out.read_bytes().splitlines()) + b"]")
    assert decoded == expected


def test_result_json_is_complete_for_settlement() -> None:
    events = Engine().apply_all(EU_LOG)
    result = msgspec.json.decode(msgspec.json.encode(events[-1]))
    assert result["type"] == "auction_cleared"
    for field in ("seller", "unit", "currency", "scheme", "period", "price", "allocations", "bidders",
                  "refused", "tie_order", "seed", "cancelled", "cancel_reason"):
        assert field in result
    assert result["allocations"][0] == {"id": 11, "account": "a", "qty": 4_000}


# -- refusals -------------------------------------------------------------------------------


def engine_with_auction(**terms: Any) -> Engine:
    engine = Engine()
    engine.apply(ListInstrument("JPA", UnitType.JPA))
    engine.apply(NewOrder(7, "s", "JPA", Side.SELL, 5, price=100))
    engine.apply(msgspec.structs.replace(OpenAuction("A", UnitType.JPA, 10, "gov", lot=2, tick=10), **terms))
    engine.apply(PlaceBid("A", 1, "x", 100, 4))
    return engine


def state_without_seq(engine: Engine) -> Any:
    return msgspec.structs.replace(engine.export_state(), seq=0)


def refused(engine: Engine, command: Any) -> Rejected:
    """Apply ``command``: it must give one rejection and change nothing but the sequence."""
    before = state_without_seq(engine)
    events = engine.apply(command)
    assert len(events) == 1 and events[0].__class__ is Rejected, events
    assert state_without_seq(engine) == before
    engine.check()
    rejected = events[0]
    assert rejected.detail
    return rejected


BID_REFUSALS = [
    (PlaceBid("A", -1, "x", 100, 2), None, MALFORMED),
    (PlaceBid("A", 2**63, "x", 100, 2), None, MALFORMED),
    (PlaceBid("A", True, "x", 100, 2), None, MALFORMED),  # type: ignore[arg-type]
    (PlaceBid("A", 2, "", 100, 2), 2, MALFORMED),
    (PlaceBid("", 2, "x", 100, 2), 2, MALFORMED),
    (PlaceBid(None, 2, "x", 100, 2), 2, MALFORMED),  # type: ignore[arg-type]
    (PlaceBid(["A"], 2, "x", 100, 2), 2, MALFORMED),  # type: ignore[arg-type]
    (PlaceBid("A", 2, "x", 1.5, 2), 2, MALFORMED),  # type: ignore[arg-type]
    (PlaceBid("A", 2, "x", 100, 2**63), 2, MALFORMED),
    (PlaceBid("A", 2, "x", "100", 2), 2, MALFORMED),  # type: ignore[arg-type]
    (PlaceBid("B", 2, "x", 100, 2), 2, RejectReason.UNKNOWN_AUCTION),
    (PlaceBid("A", 2, "x", 0, 2), 2, BAD_PRICE),
    (PlaceBid("A", 2, "x", -10, 2), 2, BAD_PRICE),
    (PlaceBid("A", 2, "x", 105, 2), 2, BAD_PRICE),
    (PlaceBid("A", 2, "x", 100, 0), 2, BAD_QTY),
    (PlaceBid("A", 2, "x", 100, 3), 2, BAD_QTY),
    (PlaceBid("A", 2, "x", 105, 3), 2, BAD_PRICE),  # the first fault wins
    (PlaceBid("A", 1, "x", 100, 2), 1, RejectReason.DUPLICATE_ID),  # an accepted bid's id
    (PlaceBid("A", 7, "x", 100, 2), 7, RejectReason.DUPLICATE_ID),  # an order's id
    (PlaceBid("A", 1, "x", 105, 2), 1, BAD_PRICE),
]


@pytest.mark.parametrize("name", ["x" * (NAME_MAX + 1), "a\x00b", "a\x85b"])
def test_names_of_hand_built_auction_commands(name: str) -> None:
    """A bid's account, an auction's name or seller: the rule of names, with the limit in the detail."""
    engine = engine_with_auction()
    for command in (PlaceBid("A", 2, name, 100, 2), OpenAuction(name, UnitType.JPA, 10, "gov"),
                    OpenAuction("B", UnitType.JPA, 10, name), CloseAuction(name)):
        rejected = refused(engine, command)
        assert rejected.reason == MALFORMED and f"1 to {NAME_MAX} characters" in rejected.detail


@pytest.mark.parametrize(("command", "oid", "reason"), BID_REFUSALS)
def test_bid_refusals(command: PlaceBid, oid: int | None, reason: RejectReason) -> None:
    rejected = refused(engine_with_auction(), command)
    assert (rejected.id, rejected.reason) == (oid, reason)


def test_bids_and_closes_after_the_close_are_refused() -> None:
    engine = engine_with_auction()
    assert engine.apply(CloseAuction("A"))[0].__class__ is AuctionCleared
    assert refused(engine, PlaceBid("A", 2, "x", 100, 2)).reason == RejectReason.AUCTION_CLOSED
    assert refused(engine, PlaceBid("A", 2, "x", 105, 3)).reason == RejectReason.AUCTION_CLOSED
    assert refused(engine, CloseAuction("A")).reason == RejectReason.AUCTION_CLOSED
    assert refused(engine, OpenAuction("A", UnitType.JPA, 10, "gov")).reason == RejectReason.DUPLICATE_AUCTION


@pytest.mark.parametrize(("command", "reason"), [
    (CloseAuction("B"), RejectReason.UNKNOWN_AUCTION),
    (CloseAuction(""), MALFORMED),
    (CloseAuction(None), MALFORMED),  # type: ignore[arg-type]
    (OpenAuction("A", UnitType.JPA, 10, "gov"), RejectReason.DUPLICATE_AUCTION),
    (OpenAuction("A", UnitType.JPA, 10, ""), MALFORMED),  # malformed comes before duplicate
    (OpenAuction("B", UnitType.JPA, 10, ""), MALFORMED),
    (OpenAuction("", UnitType.JPA, 10, "gov"), MALFORMED),
    (OpenAuction("B", "XYZ", 10, "gov"), MALFORMED),  # type: ignore[arg-type]
    (OpenAuction("B", UnitType.JPA, 10, "gov", tie_rule="coin"), MALFORMED),  # type: ignore[arg-type]
    (OpenAuction("B", UnitType.JPA, 10, "gov", cap_rule=["cut"]), MALFORMED),  # type: ignore[arg-type]
    (OpenAuction("B", UnitType.JPA, 0, "gov"), MALFORMED),
    (OpenAuction("B", UnitType.JPA, 10, "gov", lot=3), MALFORMED),
    (OpenAuction("B", UnitType.JPA, 10, "gov", tick=0), MALFORMED),
    (OpenAuction("B", UnitType.JPA, 10, "gov", seed=-1), MALFORMED),
    (OpenAuction("B", UnitType.JPA, 10, "gov", seed=2**63), MALFORMED),
    (OpenAuction("B", UnitType.JPA, 10, "gov", tick=10, reserve_price=15), MALFORMED),
    (OpenAuction("B", UnitType.JPA, 10, "gov", lot=5, bidder_cap=4), MALFORMED),
    (OpenAuction("B", UnitType.JPA, 10, "gov", reserve_price=50,
                 ccr=CostContainmentReserve(trigger_price=40, volume=5)), MALFORMED),
    (OpenAuction("B", UnitType.JPA, 10, "gov", ccr={"trigger_price": 1}), MALFORMED),  # type: ignore[arg-type]
    (OpenAuction("B", UnitType.JPA, 10, "gov",
                 ccr=CostContainmentReserve(trigger_price=1.0, volume=5)), MALFORMED),  # type: ignore[arg-type]
    (OpenAuction("B", UnitType.JPA, 10, "gov", currency=""), MALFORMED),
    (OpenAuction("B", UnitType.JPA, 10, "gov", scheme=3), MALFORMED),  # type: ignore[arg-type]
    (OpenAuction("B", UnitType.JPA, 10, "gov", period=2.0), MALFORMED),  # type: ignore[arg-type]
    (OpenAuction("B", UnitType.JPA, 10.0, "gov"), MALFORMED),  # type: ignore[arg-type]
])
def test_open_and_close_refusals(command: Any, reason: RejectReason) -> None:
    rejected = refused(engine_with_auction(), command)
    assert (rejected.id, rejected.reason) == (None, reason)


def test_bid_ids_cannot_be_cancelled_modified_or_reused_by_orders() -> None:
    engine = engine_with_auction()
    assert refused(engine, CancelOrder(1)).reason == RejectReason.UNKNOWN_ORDER
    assert refused(engine, ModifyOrder(1, qty=2)).reason == RejectReason.UNKNOWN_ORDER
    assert refused(engine, NewOrder(1, "y", "JPA", Side.BUY, 1, price=90)).reason == RejectReason.DUPLICATE_ID


def test_rejected_bid_does_not_claim_its_id() -> None:
    engine = engine_with_auction()
    refused(engine, PlaceBid("A", 2, "x", 105, 2))
    assert engine.apply(PlaceBid("A", 2, "x", 110, 2)) == [Accepted(engine.next_seq - 1, 2, "A")]


def test_below_reserve_is_left_to_clearing_and_names_the_cancellation() -> None:
    """A bid below the secret reserve is accepted (a rejection would reveal the reserve) and
    refused at clearing; when only such bids would have covered the volume, the auction is
    cancelled ``below_reserve``, otherwise ``undersubscribed``."""
    engine = engine_with_auction(reserve_price=200)
    assert engine.apply(PlaceBid("A", 2, "y", 150, 10))[0].__class__ is Accepted
    (result,) = engine.apply(CloseAuction("A"))
    assert isinstance(result, AuctionCleared)
    assert (result.cancelled, result.cancel_reason, result.price, result.volume_sold) == (
        True, AuctionCancelReason.BELOW_RESERVE, None, 0)
    assert result.refused == (RefusedBid(1, "x", BidRefusal.BELOW_RESERVE, 4),
                              RefusedBid(2, "y", BidRefusal.BELOW_RESERVE, 10))
    assert result.allocations == () and result.bidders == () and result.tie_order == ()
    (empty,) = Engine().apply_all([OpenAuction("E", UnitType.JPA, 10, "gov"), CloseAuction("E")])[1:]
    assert isinstance(empty, AuctionCleared) and empty.cancel_reason == AuctionCancelReason.UNDERSUBSCRIBED


HOSTILE = [
    b'{"type":"bid"}',
    b'{"type":"bid","auction":"A","id":2,"account":"x","price":100.0,"qty":2}',
    b'{"type":"bid","auction":"A","id":2,"account":"x","price":true,"qty":2}',
    b'{"type":"bid","auction":"A","id":2,"account":"x","price":100,"qty":99999999999999999999}',
    b'{"type":"bid","auction":"A","id":-2,"account":"x","price":100,"qty":2}',
    b'{"type":"bid","auction":"","id":2,"account":"x","price":100,"qty":2}',
    b'{"type":"bid","auction":["A"],"id":2,"account":"x","price":100,"qty":2}',
    b'{"type":"auction","auction":"B","unit":"EUA","volume":10}',
    b'{"type":"auction","auction":"B","unit":"XXX","volume":10,"seller":"s"}',
    b'{"type":"auction","auction":"B","unit":"EUA","volume":10,"seller":"s","tie_rule":"coin"}',
    b'{"type":"auction","auction":"B","unit":"EUA","volume":10,"seller":"s","ccr":[1,2]}',
    b'{"type":"auction","auction":"B","unit":"EUA","volume":10,"seller":"s","ccr":{"volume":2}}',
    b'{"type":"auction","auction":"B","unit":"EUA","volume":10,"seller":"s","currency":""}',
    b'{"type":"auction","auction":"B","unit":"EUA","volume":10,"seller":"s","period":"2030"}',
    b'{"type":"auction","auction":"B","unit":"EUA","volume":10,"seller":"s","ccr":' + b"[" * 5000 + b"]" * 5000
    + b"}",
    b'{"type":"auction_close"}',
    b'{"type":"auction_close","auction":null}',
    b'{"type":"auction_close","auction":""}',
    b'{"type":"auction_cleared","auction":"A"}',
    b'{"type":"auction_opened","auction":"B","unit":"EUA","volume":10,"seller":"s"}',
]


@pytest.mark.parametrize("line", HOSTILE)
def test_hostile_lines_give_one_malformed_rejection(line: bytes) -> None:
    head = jsonl([OpenAuction("A", UnitType.JPA, 10, "gov", lot=2, tick=10)])
    tail = jsonl([PlaceBid("A", 3, "z", 100, 10), CloseAuction("A")])
    chunks: list[bytes] = []
    replay(io.BytesIO(head + line + b"\n" + tail), Engine(), chunks.append)
    events = EVENTS.decode(b"[" + b",".join(b"".join(chunks).splitlines()) + b"]")
    assert [e.seq for e in events] == [1, 2, 3, 4]
    rejected = events[1]
    assert isinstance(rejected, Rejected) and rejected.reason == MALFORMED and rejected.line == 2
    assert rejected.id == (2 if b'"id":2,' in line else None)  # a bad line's valid id is named
    assert isinstance(events[3], AuctionCleared) and events[3].volume_sold == 10


def test_decodable_but_malformed_open_is_refused_without_a_line() -> None:
    chunks: list[bytes] = []
    line = b'{"type":"auction","auction":"B","unit":"EUA","volume":10,"seller":"s","seed":-1}\n'
    replay(io.BytesIO(line), Engine(), chunks.append)
    (event,) = EVENTS.decode(b"[" + b"".join(chunks).strip() + b"]")
    assert isinstance(event, Rejected) and event.reason == MALFORMED and event.line is None


# -- the pre-trade hook ---------------------------------------------------------------------


class CashLimit:
    """Admits a bid only if the bidder's cash covers price * qty; holds it (an engine's ``admit_bid``)."""

    def __init__(self, cash: dict[str, int]) -> None:
        self.cash = cash
        self.calls: list[tuple[int, str | None]] = []

    def __call__(self, bid: PlaceBid, auction: OpenAuction) -> tuple[str, str] | None:
        self.calls.append((bid.id, auction.currency))
        cost = bid.price * bid.qty
        if self.cash.get(bid.account, 0) < cost:
            return "insufficient_cash", f"{bid.account} cannot pay {cost}"
        self.cash[bid.account] -= cost
        return None


def test_admit_bid_hook_is_called_last_and_its_refusal_is_a_rejection() -> None:
    engine = Engine()
    engine.admit_bid = limit = CashLimit({"x": 1_000, "y": 10_000})
    engine.apply(OpenAuction("A", UnitType.JPA, 10, "gov", tick=10, currency="JPY"))
    for bad in (PlaceBid("A", 1, "x", 15, 1), PlaceBid("B", 1, "x", 10, 1), PlaceBid("A", -1, "x", 10, 1)):
        assert engine.apply(bad)[0].__class__ is Rejected
    assert limit.calls == []  # the engine's own checks come first
    rejected = refused(engine, PlaceBid("A", 1, "x", 100, 20))
    assert (rejected.id, rejected.reason, rejected.detail) == (1, "insufficient_cash", "x cannot pay 2000")
    assert engine.apply(PlaceBid("A", 1, "y", 100, 20)) == [Accepted(6, 1, "A")]
    assert limit.calls == [(1, "JPY"), (1, "JPY")] and limit.cash == {"x": 1_000, "y": 8_000}
    assert refused(engine, PlaceBid("A", 1, "x", 10, 1)).reason == RejectReason.DUPLICATE_ID
    assert len(limit.calls) == 2


# -- properties -----------------------------------------------------------------------------


@st.composite
def auction_logs(draw: st.DrawFn) -> list[Any]:
    """One auction with random terms, random bids (some faulty), maybe orders, and a close."""
    lot = draw(st.sampled_from([1, 5, 100]))
    tick = draw(st.sampled_from([1, 5]))
    volume = lot * draw(st.integers(1, 30))
    reserve = draw(st.none() | st.integers(1, 20).map(lambda k: k * tick))
    ccr = None
    if draw(st.booleans()):
        trigger = max(reserve or 0, tick * draw(st.integers(1, 20)))
        ccr = CostContainmentReserve(trigger_price=trigger, volume=lot * draw(st.integers(1, 10)))
    cap = draw(st.none() | st.integers(1, 15).map(lambda k: k * lot))
    open_ = OpenAuction("A", UnitType.EUA, volume, "gov", tie_rule=draw(st.sampled_from(list(TieRule))),
                        seed=draw(st.integers(0, 2**63 - 1)), lot=lot, tick=tick, reserve_price=reserve,
                        bidder_cap=cap, cap_rule=draw(st.sampled_from(list(CapRule))), ccr=ccr,
                        currency="EUR")
    log: list[Any] = [open_, ListInstrument("S", UnitType.EUA)]
    for _ in range(draw(st.integers(0, 40))):
        price = tick * draw(st.integers(-1, 25)) + draw(st.sampled_from([0, 0, 0, 0, 1]))
        qty = lot * draw(st.integers(0, 8)) + draw(st.sampled_from([0, 0, 0, 0, 1]))
        oid = draw(st.integers(0, 60))
        if draw(st.integers(0, 9)) == 0:
            log.append(NewOrder(oid, "o", "S", Side.BUY, 1, price=1))
        else:
            log.append(PlaceBid(draw(st.sampled_from(["A", "A", "A", "A", "Z"])), oid,
                                draw(st.sampled_from("pqrst")), price, qty))
    log.append(CloseAuction("A"))
    return log


@SETTINGS
@given(auction_logs())
def test_auction_properties(log: list[Any]) -> None:
    engine = Engine()
    events = engine.apply_all(log)
    engine.check()
    result = events[-1]
    assert isinstance(result, AuctionCleared)
    bids = {}
    for cmd, event in zip(log[:-1], events[:-1], strict=True):  # one event per command before the close
        if isinstance(cmd, PlaceBid) and event.__class__ is Accepted:
            bids[cmd.id] = cmd
    assert sum(a.qty for a in result.allocations) == result.volume_sold
    assert sum(b.qty for b in result.bidders) == result.volume_sold
    for a in result.allocations:
        bid = bids[a.id]
        assert a.account == bid.account and 0 < a.qty <= bid.qty
        assert result.price is not None and result.price <= bid.price  # nobody pays above their bid
        assert result.reserve_price is None or result.price >= result.reserve_price
    if result.cancelled:
        assert result.price is None and result.volume_sold == 0 and result.allocations == ()
    # the recorded tie order replays the clearing, whatever order the bids are listed in
    spec = AuctionSpec(volume=result.volume, seed=0, tie_rule=result.tie_rule,
                       reserve_price=result.reserve_price, lot=result.lot, tick=result.tick,
                       bidder_cap=result.bidder_cap,
                       cap_rule=result.cap_rule, ccr=result.ccr)
    again = clear_auction(spec, [Bid(b.id, b.account, b.price, b.qty) for b in reversed(bids.values())],
                          tie_order=result.tie_order)
    assert (again.clearing_price, again.allocations, again.bidders) == (result.price, result.allocations,
                                                                         result.bidders)
    # the same log gives byte-identical events, one command at a time or all at once
    copy = Engine()
    one_by_one = [e for cmd in log for e in copy.apply(cmd)]
    assert json_encoder.encode_lines(one_by_one) == json_encoder.encode_lines(events)
    assert copy.state_hash() == engine.state_hash()


# -- snapshots and the journal --------------------------------------------------------------


def round_trip(engine: Engine) -> Engine:
    snap = decode_snapshot(encode_snapshot(SnapshotFile(0, 0, engine.export_state())))
    copy = Engine.from_state(snap.state)
    copy.check()
    assert copy.state_hash() == engine.state_hash() and copy.export_state() == engine.export_state()
    return copy


@SETTINGS
@given(auction_logs(), st.data())
def test_snapshot_round_trip_with_an_auction_open(log: list[Any], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(log)))
    original = Engine()
    original.apply_all(log[:cut])
    copy = round_trip(original)
    rest = [*log[cut:], OpenAuction("A", UnitType.EUA, 1, "gov"), CloseAuction("A")]
    assert copy.apply_all(rest) == original.apply_all(rest)
    assert copy.state_hash() == original.state_hash()


def test_state_hash_sees_bids_and_closing() -> None:
    a, b = Engine(), Engine()
    a.apply_all(EU_LOG[:-1])
    b.apply_all(EU_LOG[:-2])
    b.apply(msgspec.structs.replace(EU_BIDS[-1], price=1_000))
    assert a.next_seq == b.next_seq and a.state_hash() != b.state_hash()
    hashes = {a.state_hash()}
    a.apply(EU_LOG[-1])
    assert a.state_hash() not in hashes
    round_trip(a)


def test_inconsistent_auction_state_is_refused() -> None:
    from carbonbook.errors import SnapshotError

    engine = Engine()
    engine.apply_all(EU_LOG[:-1])
    state = engine.export_state()
    bad_index = msgspec.structs.replace(state, index=[(i, "cancelled") for i, _ in state.index])
    with pytest.raises(SnapshotError):
        Engine.from_state(bad_index)
    auction = state.auctions[0]
    twice = msgspec.structs.replace(state, auctions=[auction, auction])
    with pytest.raises(SnapshotError):
        Engine.from_state(twice)
    closed_with_bids = msgspec.structs.replace(state, auctions=[msgspec.structs.replace(auction, closed=True)])
    with pytest.raises(SnapshotError):
        Engine.from_state(closed_with_bids)


HAND_BUILT: list[Any] = [
    EU_OPEN, *EU_BIDS, CloseAuction("EUA-2030-A17"), WCI_OPEN,
    OpenAuction("R", UnitType.RGA, 10, "rggi", reserve_price=2,
                ccr=CostContainmentReserve(trigger_price=6, volume=5)),
    OpenAuction("X", UnitType.RGA, 2**64, "rggi", ccr=CostContainmentReserve(trigger_price=-(2**70), volume=5)),
    PlaceBid("R", 2**64, "x", 1, 1), PlaceBid("R", 90, "x", 1.5, 1),  # type: ignore[arg-type]
    OpenAuction("Y", "nope", 10, "s", tie_rule="coin"),  # type: ignore[arg-type]
    CloseAuction(None),  # type: ignore[arg-type]
]


def test_journal_payloads_round_trip() -> None:
    for cmd in HAND_BUILT:
        back = decode_command(encode_command(cmd))
        assert back == cmd and back.__class__ is cmd.__class__


def test_journal_recovery_with_an_auction_open(tmp_path: Path) -> None:
    log: list[Command] = [*WCI_LOG[:-1], *HAND_BUILT]
    journal = Journal.open(tmp_path, FsyncPolicy("never"))
    for i, cmd in enumerate(log):
        journal.apply_all([cmd])
        if i == 4:
            journal.snapshot()
    journal.close()
    reference = Engine()
    reference.apply_all(log)
    rec = recover(tmp_path)
    assert rec.snapshot is not None and rec.records == len(log)
    assert rec.engine.state_hash() == reference.state_hash()
    close = [CloseAuction("CCA-2030-Q1"), CloseAuction("R")]
    assert rec.engine.apply_all(close) == reference.apply_all(close)


def test_bench_script_runs() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "auction_replay.py", "--bids", "300", "--runs", "1"],
                          cwd=root / "bench", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "close (clear + result event)" in proc.stdout and "300 bids" in proc.stdout
