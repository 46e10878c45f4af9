"""Commands: the input records of the order log, as tagged msgspec Structs.

Each Struct's tag is its ``type`` in the order log. Decoding with
:data:`carbonbook.codec` validates types and bounds; the engine checks the
rest (tick, lot, ids, book state) and answers with events, never exceptions.
The Structs forbid unknown fields, so that a decoder notices them: the order log ignores
them (ORDER-LOG.md), and :mod:`carbonbook.codec` decodes such a record again without them
and counts it (``replay``'s summary names the fields).
"""

from __future__ import annotations

from typing import Literal, get_args, get_type_hints

import msgspec

from carbonbook._types import (
    INT64_MAX,
    Int64,
    Name,
    OffsetLimit,
    OrderId,
    OrderType,
    Phase,
    SelfTradePrevention,
    Side,
    TimeInForce,
    UnitType,
    is_int64,
    name_fault,
)
from carbonbook.auction import CapRule, CostContainmentReserve, TieRule


class ListInstrument(msgspec.Struct, tag_field="type", tag="instrument", frozen=True, gc=False,
                     forbid_unknown_fields=True):
    """Open a book for ``symbol`` trading ``unit``; prices in multiples of ``tick``, quantities of ``lot``.

    ``phase`` is the starting phase (``continuous``, or ``call`` for a ``call_only``
    instrument, which trades by call auction only and takes limit orders only).
    ``band`` is a price band in basis points around the ``reference`` price (then
    around the last trade or uncross price): 9000 is JPX's plus or minus 90%.
    ``currency`` is what its prices are in (a venue settles trades in it; default: the venue's).
    """

    symbol: Name
    unit: UnitType
    tick: Int64 = 1
    lot: Int64 = 1
    ts: Int64 | None = None
    phase: Phase | None = None
    call_only: bool = False
    band: Int64 | None = None
    reference: Int64 | None = None
    currency: Name | None = None


class NewOrder(msgspec.Struct, tag_field="type", tag="new", frozen=True, gc=False,
               forbid_unknown_fields=True):
    """Enter an order. ``price`` is required for a limit order and absent for a market order.

    ``cap`` (market buys only) is the most the order may spend, in minor currency units:
    it trades only what the cap pays for, and the rest is cancelled like any unexecuted
    market remainder. A registry-backed venue requires it of market buys (their cash hold).
    """

    id: OrderId
    account: Name
    symbol: Name
    side: Side
    qty: Int64
    price: Int64 | None = None
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_INCOMING
    cap: Int64 | None = None
    ts: Int64 | None = None


class CancelOrder(msgspec.Struct, tag_field="type", tag="cancel", frozen=True, gc=False,
                  forbid_unknown_fields=True):
    """Cancel the open remainder of order ``id``."""

    id: OrderId
    ts: Int64 | None = None


class ModifyOrder(msgspec.Struct, tag_field="type", tag="modify", frozen=True, gc=False,
                  forbid_unknown_fields=True):
    """Change the price and/or the open quantity of order ``id``.

    A lower quantity at the same price keeps time priority; a new price or a higher
    quantity loses it, and a new price that crosses trades at once.
    """

    id: OrderId
    price: Int64 | None = None
    qty: Int64 | None = None
    ts: Int64 | None = None


class SetPhase(msgspec.Struct, tag_field="type", tag="phase", frozen=True, gc=False,
               forbid_unknown_fields=True):
    """Switch ``symbol`` to ``phase``; ``reference`` (optional) becomes its reference price.

    Leaving a call for ``continuous`` or ``closed`` uncrosses the book.
    """

    symbol: Name
    phase: Phase
    reference: Int64 | None = None
    ts: Int64 | None = None


class OpenAuction(msgspec.Struct, tag_field="type", tag="auction", frozen=True, gc=False,
                  forbid_unknown_fields=True):
    """Open the sealed-bid primary auction ``auction``: ``seller`` offers ``volume`` tonnes of ``unit``.

    The other fields are :class:`~carbonbook.auction.AuctionSpec`'s, with its names and
    defaults (``seed`` defaults to 0); ``currency``, ``scheme`` and ``period`` are carried
    to the result for settlement. See :mod:`carbonbook.core.primary`.
    """

    auction: Name
    unit: UnitType
    volume: Int64
    seller: Name
    tie_rule: TieRule = TieRule.EU
    seed: Int64 = 0
    lot: Int64 = 1
    tick: Int64 = 1
    reserve_price: Int64 | None = None
    bidder_cap: Int64 | None = None
    cap_rule: CapRule = CapRule.CUT
    ccr: CostContainmentReserve | None = None
    currency: Name | None = None
    scheme: Name | None = None
    period: Int64 | None = None
    ts: Int64 | None = None


