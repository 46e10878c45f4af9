"""Primary allowance auctions in the order log: opening, sealed bids, closing.

The engine keeps its auctions in a dict, name -> :class:`AuctionSession`, beside its
books, and routes the three auction commands here; clearing itself is
:func:`carbonbook.auction.clear_auction`.

Opening (``auction``)
    Refusals, first that applies: ``malformed`` (an empty or non-string ``auction``,
    ``seller``, ``currency`` or ``scheme``; an unknown ``unit``, ``tie_rule`` or
    ``cap_rule``; a ``period`` that is not an integer; or terms that
    :func:`~carbonbook.auction.check_spec` refuses: ``volume`` not a positive whole
    number of lots, ``tick``/``lot`` not positive, ``seed`` outside 0..2**63-1, a reserve
    price or CCR trigger off the tick, a bidder cap below one lot, ...), then
    ``duplicate_auction`` (the name was used before, even by a closed auction).
    Otherwise one ``auction_opened`` event, which gives the bidding terms but not the
    seed, the reserve price or the cost containment reserve (they appear in the result).
    Auction names are their own namespace, apart from instrument symbols.

Bids (``bid``)
    Bids are sealed: a bid is answered by ``accepted`` (``id``, ``symbol`` = the auction's
    name) or ``rejected``, and nothing else about it is published until the result.
    Refusals, first that applies: ``malformed`` (id outside 0..2**63-1, empty account or
    auction name, price or qty not a 64-bit integer), ``unknown_auction``,
    ``auction_closed``, ``bad_price`` (not positive or off the auction's tick),
    ``bad_qty`` (not positive or not a whole number of lots), ``duplicate_id`` (the id of
    any order or bid ever accepted), then the engine's pre-trade hook
    (:attr:`carbonbook.core.engine.Engine.admit_bid`), whose refusal carries its own reason.
    A rejected bid changes nothing and does not claim its id. An accepted bid's id is
    entered in the engine's id index with status :data:`BID`, so no order or bid can
    reuse it; a bid cannot be cancelled or modified (``unknown_order``).

    A bid below the reserve price is *not* rejected at bid time: the reserve is not
    public (the EU reserve is set from the secondary market and kept secret), and a
    rejection would reveal it. It is accepted and refused at clearing, listed in the
    result's ``refused`` with reason ``below_reserve``; its quantity also decides whether
    a failed auction is cancelled as ``below_reserve`` or ``undersubscribed``. Over-cap
    quantities are likewise cut at clearing (``over_cap``).

Closing (``auction_close``)
    Refusals: ``malformed`` (no auction name), ``unknown_auction``, ``auction_closed``.
    Otherwise the bids accepted, in the order they arrived, are cleared once and one
    ``auction_cleared`` event is written: the clearing price (null when cancelled), the
    allocations per bid and per bidder, the refused bids and the recorded tie order, with
    the seller, unit, currency, scheme, period and every term of the auction. The
    auction then stays known as closed (its bids are dropped): later bids and closes are
    refused with ``auction_closed``, and its name cannot be opened again.

Determinism
    Nothing reads the clock or an unseeded random source: the tie order comes from the
    auction's ``seed`` and the number of bids admitted at clearing, so the same log gives
    byte-identical events.

Cost
    Opening and each bid are O(1); closing is :func:`~carbonbook.auction.clear_auction`'s
    O(n log n) for n bids.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from carbonbook._types import INT64_MAX, RejectReason, UnitType, is_int64, is_order_id, name_fault
from carbonbook.auction import (
    AuctionSpec,
    AuctionSpecError,
    Bid,
    CapRule,
    CostContainmentReserve,
    TieRule,
    check_spec,
    clear_auction,
)
from carbonbook.commands import CloseAuction, OpenAuction, PlaceBid, names_fault
from carbonbook.core.book import Index
from carbonbook.errors import BookIntegrityError, SnapshotError
from carbonbook.events import Accepted, AuctionCleared, AuctionOpened, Event, Rejected

BID = "bid"
"""Id-index status of an accepted primary-auction bid (its id can never be used again)."""

Admit = Callable[[PlaceBid, OpenAuction], "tuple[str, str] | None"]
"""The pre-trade hook: ``(bid, auction terms) -> (reason, detail)`` to refuse, or None to accept."""

_MALFORMED = RejectReason.MALFORMED
_UNITS = frozenset(UnitType)
_TIE_RULES = frozenset(TieRule)
_CAP_RULES = frozenset(CapRule)


class AuctionSession:
    """One auction: its ``terms`` (the opening command, normalised, without ``ts``), its
    ``spec``, the accepted ``bids`` in arrival order, and whether it is ``closed``."""

    __slots__ = ("bids", "closed", "spec", "terms")

    def __init__(self, terms: OpenAuction, spec: AuctionSpec, bids: list[Bid], closed: bool) -> None:
        self.terms = terms
        self.spec = spec
        self.bids = bids
        self.closed = closed


Auctions = dict[str, AuctionSession]
"""An engine's auctions by name, in opening order (closed ones included, without bids)."""


