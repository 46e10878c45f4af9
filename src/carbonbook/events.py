"""Events: everything the engine does, as tagged msgspec Structs.

Every event carries ``seq``, one engine-wide counter (1, 2, 3, ...) with no gaps.
Field names and tags are the order-log contract's; the JSON encoding of an event is
one line of a replay's output. An event's tag (its ``type``) is its class name in snake
case. Four tags were renamed to follow that rule; events files written before still read
(:data:`ReadableEvent`, :func:`current`): ``listed`` is now ``instrument_listed``,
``settled`` ``trade_settled``, ``settlement_failed`` ``settlement_failure`` and
``auction_result`` ``auction_cleared``.
"""

from __future__ import annotations

import msgspec

from carbonbook._types import CancelReason, Phase, Side, UnitType
from carbonbook.auction import (
    AuctionCancelReason,
    BidAllocation,
    BidderAllocation,
    CapRule,
    CostContainmentReserve,
    RefusedBid,
    TieRule,
)


class _Event(msgspec.Struct, tag_field="type", frozen=True, gc=False, omit_defaults=True):
    seq: int


class InstrumentListed(_Event, tag="instrument_listed", frozen=True):
    """A book was opened."""

    symbol: str
    unit: UnitType
    tick: int
    lot: int
    phase: Phase = Phase.CONTINUOUS
    call_only: bool = False
    band: int | None = None
    reference: int | None = None
    currency: str | None = None


class Accepted(_Event, tag="accepted", frozen=True):
    """An order was accepted; its trades and any cancelled remainder follow."""

    id: int
    symbol: str


class Rejected(_Event, tag="rejected", frozen=True):
    """A command was refused and changed nothing. ``line`` is set for an undecodable input line.

    ``reason`` is a :class:`~carbonbook._types.RejectReason` or, for a registry command, the
    ``code`` of the registry's refusal (:mod:`carbonbook.errors`)."""

    id: int | None
    reason: str
    detail: str
    line: int | None = None


class Trade(_Event, tag="trade", frozen=True):
    """``qty`` tonnes changed hands at the maker's ``price``. ``seq`` is the trade's unique id."""

    symbol: str
    price: int
    qty: int
    maker_id: int
    taker_id: int
    buy_id: int
    sell_id: int
    buy_account: str
    sell_account: str


class Cancelled(_Event, tag="cancelled", frozen=True):
    """``qty`` of order ``id`` was taken off the book or left unexecuted."""

    id: int
    qty: int
    reason: CancelReason


class Modified(_Event, tag="modified", frozen=True):
    """Order ``id`` now has ``price`` and open quantity ``qty``."""

    id: int
    price: int
    qty: int


class PhaseChanged(_Event, tag="phase_changed", frozen=True):
    """``symbol`` is now in ``phase``; ``reference`` is its reference price (null when none)."""

    symbol: str
    phase: Phase
    reference: int | None


class Indicative(_Event, tag="indicative", frozen=True):
    """The price a call would uncross at now, the ``volume`` it would trade, and the
    unmatched ``surplus`` at that price on ``side`` (null when there is none).
    ``price`` is null when nothing would trade."""

    symbol: str
    price: int | None
    volume: int
    surplus: int
    side: Side | None


class Uncrossed(_Event, tag="uncrossed", frozen=True):
    """A call ended: ``volume`` traded at the single ``price`` (null when nothing traded);
    the trades follow."""

    symbol: str
    price: int | None
    volume: int


class Recorded(_Event, tag="recorded", frozen=True):
    """A registry command (``command`` is its ``type``) was carried out by registry transaction
    ``txid`` (null when it needed none, as a ``business_day``); ``detail`` says what it did."""

    command: str
    txid: int | None = None
    detail: str = ""


class TradeSettled(_Event, tag="trade_settled", frozen=True):
    """Trade ``trade_id`` (the trade event's ``seq``) settled by registry transaction ``txid``:
    units seller to buyer and cash buyer to seller, both or neither."""

    trade_id: int
    txid: int


class SettlementFailure(_Event, tag="settlement_failure", frozen=True):
    """Trade ``trade_id`` could not settle and nothing moved; ``reason`` is the registry's code."""

    trade_id: int
    reason: str
    detail: str


class AllocationSettled(_Event, tag="allocation_settled", frozen=True):
    """Bid ``id`` of primary auction ``auction`` got its allocation by registry transaction
    ``txid``: the units (issued to the seller first when the auction names a scheme and
    period) moved seller to bidder and the clearing price times the quantity bidder to seller."""

    auction: str
    id: int
    txid: int