class PlaceBid(msgspec.Struct, tag_field="type", tag="bid", frozen=True, gc=False,
               forbid_unknown_fields=True):
    """A sealed bid ``id`` in ``auction``: ``account`` would buy up to ``qty`` tonnes at up to ``price``.

    Bid ids share the order-id space: unique among every id ever accepted.
    """

    auction: Name
    id: OrderId
    account: Name
    price: Int64
    qty: Int64
    ts: Int64 | None = None


class CloseAuction(msgspec.Struct, tag_field="type", tag="auction_close", frozen=True, gc=False,
                   forbid_unknown_fields=True):
    """Close the bidding window of ``auction`` and clear it."""

    auction: Name
    ts: Int64 | None = None


# -- registry commands: carried out by a venue with a registry (carbonbook.venue) ---------


class RegistryCommand(msgspec.Struct, tag_field="type", frozen=True, gc=False, kw_only=True,
                      forbid_unknown_fields=True):
    """A command for the registry behind a venue. Without one, it is rejected (``no_registry``).

    ``actor`` is the person acting: a representative of the account the command acts for, or an
    administrator (see :mod:`carbonbook.registry._controls`); refused ``not_authorised`` when
    they may not. Absent, it is no one in particular, which only an account without
    representatives, or a registry without administrators, accepts (logs from before actors)."""

    ts: Int64 | None = None
    actor: Name | None = None


class OpenScheme(RegistryCommand, tag="scheme", frozen=True):
    """Create a compliance scheme: the ``allowances`` it issues, the ``credits`` it accepts
    for at most ``offset_percent`` % of an obligation, the first periods of its ``phases``,
    and whether it allows ``banking`` within a phase, ``phase_banking`` into a later phase
    (true, false, or the first periods of the phases it banks into)
    and ``borrowing`` from the next period within a phase (at most ``borrow_limit`` basis
    points of the next period's allocation); with ``removals`` its operators' verified
    emissions may be negative (net removals, NZ forestry). ``offset_limits`` is its offset
    table (rows ``{"unit", "bp", "base", "over"}``), ``excluded`` maps project types to the
    first period they no longer count for, ``links`` names the schemes whose allowances it
    accepts, at most ``import_limit`` basis points of an obligation; ``control_periods`` lists
    multi-year compliance periods as ``[first, last]`` (see
    :class:`~carbonbook.registry.base.Scheme`)."""

    name: Name
    allowances: frozenset[UnitType]
    credits: frozenset[UnitType] = frozenset()
    offset_percent: Int64 = 0
    banking: bool = True
    phases: frozenset[Int64] = frozenset()
    phase_banking: bool | frozenset[Int64] = True
    borrowing: bool = False
    removals: bool = False
    borrow_limit: Int64 | None = None
    offset_limits: tuple[OffsetLimit, ...] = ()
    excluded: dict[Name, Int64] = {}
    links: frozenset[Name] = frozenset()
    import_limit: Int64 | None = None
    control_periods: tuple[tuple[Int64, Int64], ...] = ()


class SetCap(RegistryCommand, tag="cap", frozen=True):
    """Set the issuance cap of ``scheme`` for ``period``."""

    scheme: Name
    period: Int64
    cap: Int64


class OpenAccount(RegistryCommand, tag="account", frozen=True):
    """Open an account: a participant's ``holding`` account (the default), a scheme's
    ``issuance`` account, or a ``retirement`` or ``cancellation`` account. ``units`` limits
    the unit types it may hold; ``scheme`` makes it an operator account of that scheme."""

    account: Name
    kind: Literal["holding", "issuance", "retirement", "cancellation"] = "holding"
    units: frozenset[UnitType] | None = None
    scheme: Name | None = None


class SetAccountStatus(RegistryCommand, tag="account_status", frozen=True):
    """Block, reopen or close an account (closing is final)."""

    account: Name
    status: Literal["open", "blocked", "closed"]