class AuctionState(msgspec.Struct, frozen=True):
    """One auction in an engine snapshot: its terms, whether it is closed, and its bids
    ``(id, account, price, qty)`` in arrival order (none once closed)."""

    terms: OpenAuction
    closed: bool
    bids: list[tuple[int, str, int, int]]


def _in(value: object, members: frozenset[str]) -> bool:
    return isinstance(value, str) and value in members


def _spec(cmd: OpenAuction) -> AuctionSpec:
    return AuctionSpec(
        volume=cmd.volume, seed=cmd.seed, tie_rule=cmd.tie_rule, reserve_price=cmd.reserve_price,
        lot=cmd.lot, tick=cmd.tick, bidder_cap=cmd.bidder_cap, cap_rule=cmd.cap_rule, ccr=cmd.ccr,
    )


def terms_fault(cmd: OpenAuction) -> str | None:
    """Why the opening command ``cmd`` is malformed, or None."""
    fault = names_fault(cmd)  # auction, seller, currency and scheme
    if fault is not None:
        return fault
    if not (_in(cmd.unit, _UNITS) and _in(cmd.tie_rule, _TIE_RULES) and _in(cmd.cap_rule, _CAP_RULES)):
        return "unit, tie_rule or cap_rule outside its set"
    if cmd.period is not None and not is_int64(cmd.period):
        return "period must be a 64-bit integer or null"
    ccr = cmd.ccr
    if ccr is not None and ccr.__class__ is not CostContainmentReserve:
        return "ccr must be an object with trigger_price and volume"
    for name in ("volume", "seed", "lot", "tick", "reserve_price", "bidder_cap"):
        value = getattr(cmd, name)
        if value is not None and not is_int64(value):
            return f"{name} must be a 64-bit integer"
    if ccr is not None and not (is_int64(ccr.trigger_price) and is_int64(ccr.volume)):
        return "ccr trigger_price and volume must be 64-bit integers"
    try:
        check_spec(_spec(cmd))
    except AuctionSpecError as exc:
        return str(exc)
    return None


def open_auction(auctions: Auctions, cmd: OpenAuction, seq: Callable[[], int], events: list[Event]) -> None:
    """Open the auction ``cmd`` describes, or refuse it (see the module docstring). O(1)."""
    fault = terms_fault(cmd)
    if fault is not None:
        events.append(Rejected(seq(), None, _MALFORMED, fault))
        return
    name = cmd.auction
    if name in auctions:
        events.append(Rejected(seq(), None, RejectReason.DUPLICATE_AUCTION,
                               f"auction {name} was opened before"))
        return
    terms = msgspec.structs.replace(cmd, unit=UnitType(cmd.unit), tie_rule=TieRule(cmd.tie_rule),
                                    cap_rule=CapRule(cmd.cap_rule), ts=None)
    auctions[name] = AuctionSession(terms, _spec(terms), [], False)
    events.append(AuctionOpened(seq(), name, terms.unit, terms.volume, terms.seller, terms.tie_rule,
                                terms.lot, terms.tick, terms.bidder_cap, terms.cap_rule,
                                terms.currency, terms.scheme, terms.period))


def place_bid(auctions: Auctions, index: Index, cmd: PlaceBid, seq: Callable[[], int],
              events: list[Event], admit: Admit | None) -> None:
    """Accept the sealed bid ``cmd`` or refuse it (see the module docstring); ``admit`` is
    the pre-trade hook, called last. O(1) plus the hook."""
    oid, name, account, price, qty = cmd.id, cmd.auction, cmd.account, cmd.price, cmd.qty
    session = auctions.get(name) if name.__class__ is str else None
    if (
        session is not None
        and not session.closed
        and oid.__class__ is int
        and 0 <= oid <= INT64_MAX
        and name_fault(account) is None
        and price.__class__ is int
        and 0 < price <= INT64_MAX
        and not price % session.spec.tick
        and qty.__class__ is int
        and 0 < qty <= INT64_MAX
        and not qty % session.spec.lot
        and oid not in index
    ):
        refusal = None if admit is None else admit(cmd, session.terms)
        if refusal is None:
            index[oid] = BID
            session.bids.append(Bid(oid, account, price, qty))
            events.append(Accepted(seq(), oid, name))
        else:
            reason, detail = refusal
            events.append(Rejected(seq(), oid, reason, detail))
        return
    # The slow path names the first reason that applies.
    if not is_order_id(oid):
        events.append(Rejected(seq(), None, _MALFORMED, f"bad bid id {oid!r}"))
        return
    fault = names_fault(cmd)  # auction and account
    if fault is None and not (is_int64(price) and is_int64(qty)):
        fault = "price and qty must be 64-bit integers"
    if fault is not None:
        events.append(Rejected(seq(), oid, _MALFORMED, fault))
    elif session is None:
        events.append(Rejected(seq(), oid, RejectReason.UNKNOWN_AUCTION, f"no auction {name}"))
    elif session.closed:
        events.append(Rejected(seq(), oid, RejectReason.AUCTION_CLOSED, f"auction {name} is closed"))
    elif price <= 0 or price % session.spec.tick:
        events.append(Rejected(seq(), oid, RejectReason.BAD_PRICE,
                               f"price {price} is not positive or not a multiple of the tick"))
    elif qty <= 0 or qty % session.spec.lot:
        events.append(Rejected(seq(), oid, RejectReason.BAD_QTY,
                               f"qty {qty} is not positive or not a multiple of the lot"))
    else:
        events.append(Rejected(seq(), oid, RejectReason.DUPLICATE_ID, f"id {oid} was used before"))