class AllocationFailed(_Event, tag="allocation_failed", frozen=True):
    """Bid ``id``'s allocation in primary auction ``auction`` could not settle and nothing moved;
    ``reason`` is the registry's code."""

    auction: str
    id: int
    reason: str
    detail: str


class AuctionOpened(_Event, tag="auction_opened", frozen=True):
    """Primary auction ``auction`` takes sealed bids for ``volume`` tonnes of ``unit`` from ``seller``.

    It states what a valid bid needs (``tick``, ``lot``, ``bidder_cap``) and how the auction
    clears (``tie_rule``, ``cap_rule``); the seed, the reserve price and the cost containment
    reserve are published only in the ``auction_cleared``. Every field is always written.
    """

    auction: str
    unit: UnitType
    volume: int
    seller: str
    tie_rule: TieRule
    lot: int
    tick: int
    bidder_cap: int | None
    cap_rule: CapRule
    currency: str | None
    scheme: str | None
    period: int | None


class AuctionCleared(_Event, tag="auction_cleared", frozen=True):
    """Primary auction ``auction`` closed: ``seller`` sold ``volume_sold`` tonnes of ``unit`` at ``price``.

    ``price`` is the uniform clearing price (null when ``cancelled``, ``cancel_reason`` saying
    why); ``allocations`` (bid ``id``, ``account``, ``qty``; priority order) and ``bidders``
    (``account``, ``qty``, ``bids``; by account) both sum to ``volume_sold``; ``refused``
    lists the bids, or parts of bids, left out at clearing (``below_reserve``, ``over_cap``).
    ``tie_order`` (admitted bid ids) with ``seed`` replays the clearing exactly. The auction's
    terms are repeated so a settlement layer needs nothing else. Every field is always written.
    """

    auction: str
    seller: str
    unit: UnitType
    currency: str | None
    scheme: str | None
    period: int | None
    cancelled: bool
    cancel_reason: AuctionCancelReason | None
    price: int | None
    volume: int
    volume_sold: int
    ccr_triggered: bool
    ccr_released: int
    demand: int
    tie_rule: TieRule
    seed: int
    lot: int
    tick: int
    reserve_price: int | None
    bidder_cap: int | None
    cap_rule: CapRule
    ccr: CostContainmentReserve | None
    allocations: tuple[BidAllocation, ...]
    bidders: tuple[BidderAllocation, ...]
    refused: tuple[RefusedBid, ...]
    tie_order: tuple[int, ...]


Event = (InstrumentListed | Accepted | Rejected | Trade | Cancelled | Modified | PhaseChanged
         | Indicative | Uncrossed | Recorded | TradeSettled | SettlementFailure | AuctionOpened
         | AuctionCleared | AllocationSettled | AllocationFailed)
"""Any engine event."""


# -- tags before the renaming: read, never written ----------------------------------------


class _Listed(InstrumentListed, tag="listed", frozen=True):
    """An ``instrument_listed`` under its old tag."""


class _Settled(TradeSettled, tag="settled", frozen=True):
    """A ``trade_settled`` under its old tag."""


class _SettlementFailed(SettlementFailure, tag="settlement_failed", frozen=True):
    """A ``settlement_failure`` under its old tag."""


class _AuctionResult(AuctionCleared, tag="auction_result", frozen=True):
    """An ``auction_cleared`` under its old tag."""


ReadableEvent = Event | _Listed | _Settled | _SettlementFailed | _AuctionResult
"""What an events file may hold: any event, also under the tag it had before its renaming.
Decode with it, then pass what has an old tag (its class in :data:`RENAMED`) to :func:`current`."""

RENAMED: dict[type, type] = {_Listed: InstrumentListed, _Settled: TradeSettled,
                             _SettlementFailed: SettlementFailure, _AuctionResult: AuctionCleared}
"""The class of each old tag, and the event class it was renamed to."""


def current(event: Event) -> Event:
    """``event`` as an instance of its own class (one read under an old tag becomes the class the
    tag was renamed to; any other is returned as it is).

    >>> import msgspec
    >>> old = msgspec.json.decode(b'{"type":"settled","seq":9,"trade_id":4,"txid":2}', type=ReadableEvent)
    >>> current(old)
    TradeSettled(seq=9, trade_id=4, txid=2)
    >>> msgspec.json.encode(current(old))
    b'{"type":"trade_settled","seq":9,"trade_id":4,"txid":2}'
    """
    renamed = RENAMED.get(event.__class__)
    return event if renamed is None else renamed(**msgspec.structs.asdict(event))
