"""Primary allowance auctions: single-round, sealed-bid, uniform-price (EU, RGGI, WCI).

A scheme's auction account offers ``volume`` tonnes; bidders send sealed bids (id,
account, price per tonne, quantity); when the window closes :func:`clear_auction`
computes one clearing price and every winner pays it. The function is pure: the
same :class:`AuctionSpec` and bids give the same :class:`AuctionResult` (equal,
field by field). Prices are integers in minor currency units per tonne, quantities
integers in tonnes; there are no floats anywhere.

Refused bids
    Each bid is checked in input order; the first reason that applies wins
    (:class:`BidRefusal`): ``malformed`` (id not an int in 0..2**63-1, or account
    not a non-empty string), ``bad_price`` (not an integer in 1..2**63-1, or off the
    ``tick``), ``bad_qty`` (not a positive multiple of ``lot``), ``below_reserve``
    (price below ``reserve_price``; nothing is ever sold below the reserve), then
    ``duplicate_id`` (the id of a bid already admitted). As in the engine, a refused
    bid does not claim its id. The bids left are *admitted*.

Tie order
    Before any clearing, the admitted bids, in the order given (submission order),
    are shuffled with ``random.Random(seed).shuffle``: that permutation is the tie
    order, fixed before any price is compared, and recorded in the result
    (``tie_order``, bid ids). Which position goes where depends only on the seed and
    the number of admitted bids, never on prices or quantities. Passing a recorded
    ``tie_order`` to :func:`clear_auction` instead of the seed replays an auction
    exactly, whatever order the bids are listed in and even if ``random`` ever
    changed its algorithm.

Priority
    Bids are ranked by price, highest first, equal prices in tie order (one stable
    sort of the tie order by price).

Per-bidder cap
    ``bidder_cap`` limits what one account may be allocated; it is applied to the
    bids, so no allocation can exceed it. The effective cap is rounded down to a
    whole number of lots. Each account's bids are taken in priority order (its best
    prices first) until the cap is reached. ``cap_rule`` says what happens to the
    bid that crosses it: ``cut`` (default; WCI cuts bids to the bidder's limits)
    reduces it to what still fits and refuses the excess, ``reject`` (an EU-style
    "the bid is invalid") refuses it whole and goes on with the account's later
    bids, which may still fit. An account's bids at one price are taken in tie
    order. The cap is a fixed quantity: releasing a cost containment reserve does
    not raise it. Every bid, or part of one, taken off is listed in
    ``refused`` with reason ``over_cap`` and the quantity taken off. ``cut`` is the
    default because it keeps the bidder's best-priced demand and never turns a
    slightly oversized bid into no bid at all.

Clearing (Reg. (EU) 1031/2010 Art. 7)
    Cumulate the admitted quantities in priority order. If the total is below the
    volume offered, the auction is cancelled: ``below_reserve`` if the bids refused
    as below the reserve would have covered the shortfall (the clearing price would
    have been below the reserve price), else ``undersubscribed``. (The EU's "clearing
    price significantly below the secondary market" test is this reserve, computed by
    the caller from the market price before the auction. RGGI and WCI are recalled
    to sell what is bid at the reserve price when undersubscribed; that mode is not
    offered here.) Otherwise the clearing price is the price of the bid at which the
    running total first reaches or exceeds the volume. Every bid priced above it is
    filled in full at the clearing price; the bids *at* the clearing price share what
    is left, by the tie rule:

    ``eu``
        In tie order, each tied bid is filled in full until the volume runs out; the
        last (marginal) bid gets only the remainder, the bids after it nothing.
    ``wci`` (Québec s. 61.5 pattern)
        What is left is shared over the tied *accounts* (an account's tied quantity
        is the sum of its bids at the clearing price; its place is that of its first
        such bid in tie order). Counting in lots, with ``r`` lots left and ``Q`` lots
        tied in all, an account with ``q`` tied lots gets ``floor(q * r / Q)`` lots
        (``lot`` = 1 gives the regulation's one-allowance rule); the lots left over
        go one lot each to the tied accounts in tie order (the ascending
        random-number order).
        Rounding to lots keeps every allocation a whole number of lots, and fewer
        lots are left over than there are tied accounts, so no account gets more
        than one extra lot nor more than it bid. An account's award is spread over
        its tied bids in tie order.

Cost containment reserve (RGGI)
    If the clearing price exceeds ``ccr.trigger_price``, ``ccr.volume`` more is
    offered and the auction is cleared once more over the same ranking. The reserve
    is sold only at or above the trigger: if the demand at or above the trigger
    covers the enlarged volume, clearing proceeds as above; if not, the clearing
    price is the trigger price, every bid at or above it is filled in full and only
    part of the reserve is sold. Either way at least the base volume is sold, and
    the second clearing uses the same ranking, caps and tie order as the first.
    ``ccr_released`` is the reserve volume sold.

Result
    :class:`AuctionResult`: cancelled flag and reason, clearing price, volume sold,
    per-bid allocations (``allocations``, in priority order, zero fills omitted) and
    per-account totals (``bidders``, by account name), both summing to the volume
    sold; the tie order; the refused bids in input order (``over_cap`` cuts after
    the per-bid refusals, in priority order). A cancelled auction allocates nothing
    and has no clearing price.

Errors
    Bad bids never raise: they are refused. A bad :class:`AuctionSpec` (misuse by
    the auctioneer) or a ``tie_order`` that is not a permutation of the admitted
    bids raises :class:`AuctionSpecError`.

Cost
    For ``n`` bids: O(n) checks, an O(n) shuffle, one O(n log n) sort by price (of
    the shuffled list, stable, so ties keep the tie order), an O(n) cap pass and
    running total (``itertools.accumulate``), bisections for the marginal bid and the
    tied run, and O(w) to build the allocations of ``w`` winning bids; the WCI share
    is O(t) for ``t`` tied bids. No per-bid work is more than constant apart from the
    sort. 100,000 bids clear in 0.2-0.5 s of CPU on this shared two-core machine
    (``bench/auction_clear.py``; the spread is the machine's load).

>>> spec = AuctionSpec(volume=5_000, lot=1_000, seed=7, tie_rule=TieRule.EU)
>>> bids = [Bid(1, "a", 1500, 3_000), Bid(2, "b", 1400, 2_000), Bid(3, "c", 1400, 2_000)]
>>> r = clear_auction(spec, bids)
>>> r.clearing_price, r.volume_sold, [(x.id, x.qty) for x in r.allocations]
(1400, 5000, [(1, 3000), (3, 2000)])
>>> r.tie_order
(3, 1, 2)
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from enum import StrEnum
from itertools import accumulate
from operator import attrgetter

import msgspec

from carbonbook._types import INT64_MAX, Int64, Name, OrderId
from carbonbook.errors import CarbonbookError

__all__ = [
    "AuctionCancelReason",
    "AuctionResult",
    "AuctionSpec",
    "AuctionSpecError",
    "Bid",
    "BidAllocation",
    "BidRefusal",
    "BidderAllocation",
    "CapRule",
    "CostContainmentReserve",
    "RefusedBid",
    "TieRule",
    "check_spec",
    "clear_auction",
]


class AuctionSpecError(CarbonbookError, ValueError):
    """Raised when an auction spec, or a tie order given to replay, is invalid."""


class TieRule(StrEnum):
    """How bids at the clearing price share what is left."""

    EU = "eu"
    """In tie order; the marginal bid gets the remainder (Reg. 1031/2010 Art. 7)."""
    WCI = "wci"
    """Pro rata per account, rounded down to lots; leftover lots one each in tie order."""


class CapRule(StrEnum):
    """What happens to the bid that takes an account over ``bidder_cap``."""

    CUT = "cut"
    """Reduce it to what still fits (WCI); the excess is refused."""
    REJECT = "reject"
    """Refuse it whole; the account's later bids may still fit."""