class Issue(RegistryCommand, tag="issue", frozen=True):
    """Issue ``qty`` new units of ``unit`` into ``account`` under ``scheme`` for ``period``: the
    next free serials of ``origin`` unless ``start`` is given; a credit may state its
    ``project_type``. Under a crediting programme: credits of registered ``project`` for its
    verified ``monitoring`` period, of the project's type."""

    account: Name
    unit: UnitType
    qty: Int64
    scheme: Name
    period: Int64
    origin: Name = "JP"
    start: Int64 | None = None
    project: Name | None = None
    expiry: Int64 | None = None
    project_type: Name | None = None
    monitoring: Int64 | None = None


class Allocate(RegistryCommand, tag="allocate", frozen=True):
    """Allocate free units to operator ``account`` for ``period`` by ``method``: ``benchmark``
    (``activity`` x ``rate``/``per``), ``grandfathering`` (the average of ``base`` years'
    emissions x ``rate``/``per`` minus ``reduction``) or ``intensity`` (forecast production
    ``activity`` x ``rate``/``per``, trued up later); see
    :class:`~carbonbook.registry.base.Allocation`."""

    account: Name
    period: Int64
    method: Literal["benchmark", "grandfathering", "intensity"]
    unit: UnitType | None = None
    activity: Int64 = 0
    rate: Int64 = 1
    per: Int64 = 1
    base: tuple[Int64, ...] = ()
    reduction: Int64 = 0
    origin: Name = "JP"


class TrueUp(RegistryCommand, tag="true_up", frozen=True):
    """True up ``account``'s intensity allocation for ``period`` on its verified ``production``:
    units given for a shortfall, or taken back into issuance account ``to`` for an excess."""

    account: Name
    period: Int64
    production: Int64
    to: Name | None = None
    origin: Name = "JP"


class ReturnAllocation(RegistryCommand, tag="allocation_return", frozen=True):
    """Return ``qty`` units of ``account``'s excess allocation for ``period`` into issuance
    account ``to``."""

    account: Name
    period: Int64
    qty: Int64
    to: Name


class Transfer(RegistryCommand, tag="transfer", frozen=True):
    """Move ``qty`` units of ``unit`` from ``sender`` to ``receiver`` (outside the market)."""

    sender: Name
    receiver: Name
    unit: UnitType
    qty: Int64


class Deposit(RegistryCommand, tag="deposit", frozen=True):
    """Credit ``amount`` minor units of ``currency`` to ``account``."""

    account: Name
    currency: Name
    amount: Int64


class RecordEmissions(RegistryCommand, tag="emissions", frozen=True):
    """Record ``account``'s verified emissions (tonnes) for ``period``."""

    account: Name
    period: Int64
    tonnes: Int64


class CorrectEmissions(RegistryCommand, tag="emissions_correction", frozen=True):
    """Correct ``account``'s recorded verified emissions for ``period`` to ``tonnes``, before
    the scheme's surrender deadline for it (the old figure stays in the journal)."""

    account: Name
    period: Int64
    tonnes: Int64


class Surrender(RegistryCommand, tag="surrender", frozen=True):
    """Surrender ``qty`` units of ``unit`` from ``account`` into retirement account ``to``
    against its obligation for ``period``: the oldest units the scheme accepts for it, only
    those of ``vintage`` when given, or serials ``start``..``end`` of ``origin`` when given."""

    account: Name
    period: Int64
    unit: UnitType
    qty: Int64
    to: Name
    vintage: Int64 | None = None
    origin: Name = "JP"
    start: Int64 | None = None
    end: Int64 | None = None


class Retire(RegistryCommand, tag="retire", frozen=True):
    """Retire ``qty`` units (into a retirement account) or cancel them voluntarily (into a
    cancellation account, as J-Credit 無効化) from ``account`` into ``to``; a cancellation
    records the ``beneficiary`` of the offset and its ``purpose`` in its certificate."""

    account: Name
    unit: UnitType
    qty: Int64
    to: Name
    beneficiary: Name | None = None
    purpose: Name | None = None


class CarryOver(RegistryCommand, tag="carry_over", frozen=True):
    """Bank ``account``'s active ``unit`` of ``period`` into the next period."""

    account: Name
    unit: UnitType
    period: Int64


class Expire(RegistryCommand, tag="expire", frozen=True):
    """Expire every active ``unit`` whose expiry (or, without one, period) is ``period`` or earlier."""

    unit: UnitType
    period: Int64