def close_auction(auctions: Auctions, cmd: CloseAuction, seq: Callable[[], int], events: list[Event]) -> None:
    """Close and clear the auction ``cmd`` names, or refuse (see the module docstring).

    Runtime complexity: O(n log n) for n bids (:func:`~carbonbook.auction.clear_auction`).
    """
    name = cmd.auction
    fault = names_fault(cmd)
    if fault is not None:
        events.append(Rejected(seq(), None, _MALFORMED, fault))
        return
    session = auctions.get(name)
    if session is None:
        events.append(Rejected(seq(), None, RejectReason.UNKNOWN_AUCTION, f"no auction {name}"))
        return
    if session.closed:
        events.append(Rejected(seq(), None, RejectReason.AUCTION_CLOSED, f"auction {name} is closed"))
        return
    t, spec = session.terms, session.spec
    r = clear_auction(spec, session.bids)
    session.closed = True
    session.bids = []
    events.append(AuctionCleared(
        seq(), name, t.seller, t.unit, t.currency, t.scheme, t.period, r.cancelled, r.cancel_reason,
        r.clearing_price, r.volume, r.volume_sold, r.ccr_triggered, r.ccr_released, r.demand,
        spec.tie_rule, spec.seed, spec.lot, spec.tick, spec.reserve_price, spec.bidder_cap,
        spec.cap_rule, spec.ccr, r.allocations, r.bidders, r.refused, r.tie_order,
    ))


# -- state ------------------------------------------------------------------------------


def export_auctions(auctions: Auctions) -> list[AuctionState]:
    """The auctions as snapshot data, in opening order. O(bids)."""
    return [AuctionState(s.terms, s.closed, [(b.id, b.account, b.price, b.qty) for b in s.bids])
            for s in auctions.values()]


def restore_auctions(states: list[AuctionState], index: Index) -> Auctions:
    """The auctions ``states`` describe; every bid id must be in ``index`` with status
    :data:`BID`. Raises :class:`~carbonbook.errors.SnapshotError` if they are inconsistent."""
    auctions: Auctions = {}
    for state in states:
        terms = state.terms
        fault = terms_fault(terms)
        if fault is not None or terms.auction in auctions:
            raise SnapshotError(f"auction {terms.auction!r}: {fault or 'listed twice'}")
        if state.closed and state.bids:
            raise SnapshotError(f"auction {terms.auction}: closed but holds bids")
        bids = [Bid(*b) for b in state.bids]
        for bid in bids:
            if index.get(bid.id) != BID:
                raise SnapshotError(f"auction {terms.auction}: bid {bid.id} is not a bid in the index")
        auctions[terms.auction] = AuctionSession(terms, _spec(terms), bids, state.closed)
    return auctions


def check_auctions(auctions: Auctions, index: Index) -> None:
    """Assert that every open auction's bids are valid, distinct and marked :data:`BID` in
    ``index``; raise :class:`~carbonbook.errors.BookIntegrityError`. O(bids)."""
    seen: set[int] = set()
    for name, session in auctions.items():
        if session.closed and session.bids:
            raise BookIntegrityError(f"auction {name} is closed but holds bids")
        tick, lot = session.spec.tick, session.spec.lot
        for bid in session.bids:
            if index.get(bid.id) != BID or bid.id in seen:
                raise BookIntegrityError(f"auction {name}: bid {bid.id} is not a unique bid in the index")
            if bid.price <= 0 or bid.price % tick or bid.qty <= 0 or bid.qty % lot:
                raise BookIntegrityError(f"auction {name}: bid {bid.id} is off the tick or lot")
            seen.add(bid.id)