class BidRefusal(StrEnum):
    """Why a bid, or part of one, was not admitted to the auction."""

    MALFORMED = "malformed"
    BAD_PRICE = "bad_price"
    BAD_QTY = "bad_qty"
    BELOW_RESERVE = "below_reserve"
    DUPLICATE_ID = "duplicate_id"
    OVER_CAP = "over_cap"


class AuctionCancelReason(StrEnum):
    """Why an auction was cancelled (nothing is sold)."""

    UNDERSUBSCRIBED = "undersubscribed"
    """Admitted demand is below the volume offered."""
    BELOW_RESERVE = "below_reserve"
    """Demand covers the volume only at prices below the reserve price."""


class CostContainmentReserve(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """``volume`` more tonnes, sold at or above ``trigger_price``, offered if the clearing price exceeds it."""

    trigger_price: Int64
    volume: Int64


class AuctionSpec(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One auction's terms.

    ``volume`` tonnes offered (a multiple of ``lot``); bids must be priced in multiples
    of ``tick`` and sized in multiples of ``lot``; ``reserve_price`` (or None) is the
    lowest admissible bid price; ``bidder_cap`` (or None) the most one account may buy,
    applied by ``cap_rule``; ``tie_rule`` shares the marginal price; ``seed`` fixes the
    tie order; ``ccr`` is an optional cost containment reserve.
    """

    volume: Int64
    seed: Int64
    tie_rule: TieRule = TieRule.EU
    reserve_price: Int64 | None = None
    lot: Int64 = 1
    tick: Int64 = 1
    bidder_cap: Int64 | None = None
    cap_rule: CapRule = CapRule.CUT
    ccr: CostContainmentReserve | None = None


class Bid(msgspec.Struct, frozen=True, gc=False):
    """A sealed bid: account ``account`` would buy up to ``qty`` tonnes at up to ``price`` per tonne."""

    id: OrderId
    account: Name
    price: Int64
    qty: Int64


class BidAllocation(msgspec.Struct, frozen=True, gc=False):
    """Bid ``id`` of ``account`` was allocated ``qty`` tonnes at the clearing price."""

    id: int
    account: str
    qty: int


class BidderAllocation(msgspec.Struct, frozen=True, gc=False):
    """``account`` was allocated ``qty`` tonnes in all, over ``bids`` of its bids."""

    account: str
    qty: int
    bids: int


class RefusedBid(msgspec.Struct, frozen=True, gc=False):
    """``qty`` tonnes of bid ``id`` (the whole bid, or the part cut by a cap) were refused for ``reason``."""

    id: int
    account: str
    reason: BidRefusal
    qty: int


class AuctionResult(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The outcome of :func:`clear_auction`; see the module docstring for each rule.

    ``volume`` is the base volume offered and ``ccr_released`` the reserve volume
    sold, so ``volume_sold == volume + ccr_released`` unless cancelled (then 0).
    ``demand`` is the admitted quantity after caps. ``allocations`` and ``bidders``
    both sum to ``volume_sold``.
    """

    cancelled: bool
    cancel_reason: AuctionCancelReason | None
    clearing_price: int | None
    volume: int
    volume_sold: int
    ccr_triggered: bool
    ccr_released: int
    demand: int
    allocations: tuple[BidAllocation, ...]
    bidders: tuple[BidderAllocation, ...]
    tie_order: tuple[int, ...]
    refused: tuple[RefusedBid, ...]


def _is_positive_int(value: object) -> bool:
    return type(value) is int and 0 < value <= INT64_MAX


def _check_spec(spec: AuctionSpec) -> None:
    lot, tick = spec.lot, spec.tick
    for name in ("lot", "tick", "volume"):
        if not _is_positive_int(getattr(spec, name)):
            raise AuctionSpecError(f"{name} must be a positive 64-bit integer, not {getattr(spec, name)!r}")
    if spec.volume % lot:
        raise AuctionSpecError(f"volume {spec.volume} is not a whole number of lots of {lot}")
    if not (spec.seed.__class__ is int and 0 <= spec.seed <= INT64_MAX):
        raise AuctionSpecError(f"seed must be an integer in 0..2**63-1, not {spec.seed!r}")
    if spec.tie_rule not in _TIE_RULES or spec.cap_rule not in _CAP_RULES:
        raise AuctionSpecError(f"unknown tie rule {spec.tie_rule!r} or cap rule {spec.cap_rule!r}")
    reserve = spec.reserve_price
    if reserve is not None and not (_is_positive_int(reserve) and reserve % tick == 0):
        raise AuctionSpecError(f"reserve price must be a positive multiple of the tick, not {reserve!r}")
    cap = spec.bidder_cap
    if cap is not None and not (_is_positive_int(cap) and cap >= lot):
        raise AuctionSpecError(f"bidder cap must be an integer of at least one lot, not {cap!r}")
    ccr = spec.ccr
    if ccr is not None:
        trigger = ccr.trigger_price
        if not (_is_positive_int(trigger) and trigger % tick == 0):
            raise AuctionSpecError(f"CCR trigger must be a positive multiple of the tick, not {trigger!r}")
        if reserve is not None and trigger < reserve:
            raise AuctionSpecError(f"CCR trigger {trigger} is below the reserve price {reserve}")
        if not (_is_positive_int(ccr.volume) and ccr.volume % lot == 0):
            raise AuctionSpecError(f"CCR volume must be a positive whole number of lots, not {ccr.volume!r}")


_TIE_RULES = frozenset(TieRule)
_CAP_RULES = frozenset(CapRule)


def check_spec(spec: AuctionSpec) -> None:
    """Raise :class:`AuctionSpecError` if ``spec`` is not a valid auction spec (what
    :func:`clear_auction` checks first). O(1)."""
    _check_spec(spec)


def _admit(
    spec: AuctionSpec, bids: Iterable[Bid]
) -> tuple[list[Bid], list[RefusedBid], int]:
    """Per-bid checks in input order: the admitted bids, the refusals and the refused below-reserve quantity."""
    lot, tick = spec.lot, spec.tick
    reserve = spec.reserve_price or 0
    admitted: list[Bid] = []
    refused: list[RefusedBid] = []
    below_reserve = 0
    seen: set[int] = set()
    for bid in bids:
        bid_id, account, price, qty = bid.id, bid.account, bid.price, bid.qty
        if (
            bid_id.__class__ is int
            and 0 <= bid_id <= INT64_MAX
            and price.__class__ is int
            and 0 < price <= INT64_MAX
            and price % tick == 0
            and qty.__class__ is int
            and 0 < qty <= INT64_MAX
            and qty % lot == 0
            and price >= reserve
            and account.__class__ is str
            and account
            and bid_id not in seen
        ):
            seen.add(bid_id)
            admitted.append(bid)
            continue
        # The slow path names the first reason that applies.
        if not (bid_id.__class__ is int and 0 <= bid_id <= INT64_MAX) or not (
            account.__class__ is str and account
        ):
            reason = BidRefusal.MALFORMED
        elif not (_is_positive_int(price) and price % tick == 0):
            reason = BidRefusal.BAD_PRICE
        elif not (_is_positive_int(qty) and qty % lot == 0):
            reason = BidRefusal.BAD_QTY
        elif price < reserve:
            reason = BidRefusal.BELOW_RESERVE
            below_reserve += qty
        else:
            reason = BidRefusal.DUPLICATE_ID
        refused.append(RefusedBid(bid_id, account, reason, qty))
    return admitted, refused, below_reserve


def _tie_order(spec: AuctionSpec, admitted: list[Bid], recorded: Sequence[int] | None) -> list[Bid]:
    """The admitted bids in tie order: shuffled by the seed, or in a recorded order of their ids."""
    if recorded is None:
        shuffled = admitted.copy()
        random.Random(spec.seed).shuffle(shuffled)
        return shuffled
    by_id = {bid.id: bid for bid in admitted}
    if len(recorded) != len(by_id) or set(recorded) != by_id.keys():
        raise AuctionSpecError("tie_order is not a permutation of the admitted bids' ids")
    return [by_id[bid_id] for bid_id in recorded]


_ID = attrgetter("id")
_PRICE = attrgetter("price")
_QTY = attrgetter("qty")


def _neg_price(bid: Bid) -> int:
    return -bid.price


def clear_auction(
    spec: AuctionSpec, bids: Iterable[Bid], *, tie_order: Sequence[int] | None = None
) -> AuctionResult:
    """Clear one sealed-bid uniform-price auction (see the module docstring for the rules).

    ``tie_order``, when given, is a tie order recorded by an earlier run (the result's
    ``tie_order``) and is used instead of the seed; it must list each admitted bid's
    id exactly once. Raises :class:`AuctionSpecError` for a bad spec or tie order;
    bad bids are refused, never raised.

    Runtime complexity: O(n log n) for n bids (one shuffle, one sort, linear passes).
    """
    _check_spec(spec)
    admitted, refused, below_reserve = _admit(spec, bids)
    tied = _tie_order(spec, admitted, tie_order)
    recorded = tuple(map(_ID, tied))
    # Priority: price descending, equal prices in tie order (reverse=True keeps the sort stable).
    ranked = sorted(tied, key=_PRICE, reverse=True)
    if spec.bidder_cap is None:
        qtys = list(map(_QTY, ranked))
    else:
        ranked, qtys = _apply_cap(spec, ranked, refused)
    cums = list(accumulate(qtys))
    demand = cums[-1] if cums else 0
    volume = spec.volume

    def cancelled(reason: AuctionCancelReason) -> AuctionResult:
        return AuctionResult(
            cancelled=True, cancel_reason=reason, clearing_price=None, volume=volume, volume_sold=0,
            ccr_triggered=False, ccr_released=0, demand=demand, allocations=(), bidders=(),
            tie_order=recorded, refused=tuple(refused),
        )

    if demand < volume:
        if spec.reserve_price is not None and demand + below_reserve >= volume:
            return cancelled(AuctionCancelReason.BELOW_RESERVE)
        return cancelled(AuctionCancelReason.UNDERSUBSCRIBED)

    target = volume
    price = ranked[bisect_left(cums, volume)].price
    ccr, ccr_triggered = spec.ccr, False
    fills: list[int]
    if ccr is not None and price > ccr.trigger_price:
        ccr_triggered = True
        trigger = ccr.trigger_price
        at_trigger = bisect_right(ranked, -trigger, key=_neg_price)  # bids priced at or above the trigger
        if cums[at_trigger - 1] >= volume + ccr.volume:
            target = volume + ccr.volume
            price = ranked[bisect_left(cums, target)].price
            fills = _fill(spec, ranked, qtys, cums, target, price)
        else:  # the reserve is sold only at or above the trigger: all of that demand, at the trigger
            target = cums[at_trigger - 1]
            price = trigger
            fills = qtys[:at_trigger]
    else:
        fills = _fill(spec, ranked, qtys, cums, target, price)

    allocations: list[BidAllocation] = []
    per_account: dict[str, list[int]] = {}
    for bid, qty in zip(ranked, fills, strict=False):  # fills covers a prefix of ranked
        if qty:
            account = bid.account
            allocations.append(BidAllocation(bid.id, account, qty))
            tally = per_account.get(account)
            if tally is None:
                per_account[account] = [qty, 1]
            else:
                tally[0] += qty
                tally[1] += 1
    bidders = tuple([BidderAllocation(acct, t[0], t[1]) for acct, t in sorted(per_account.items())])
    return AuctionResult(
        cancelled=False, cancel_reason=None, clearing_price=price, volume=volume, volume_sold=target,
        ccr_triggered=ccr_triggered, ccr_released=target - volume, demand=demand,
        allocations=tuple(allocations), bidders=bidders, tie_order=recorded, refused=tuple(refused),
    )


def _apply_cap(spec: AuctionSpec, ranked: list[Bid], refused: list[RefusedBid]) -> tuple[list[Bid], list[int]]:
    """Apply the cap in priority order: the bids kept and their quantities; cuts are added to ``refused``."""
    assert spec.bidder_cap is not None
    cap = spec.bidder_cap // spec.lot * spec.lot
    cut = spec.cap_rule == CapRule.CUT
    taken: dict[str, int] = {}
    kept: list[Bid] = []
    qtys: list[int] = []
    for bid in ranked:
        account, qty = bid.account, bid.qty
        held = taken.get(account, 0)
        if held + qty <= cap:
            taken[account] = held + qty
            kept.append(bid)
            qtys.append(qty)
        elif cut and held < cap:
            room = cap - held
            taken[account] = cap
            kept.append(bid)
            qtys.append(room)
            refused.append(RefusedBid(bid.id, account, BidRefusal.OVER_CAP, qty - room))
        else:
            refused.append(RefusedBid(bid.id, account, BidRefusal.OVER_CAP, qty))
    return kept, qtys


def _fill(
    spec: AuctionSpec, ranked: list[Bid], qtys: list[int], cums: list[int], target: int, price: int
) -> list[int]:
    """Fills by priority position, up to the last one that gets anything: ``target`` tonnes at ``price``."""
    if spec.tie_rule == TieRule.EU:
        k = bisect_left(cums, target)  # the marginal bid
        fills = qtys[:k]
        fills.append(target - (cums[k - 1] if k else 0))
        return fills
    first = bisect_left(ranked, -price, key=_neg_price)  # the first bid at the clearing price
    end = bisect_right(ranked, -price, key=_neg_price)  # one past the last
    above = cums[first - 1] if first else 0
    remainder = target - above
    tied = cums[end - 1] - above
    fills = qtys[:end]
    if tied == remainder:
        return fills
    lot = spec.lot
    groups: dict[str, list[int]] = {}  # account -> its tied positions, accounts in tie order
    for pos in range(first, end):
        groups.setdefault(ranked[pos].account, []).append(pos)
    remainder_lots, tied_lots = remainder // lot, tied // lot
    awards = [sum([qtys[p] for p in positions]) // lot * remainder_lots // tied_lots
              for positions in groups.values()]
    for j in range(remainder_lots - sum(awards)):  # fewer than len(groups): one lot each, in tie order
        awards[j] += 1
    for positions, award in zip(groups.values(), awards, strict=True):
        left = award * lot
        for pos in positions:
            take = min(left, qtys[pos])
            fills[pos] = take
            left -= take
    return fills