class SetDeadline(RegistryCommand, tag="deadline", frozen=True):
    """Set ``scheme``'s surrender deadline for ``period``: business ``day``, the last day a
    surrender or emissions for ``period`` count; when a later business day starts the period's
    compliance is final and each account short pays ``penalty`` (minor units of ``currency``)
    per tonne and carries ``multiple`` times its shortfall into the next obligation. ``report``
    is the reporting deadline (a business day up to ``day``): accounts without verified
    emissions when it passes get status C recorded."""

    scheme: Name
    period: Int64
    day: Int64
    penalty: Int64 = 0
    currency: Name | None = None
    multiple: Int64 = 1
    report: Int64 | None = None


class AddAdministrator(RegistryCommand, tag="administrator", frozen=True):
    """Make ``person`` an administrator of the registry (the first by anyone, later ones by an
    administrator): from then on only administrators do administrative acts."""

    person: Name


class AddRepresentative(RegistryCommand, tag="representative", frozen=True):
    """Make ``person`` an authorised representative of ``account`` (by an administrator): from
    then on only its representatives act for it."""

    account: Name
    person: Name


class SetControls(RegistryCommand, tag="controls", frozen=True):
    """Set ``account``'s transfer controls (by an administrator): ``trusted_delay`` business
    days before a trusted-list addition counts, ``outside_delay`` business days a transfer to an
    account outside the list waits (cancellable), or ``bar_outside`` to refuse those, ``limit``
    units per transfer outside the list, and ``four_eyes`` approval of every transfer."""

    account: Name
    trusted_delay: Int64 = 0
    outside_delay: Int64 = 0
    bar_outside: bool = False
    limit: Int64 | None = None
    four_eyes: bool = False


class ProposeTrusted(RegistryCommand, tag="trust", frozen=True):
    """A representative of ``account`` proposes adding ``trusted`` to its trusted account list."""

    account: Name
    trusted: Name


class ApproveTrusted(RegistryCommand, tag="trust_approval", frozen=True):
    """A second representative of ``account`` approves adding ``trusted`` to its trusted list."""

    account: Name
    trusted: Name


class RemoveTrusted(RegistryCommand, tag="distrust", frozen=True):
    """A representative of ``account`` removes ``trusted`` from its trusted list, at once."""

    account: Name
    trusted: Name


class ApproveTransfer(RegistryCommand, tag="transfer_approval", frozen=True):
    """A second representative of the sender approves pending transfer ``transfer`` (the txid
    of the ``recorded`` that proposed it)."""

    transfer: Int64


class CancelTransfer(RegistryCommand, tag="transfer_cancellation", frozen=True):
    """A representative of the sender, or an administrator, cancels pending transfer ``transfer``."""

    transfer: Int64


class SetProgramme(RegistryCommand, tag="programme", frozen=True):
    """Make scheme ``name`` a crediting programme with this methodology list (code: project
    type, e.g. ``{"E001": "woody biomass boiler fuel"}``); an administrator's act."""

    name: Name
    methodologies: dict[Name, Name]


class Accredit(RegistryCommand, tag="accreditation", frozen=True):
    """Accredit person ``verifier`` to verify ``programme``'s monitoring reports (an administrator's act)."""

    programme: Name
    verifier: Name


class RegisterProject(RegistryCommand, tag="project", frozen=True):
    """Register ``project`` under ``programme`` with ``methodology`` (from its list); its credits
    go to ``account`` (an administrator's act)."""

    project: Name
    programme: Name
    methodology: Name
    account: Name


class ReportMonitoring(RegistryCommand, tag="monitoring_report", frozen=True):
    """A representative of ``project``'s account reports the ``reductions`` (tonnes) of monitoring
    ``period``."""

    project: Name
    period: Int64
    reductions: Int64


class Verify(RegistryCommand, tag="verification", frozen=True):
    """An accredited verifier (the ``actor``) verifies ``verified`` tonnes of ``project``'s
    monitoring ``period`` (at most what was reported, once)."""

    project: Name
    period: Int64
    verified: Int64


class BusinessDay(RegistryCommand, tag="business_day", frozen=True):
    """Start business ``day`` (an integer, never decreasing): trades due by then settle."""

    day: Int64


Command = (ListInstrument | NewOrder | CancelOrder | ModifyOrder | SetPhase | OpenAuction | PlaceBid
           | CloseAuction | OpenScheme | SetCap | OpenAccount | SetAccountStatus | Issue | Allocate | TrueUp
           | ReturnAllocation | Transfer | Deposit
           | RecordEmissions | CorrectEmissions | Surrender | Retire | CarryOver | Expire | SetDeadline
           | AddAdministrator | AddRepresentative | SetControls | ProposeTrusted | ApproveTrusted
           | RemoveTrusted | ApproveTransfer | CancelTransfer | SetProgramme | Accredit | RegisterProject
           | ReportMonitoring | Verify | BusinessDay)
"""Any order-log command."""


class Undecodable(msgspec.Struct, frozen=True, gc=False):
    """An order-log record that is not a command: the engine answers it with a ``malformed``
    rejection at its place in the sequence. ``line`` is its 1-based position in the log."""

    line: int
    detail: str
    id: int | None = None


WELL_FORMED_SHAPES = frozenset(
    (side, order_type, tif, stp, post_only, order_type is OrderType.MARKET, no_cap)
    for side in Side
    for order_type in OrderType
    for tif in TimeInForce
    for stp in SelfTradePrevention
    for post_only in (False, True)
    for no_cap in (False, True)
    if not post_only or (order_type is OrderType.LIMIT and tif is TimeInForce.GTC)
    if no_cap or (side is Side.BUY and order_type is OrderType.MARKET)
)
"""Every well-formed ``(side, order_type, tif, stp, post_only, price is None, cap is None)`` of a
new order: a limit order has a price, a market order has none, only a GTC limit order may be
post-only, and only a market buy may have a cap."""


def new_order_fault(cmd: NewOrder) -> str | None:
    """Why ``cmd`` is malformed, or None.

    Decoding already guarantees the types and 64-bit bounds; this also catches
    hand-built commands. The book runs a cheaper test of the same rules first and
    calls this only to explain a failure.
    """
    oid, price = cmd.id, cmd.price
    if not (oid.__class__ is int and 0 <= oid <= INT64_MAX):
        return f"bad order id {oid!r}"
    if not (is_int64(cmd.qty) and (price is None or is_int64(price))):
        return "price and qty must be 64-bit integers"
    cap = cmd.cap
    if not (cap is None or (is_int64(cap) and cap > 0)):
        return "cap must be a positive 64-bit integer"
    for name in ("account", "symbol"):
        fault = name_fault(getattr(cmd, name))
        if fault is not None:
            return f"{name} {fault}"
    shape = (cmd.side, cmd.order_type, cmd.tif, cmd.stp, cmd.post_only, price is None, cap is None)
    if shape in WELL_FORMED_SHAPES:
        return None
    if cmd.side not in _SIDES or cmd.order_type not in _ORDER_TYPES:
        return "side or order_type outside its set"
    if cmd.tif not in _TIFS or cmd.stp not in _STPS or cmd.post_only not in (False, True):
        return "tif, stp or post_only outside its set"
    if (price is None) != (cmd.order_type == OrderType.MARKET):
        return "a limit order needs a price and a market order takes none"
    if cmd.post_only and not (cmd.order_type == OrderType.LIMIT and cmd.tif == TimeInForce.GTC):
        return "only a gtc limit order can be post-only"
    return "only a market buy can have a cap"


def names_fault(cmd: object) -> str | None:
    """Why a name field of ``cmd`` (each field typed :data:`~carbonbook._types.Name`) breaks the
    rule of names, or None (None too for what is not a command): the part of the rule a decoder
    leaves to Python (control characters), and all of it for a command built in Python."""
    for name, optional in _NAME_FIELDS.get(cmd.__class__, ()):
        value = getattr(cmd, name)
        if not (optional and value is None) and (fault := name_fault(value)) is not None:
            return f"{name} {fault}"
    return None


_NAME_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {
    cls: tuple((f, hint != Name) for f, hint in get_type_hints(cls, include_extras=True).items()
               if hint in (Name, Name | None))
    for cls in get_args(Command)
}
"""The fields of each command that are names, each with whether it may be None."""

_SIDES = frozenset(Side)
_ORDER_TYPES = frozenset(OrderType)
_TIFS = frozenset(TimeInForce)
_STPS = frozenset(SelfTradePrevention)

