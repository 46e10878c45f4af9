"""The registry contract: accounts, serial blocks, cash, compliance and the journal.

A registry holds carbon units as **serial blocks** (originating registry, unit type,
first and last serial, applicable period, scheme, project id, expiry) in **accounts**,
and cash as integer balances in minor currency units per account and currency. Every
state change is one **transaction** with a fresh, increasing ``txid`` and one row in
an append-only journal.

Rules every backend enforces (the contract suite in ``tests/registry_contract.py``
checks them against each):

- Quantities and amounts are positive ``int`` (never ``bool`` or ``float``) below 2**63.
- Issuance never passes a scheme's cap for the period and never reuses a serial of the
  same originating registry; serial ranges never overlap and never appear twice.
- A transfer needs both accounts to exist, be open and differ; the receiving account
  must be allowed to hold the unit type; the units must be active, held by the sender
  and not reserved. A partial transfer splits a block into parts that cover exactly the
  original range.
- Surrender, retirement and cancellation move units into a retirement or cancellation
  account; they and expiry are terminal: such units never move again.
- Per unit type: issued - terminal == the sum of active holdings (``check()``).

Refusals are exceptions: every refused operation raises a specific
:class:`~carbonbook.errors.RegistryError` subclass (its ``code`` is a stable reason) and
leaves the registry unchanged. Driver failures raise
:class:`~carbonbook.errors.RegistryUnavailable` with the driver's error chained.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from enum import StrEnum

import msgspec

from carbonbook._types import OffsetLimit, UnitType
from carbonbook.errors import DuplicateTrade


class AccountKind(StrEnum):
    """What an account is for.

    ``holding``: a participant's account (operator, person or party holding).
    ``issuance``: a scheme's issuance/allocation account, where new units may be created.
    ``retirement``: receives surrendered and retired units (terminal).
    ``cancellation``: receives voluntarily cancelled units (J-Credit 無効化; terminal).
    """

    HOLDING = "holding"
    ISSUANCE = "issuance"
    RETIREMENT = "retirement"
    CANCELLATION = "cancellation"


class AccountStatus(StrEnum):
    """``open`` accounts send and receive; ``blocked`` ones neither (reversible); ``closed`` is final."""

    OPEN = "open"
    BLOCKED = "blocked"
    CLOSED = "closed"


class BlockState(StrEnum):
    """An ``active`` block can move; every other state is terminal."""

    ACTIVE = "active"
    SURRENDERED = "surrendered"
    RETIRED = "retired"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    EXPORTED = "exported"  # gone to a linked registry (``carbonbook.registry.linking``); back if they return


class ComplianceStatus(StrEnum):
    """EUTL-style compliance code of an account for a period."""

    A = "A"  # surrendered at least the obligation
    B = "B"  # surrendered less than the obligation
    C = "C"  # no verified emissions recorded


PROJECT_UNITS: frozenset[UnitType] = frozenset(
    {UnitType.ERU, UnitType.CER, UnitType.TCER, UnitType.LCER, UnitType.JVER, UnitType.JCR}
)
"""Unit types whose blocks must carry a project id."""

EXPIRING_UNITS: frozenset[UnitType] = frozenset({UnitType.TCER, UnitType.LCER})
"""Unit types whose blocks must carry an expiry period."""


class Account(msgspec.Struct, frozen=True, gc=False):
    """An account. ``units`` is the set of unit types it may hold (``None``: any);
    ``scheme`` names the compliance scheme of an operator account (``None``: none)."""

    id: str
    kind: AccountKind
    status: AccountStatus
    units: frozenset[UnitType] | None = None
    scheme: str | None = None


class Scheme(msgspec.Struct, frozen=True, gc=False):
    """A compliance scheme: the unit types it issues (``allowances``) and accepts as
    ``credits`` (offsets); surrendered credits may cover at most ``offset_percent`` % of an
    obligation. ``phases`` are the first periods of its phases (EU: 2005, 2008, 2013; none:
    one phase). Its units count for a later period of the same phase when ``banking``, of a
    later phase when ``phase_banking`` too (true: across every phase change; false: none; a set
    of phases' first periods: only into those, so EU's ``{2013}`` banks phase 2 into phase 3
    but not phase 1 into phase 2), and for the period before their own, in the same
    phase, when ``borrowing`` (EU: next year's allocation within a phase), at most
    ``borrow_limit`` basis points of the account's allocation for that next period when set
    (None: no limit). With ``removals`` verified emissions may be negative (net removals, NZ
    forestry): they lower the period's obligation, never below zero.

    ``offset_limits`` is the offset table (:class:`OffsetLimit`: per credit type, basis points
    of a stated base, per period or over the phase); with a table, ``offset_percent`` (the
    pooled limit over every credit type) applies only when above 0. ``excluded`` holds
    ``(project type, first period)`` pairs: credits of that project type
    (``Block.project_type``, e.g. ``HFC-23``, ``adipic-N2O``) count for no period from the
    first on. ``links`` names the schemes whose allowances it accepts (ICAP-style linking),
    together at most ``import_limit`` basis points of the period's obligation when set.

    ``control_periods`` are multi-year compliance periods ``(first, last)`` (RGGI: 2009-2011,
    2012-2014): emissions are recorded per year, but the obligation, surrenders, deadlines and
    status belong to the control period, named by its last year (:meth:`span`)."""

    name: str
    allowances: frozenset[UnitType]
    credits: frozenset[UnitType] = frozenset()
    offset_percent: int = 0
    banking: bool = True
    phases: frozenset[int] = frozenset()
    phase_banking: bool | frozenset[int] = True
    borrowing: bool = False
    removals: bool = False
    borrow_limit: int | None = None
    offset_limits: tuple[OffsetLimit, ...] = ()
    excluded: frozenset[tuple[str, int]] = frozenset()
    links: frozenset[str] = frozenset()
    import_limit: int | None = None
    control_periods: tuple[tuple[int, int], ...] = ()

    def span(self, period: int) -> tuple[int, int]:
        """The first and last period of the compliance period holding ``period``: its control
        period, else ``period`` alone."""
        for first, last in self.control_periods:
            if first <= period <= last:
                return first, last
        return period, period

    def phase(self, period: int) -> int:
        """The first period of ``period``'s phase (0 before the first phase, or with none)."""
        return max((p for p in self.phases if p <= period), default=0)

    def banks(self, vintage: int, period: int) -> bool:
        """Whether a unit of ``vintage`` counts for the later ``period`` (banking): within a phase when
        ``banking``, into a later phase when ``phase_banking`` allows every phase change on the way."""
        into = self.phase_banking
        if not self.banking or into is False:
            return self.banking and self.phase(vintage) == self.phase(period)
        if into is True:
            return True
        first, last = self.phase(vintage), self.phase(period)
        return all(p in into for p in self.phases if first < p <= last)

    def lends(self, vintage: int, period: int) -> bool:
        """Whether a unit of ``vintage`` counts for ``period``, the one before it (borrowing)."""
        return self.borrowing and vintage == period + 1 and self.phase(vintage) == self.phase(period)


class Block(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """Serials ``start``..``end`` (inclusive) of ``origin`` held by ``holder``.

    ``period`` is the applicable period (vintage or commitment period), ``scheme`` the
    scheme it was issued under, ``expiry`` the last period it is valid in (``None``: no
    expiry). ``project_type`` is a credit's project type as the issuer states it (a name such as
    ``HFC-23``, ``adipic-N2O``, ``large-hydro`` or a J-VER positive-list code ``E001``;
    ``None``: not stated), which schemes may exclude (``Scheme.excluded``). ``id`` is the
    registry's internal block number (oldest first)."""

    id: int
    origin: str
    unit: UnitType
    start: int
    end: int
    holder: str
    state: BlockState
    period: int
    scheme: str
    project: str | None = None
    expiry: int | None = None
    project_type: str | None = None

    @property
    def qty(self) -> int:
        """The number of units (tonnes) in the block."""
        return self.end - self.start + 1


class Serials(msgspec.Struct, frozen=True, gc=False):
    """A serial range ``start``..``end`` (inclusive) of one originating registry."""

    origin: str
    start: int
    end: int


class Entry(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One journal row: transaction ``txid`` of ``kind`` by ``account`` (towards
    ``counterparty``), moving ``qty`` units of ``unit`` and ``amount`` of ``currency``.
    ``ref`` is the trade id of a settlement, the period of a compliance transaction, the
    hold id, or the id of a pending transfer; ``detail`` is free text.

    The audit trail: ``actor`` is the person who made the change (a representative or an
    administrator; None: the registry operator's own code, or a venue's settlement and holds),
    ``approver`` the second person who approved it (four-eyes, trusted-list additions), and
    ``day`` the business day it was made on (0 before the first ``business_day``; filled when
    the journal is read, from the day each business day began, see ``Registry.start_day``)."""

    txid: int
    kind: str
    account: str
    counterparty: str | None = None
    unit: str | None = None
    qty: int = 0
    currency: str | None = None
    amount: int = 0
    ref: int | None = None
    detail: str = ""
    actor: str | None = None
    approver: str | None = None
    day: int | None = None


class Controls(msgspec.Struct, frozen=True, gc=False):
    """An account's transfer controls (DOMAIN.md 6, the Union Registry's after the 2010-11 thefts).

    ``trusted_delay``: business days after its approval before an account added to the trusted
    account list counts as trusted (EU: 4; 7 for Kyoto person accounts). ``outside_delay``:
    business days a transfer to an account outside the list waits, cancellable, before it
    executes (0: at once). ``bar_outside``: such transfers are refused instead (operator
    accounts). ``limit``: the most units one transfer outside the list may move (None: no
    limit; EU 2 M since 2023). ``four_eyes``: every transfer is proposed by one representative
    and approved by another before it executes (or starts its delay)."""

    trusted_delay: int = 0
    outside_delay: int = 0
    bar_outside: bool = False
    limit: int | None = None
    four_eyes: bool = False


class PendingTransfer(msgspec.Struct, frozen=True, gc=False):
    """A transfer that waits: ``id`` is the txid that proposed it. ``state`` is ``proposed``
    (four-eyes: awaiting a second representative), ``delayed`` (outside the trusted list: it
    executes when business day ``due`` starts), or, once done, ``executed``, ``cancelled`` or
    ``failed`` (``reason`` says why) by transaction ``done_txid`` on day ``done_day``. While it
    waits its units are held (hold id ``-id``)."""

    id: int
    sender: str
    receiver: str
    unit: UnitType
    qty: int
    proposer: str | None
    approver: str | None
    state: str
    due: int | None
    outside: bool
    done_txid: int | None = None
    done_day: int | None = None
    reason: str = ""


class Trusted(msgspec.Struct, frozen=True, gc=False):
    """An entry of ``account``'s trusted account list: ``trusted`` was proposed by ``proposer``;
    once approved by ``approver`` it counts from business day ``effective`` (None: not approved)."""

    account: str
    trusted: str
    proposer: str | None
    approver: str | None
    effective: int | None


class Certificate(msgspec.Struct, frozen=True, gc=False):
    """The record of a voluntary cancellation (J-Credit 無効化; the seed's offsets): ``qty`` units of
    ``unit`` of ``account``, serials ``serials``, cancelled into ``into`` by transaction ``id`` on
    business day ``day`` by ``actor``, on behalf of ``beneficiary`` for ``purpose`` (e.g. a
    retailer offsetting its staff's commuting)."""

    id: int
    account: str
    into: str
    unit: UnitType
    qty: int
    serials: list[Serials]
    beneficiary: str | None
    purpose: str | None
    day: int
    actor: str | None


class Holding(msgspec.Struct, frozen=True, gc=False):
    """Serials ``start``..``end`` of ``origin`` (``unit``) came to ``holder`` in ``state`` by
    transaction ``txid`` (journal ``kind``; ``actor`` and ``approver`` as journaled) on business
    day ``day``; they stay there until a later holding of the same serials."""

    origin: str
    start: int
    end: int
    unit: str
    holder: str
    state: BlockState
    txid: int
    day: int | None
    kind: str
    actor: str | None
    approver: str | None


class Project(msgspec.Struct, frozen=True, gc=False):
    """A registered project: ``id`` (the ``project`` of its credits' blocks), the crediting
    ``programme`` (the blocks' ``scheme``), its ``methodology`` from the programme's list and that
    methodology's ``project_type`` (e.g. ``HFC-23``), and the proponent's ``account``."""

    id: str
    programme: str
    methodology: str
    project_type: str
    account: str


class ExternalTransfer(msgspec.Struct, frozen=True, gc=False):
    """An external transfer ``id`` (the transaction log's) as one registry wrote it down:
    ``state`` (``proposed``, ``completed``, ``rejected``, ``compensated``), ``direction``
    (``out`` or ``in``), this registry's ``account``, the ``registry`` and ``other_account`` on the
    other side, ``qty`` units of ``unit`` in serial ``blocks``, and the ``reason`` of a refusal."""

    id: int
    state: str
    direction: str
    account: str
    registry: str
    other_account: str
    unit: UnitType
    qty: int
    blocks: list[Block]
    reason: str = ""


class Compliance(msgspec.Struct, frozen=True, gc=False):
    """An account's compliance for a period: a year, or a scheme's control period ``first`` to
    ``period`` (its last year; ``first`` is None for a single period), whose ``verified`` is the
    sum of its years' emissions on record and whose status is C while a year has none.
    ``obligation`` is ``verified`` plus the shortfall carried from the previous period;
    ``offsets`` counts surrendered credits, ``borrowed`` the surrendered units of the next
    period's vintage (borrowing).
    ``report_missed`` is the reporting deadline (business day) the account passed without
    verified emissions (status C recorded then; :class:`ReportMissed`), None when it did not."""

    account: str
    period: int
    verified: int | None
    obligation: int
    surrendered: int
    offsets: int
    shortfall: int
    status: ComplianceStatus
    borrowed: int = 0
    final: bool = False
    penalty: int = 0
    report_missed: int | None = None
    first: int | None = None


class Final(msgspec.Struct, frozen=True, gc=False):
    """An account's compliance for ``period``, made final when its scheme's surrender deadline
    (business day ``day``) passed: its status, obligation, units surrendered, shortfall and the
    ``penalty`` (shortfall x the scheme's rate, minor units of ``currency``), recorded as
    registry transaction ``txid`` (journal kind ``compliance_final``); ``carried`` is what the
    shortfall adds to the next period's obligation (shortfall x the deadline's multiple)."""

    account: str
    period: int
    day: int
    status: ComplianceStatus
    obligation: int
    surrendered: int
    shortfall: int
    penalty: int
    currency: str | None
    txid: int
    carried: int = 0


class ReportMissed(msgspec.Struct, frozen=True, gc=False):
    """Operator ``account`` had no verified emissions for ``period`` when its scheme's reporting
    deadline (business day ``day``) passed: status C, recorded as registry transaction ``txid``
    (journal kind ``report_missed``). Emissions entered later, up to the surrender deadline
    (business day ``deadline``), still count (a late report or the authority's estimate)."""

    account: str
    period: int
    day: int
    deadline: int
    txid: int


ALLOCATION_METHODS = ("benchmark", "grandfathering", "intensity")
"""How :meth:`Registry.allocate` computes a free allocation (see :class:`Allocation`)."""


class Allocation(msgspec.Struct, frozen=True, gc=False):
    """One allocation transaction ``txid``: ``qty`` units of ``unit`` given to operator account
    ``account`` under its ``scheme`` for ``period`` (negative: taken back), with the inputs it
    was computed from, all integers, divisions rounded down:

    - ``benchmark``: ``activity x rate / per`` (the benchmark as ``rate/per`` allowances per unit
      of activity; DOMAIN.md 0 "activity x benchmark");
    - ``grandfathering``: ``sum(base) x rate / (len(base) x per) - reduction``: the base years'
      emissions averaged, times a factor, minus a committed reduction (JVETS: the average of 3
      years minus the committed reduction, DOMAIN.md 0 and 3);
    - ``intensity``: ``activity x rate / per`` on forecast production (``activity``) and the
      intensity target ``rate/per`` tonnes per unit (DOMAIN.md 0, the trial market's intensity
      targets), provisional until ``true_up``;
    - ``true_up``: the verified production ``activity`` x the intensity target, less what the
      period's allocation stands at (``reduction``): the difference given or taken back;
    - ``return``: excess allocation given back (DOMAIN.md 2, "return of excess allocation");
    - ``borrowed``: units of this period surrendered for the period before (borrowing), which
      the allocation no longer covers (``Scheme.borrow_limit``); no units move."""

    txid: int
    account: str
    scheme: str
    period: int
    method: str
    unit: UnitType
    qty: int
    activity: int = 0
    rate: int = 1
    per: int = 1
    base: tuple[int, ...] = ()
    reduction: int = 0


class Settled(msgspec.Struct, frozen=True, gc=False, tag="settled", tag_field="type"):
    """Trade ``trade_id`` settled by transaction ``txid``: ``qty`` units of ``unit`` moved
    ``seller`` → ``buyer`` and ``amount`` of ``currency`` moved ``buyer`` → ``seller``."""

    trade_id: int
    txid: int
    seller: str
    buyer: str
    unit: UnitType
    qty: int
    currency: str
    amount: int


class SettlementFailed(msgspec.Struct, frozen=True, gc=False, tag="settlement_failed", tag_field="type"):
    """Trade ``trade_id`` could not settle and nothing moved. ``reason`` is a
    :class:`~carbonbook.errors.RegistryError` code, ``detail`` says why."""

    trade_id: int
    reason: str
    detail: str
    seller: str
    buyer: str
    unit: str
    qty: int
    currency: str
    amount: int


SettlementRecord = Settled | SettlementFailed
"""The recorded outcome of a trade id."""

SettleTerms = tuple[int, str, str, UnitType, int, str, int, "int | None", "int | None"]
"""(trade id, seller, buyer, unit, qty, currency, amount, unit hold, cash hold): the
arguments of :meth:`Registry.settle` as one row, for :meth:`Registry.settle_batch`."""


class Registry(ABC):
    """A carbon registry: see the module docstring for the rules every backend enforces.

    Every mutating method is atomic and raises a :class:`~carbonbook.errors.RegistryError`
    subclass when it refuses, leaving the registry unchanged. Methods that return an
    ``int`` txid journal exactly one transaction.
    """

    # -- transactions --------------------------------------------------------------

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Group operations into one atomic unit (one database transaction): all are kept or,
        if the block raises, none. Nested use joins the outer transaction (a savepoint)."""

    # -- accounts and schemes ------------------------------------------------------

    @abstractmethod
    def open_account(self, account: str, kind: AccountKind = AccountKind.HOLDING, *,
                     units: Iterable[UnitType] | None = None, scheme: str | None = None) -> int:
        """Open an account that may hold ``units`` (``None``: any type). ``scheme`` makes it an
        operator account with compliance obligations under that scheme."""

    @abstractmethod
    def set_status(self, account: str, status: AccountStatus) -> int:
        """Block, unblock or close an account. A closed account never reopens."""

    @abstractmethod
    def account(self, account: str) -> Account:
        """The account (:class:`~carbonbook.errors.UnknownAccount` if missing)."""

    @abstractmethod
    def create_scheme(self, scheme: Scheme) -> int:
        """Define a compliance scheme."""

    @abstractmethod
    def set_cap(self, scheme: str, period: int, cap: int) -> int:
        """Set the most units ``scheme`` may ever issue for ``period`` (not below what it has issued)."""

    # -- units ---------------------------------------------------------------------

    @abstractmethod
    def issue(self, account: str, unit: UnitType, qty: int, *, scheme: str, period: int,
              origin: str = "JP", start: int | None = None, project: str | None = None,
              expiry: int | None = None, project_type: str | None = None,
              monitoring: int | None = None) -> Block:
        """Issue ``qty`` new units into an issuance or holding account, under ``scheme``'s cap for
        ``period`` (a free allocation with its inputs on record is :meth:`allocate`). Serials
        start at ``start``, by default after the highest serial ``origin`` ever issued. A credit
        may state its ``project_type`` (``Block.project_type``). Under a crediting programme the
        units are credits of registered ``project`` for its verified ``monitoring`` period: at
        most what was verified, once, and their project type is the project's (see
        :mod:`carbonbook.registry._projects`)."""

    # -- crediting programmes, projects and verification -------------------------------

    @abstractmethod
    def set_programme(self, scheme: str, methodologies: dict[str, str]) -> int:
        """Make ``scheme`` a crediting programme with this methodology list (code: project type)."""

    @abstractmethod
    def accredit(self, programme: str, verifier: str) -> int:
        """Accredit person ``verifier`` to verify monitoring reports of ``programme``'s projects."""

    @abstractmethod
    def register_project(self, project: str, programme: str, methodology: str, account: str) -> int:
        """Register ``project`` under ``programme`` with a methodology of its list; its credits go
        to ``account``."""

    @abstractmethod
    def report_monitoring(self, project: str, period: int, reductions: int) -> int:
        """A representative of the project's account reports a monitoring period's reductions (once)."""

    @abstractmethod
    def verify(self, project: str, period: int, verified: int) -> int:
        """An accredited verifier (the actor) verifies at most the reported reductions (once)."""

    @abstractmethod
    def project(self, project: str) -> Project:
        """A registered project (its programme, methodology and project type)."""

    @abstractmethod
    def monitoring(self, project: str, period: int) -> tuple[int, int | None, int | None]:
        """A monitoring period's reported, verified (None: not yet) and issued (None: not yet) tonnes."""

    @abstractmethod
    def transfer(self, sender: str, receiver: str, unit: UnitType, qty: int, *,
                 serials: Serials | None = None) -> int:
        """Move ``qty`` active, unreserved units (the given serials, or the oldest blocks first).
        From an account with representatives, the actor (:meth:`acting`) must be one of them, and
        its :class:`Controls` apply: a transfer that needs a second representative or waits out a
        delay holds its units and is pending (:meth:`pending_transfer` of the returned txid)."""

    @abstractmethod
    def surrender(self, account: str, period: int, unit: UnitType, qty: int, *, to: str,
                  vintage: int | None = None, serials: Serials | None = None) -> int:
        """Surrender units against ``account``'s obligation for ``period`` into retirement account
        ``to``: the oldest units the scheme accepts for ``period`` (only those of ``vintage``
        when given), or the named ``serials``. Refused with ``not_eligible`` when the eligible
        units cannot cover ``qty``. Credits count against the scheme's offset limit. Terminal."""

    @abstractmethod
    def retire(self, account: str, unit: UnitType, qty: int, *, to: str,
               serials: Serials | None = None, beneficiary: str | None = None,
               purpose: str | None = None) -> int:
        """Retire (into a retirement account) or voluntarily cancel (into a cancellation account,
        J-Credit 無効化) units. Terminal. A cancellation yields a :class:`Certificate` (its id is
        the returned txid) naming its serials, ``beneficiary`` and ``purpose``; a retirement
        takes neither."""

    @abstractmethod
    def certificate(self, certificate: int) -> Certificate | None:
        """The certificate of the cancellation made by txid ``certificate``, if any."""

    @abstractmethod
    def carry_over(self, account: str, unit: UnitType, period: int) -> int:
        """Bank every active ``unit`` of ``period`` held by ``account`` into ``period + 1``
        (the scheme must allow banking). Returns the number of units carried over."""

    @abstractmethod
    def allocate(self, account: str, period: int, method: str, *, unit: UnitType | None = None,
                 activity: int = 0, rate: int = 1, per: int = 1, base: Iterable[int] = (), reduction: int = 0,
                 origin: str = "JP", start: int | None = None) -> Allocation:
        """Allocate free units to operator ``account`` for ``period``, computed by ``method``
        (``benchmark``, ``grandfathering``, ``intensity``: see :class:`Allocation`) from the inputs,
        which stay on record (:meth:`allocations`). New serials of its scheme's allowance ``unit``
        (needed when the scheme issues more than one) under the period's cap; journal kind
        ``allocate``."""

    @abstractmethod
    def true_up(self, account: str, period: int, production: int, *, to: str | None = None,
                origin: str = "JP") -> Allocation:
        """True up ``account``'s intensity allocation for ``period`` on its verified ``production``:
        allocate what the target on that production exceeds the period's allocation by, or take
        back into issuance account ``to`` what it falls short by (journal kind ``true_up``)."""

    @abstractmethod
    def return_allocation(self, account: str, period: int, qty: int, *, to: str) -> Allocation:
        """Return ``qty`` units of ``account``'s excess allocation for ``period`` (its scheme's
        allowances of that vintage) into issuance account ``to`` (journal kind
        ``allocation_return``); at most the period's allocation."""

    @abstractmethod
    def allocations(self, account: str | None = None, period: int | None = None) -> list[Allocation]:
        """The allocation records (allocations, true-ups, returns, borrowing cuts), by txid."""

    @abstractmethod
    def expire(self, unit: UnitType, period: int) -> int:
        """Expire every active ``unit`` whose expiry (or, for units without one, whose
        period) is ``period`` or earlier, in every account. Returns the number of units
        expired (0 journals nothing)."""

    @abstractmethod
    def reserve(self, hold: int, account: str, unit: UnitType, qty: int) -> int:
        """Reserve ``qty`` units under hold id ``hold`` (e.g. a sell order's id)."""

    @abstractmethod
    def reserve_cash(self, hold: int, account: str, currency: str, amount: int) -> int:
        """Reserve ``amount`` of cash under hold id ``hold`` (e.g. a buy order's id)."""

    @abstractmethod
    def release(self, hold: int, amount: int | None = None) -> int:
        """Release ``amount`` of a hold (default: all that is left); a hold released to 0 is gone."""

    @abstractmethod
    def hold(self, hold: int) -> int:
        """What is left of hold ``hold`` (units or cash), 0 if there is no such hold."""

    # -- access and controls (DOMAIN.md 6) ---------------------------------------------

    @abstractmethod
    def acting(self, actor: str | None) -> AbstractContextManager[None]:
        """Make ``actor`` the person acting in the calls inside: the journal rows they write
        name it, and the controls check it. Outside, the actor is None: the registry operator's
        own code."""

    @abstractmethod
    def authorise(self, actor: str | None, account: str | None = None) -> None:
        """Refuse (:class:`~carbonbook.errors.NotAuthorised`) unless ``actor`` may act for
        ``account`` (one of its representatives), or, with ``account`` None, as an administrator.
        The controls bind once configured: an account without representatives may be acted for
        by anyone, and a registry without administrators takes administrative acts from anyone
        (so order logs written before actors existed replay unchanged)."""

    @abstractmethod
    def add_administrator(self, person: str) -> int:
        """Make ``person`` an administrator (the first by anyone, later ones by an administrator)."""

    @abstractmethod
    def add_representative(self, account: str, person: str) -> int:
        """Make ``person`` an authorised representative of ``account`` (an administrator's act)."""

    @abstractmethod
    def set_controls(self, account: str, controls: Controls) -> int:
        """Set ``account``'s transfer controls (an administrator's act); transfers already
        pending keep the rules they started under."""

    @abstractmethod
    def propose_trusted(self, account: str, trusted: str) -> int:
        """A representative of ``account`` proposes adding ``trusted`` to its trusted account list."""

    @abstractmethod
    def approve_trusted(self, account: str, trusted: str) -> int:
        """A second representative of ``account`` approves the proposal: ``trusted`` counts as
        trusted from ``trusted_delay`` business days after today."""

    @abstractmethod
    def remove_trusted(self, account: str, trusted: str) -> int:
        """A representative of ``account`` takes ``trusted`` off its list, at once."""

    @abstractmethod
    def trusted(self, account: str) -> list[Trusted]:
        """``account``'s trusted account list (proposed and approved entries), by account name."""

    @abstractmethod
    def approve_transfer(self, transfer: int) -> int:
        """A representative of the sender other than its proposer approves the four-eyes
        transfer ``transfer``: it executes, or starts its delay when outside the trusted list."""

    @abstractmethod
    def cancel_transfer(self, transfer: int) -> int:
        """A representative of the sender, or an administrator, cancels a transfer that waits:
        its units are released."""

    @abstractmethod
    def pending_transfer(self, transfer: int) -> PendingTransfer | None:
        """The transfer proposed by txid ``transfer`` (waiting or done), if any."""

    @abstractmethod
    def start_day(self, since: int, day: int) -> list[PendingTransfer]:
        """Start business ``day`` (after ``since``): note the txid it begins at (the journal's
        days) and execute, in id order, every delayed transfer due by ``day``; return the
        transfers done in ``since``..``day`` by this (those done now, or before when replayed)."""

    # -- cash ----------------------------------------------------------------------

    @abstractmethod
    def deposit(self, account: str, currency: str, amount: int) -> int:
        """Credit ``amount`` minor units of ``currency`` to ``account``."""

    # -- compliance ----------------------------------------------------------------

    @abstractmethod
    def record_emissions(self, account: str, period: int, tonnes: int) -> int:
        """Record verified emissions (once) for an operator account and period."""

    @abstractmethod
    def correct_emissions(self, account: str, period: int, tonnes: int) -> int:
        """Correct recorded verified emissions before the period's deadline: the journal keeps
        the first figure (``emissions``) and each correction with the figure it replaced."""

    @abstractmethod
    def compliance(self, account: str, period: int) -> Compliance:
        """The account's obligation, surrendered units and status A/B/C for ``period``."""

    @abstractmethod
    def set_deadline(self, scheme: str, period: int, day: int, *, penalty: int = 0,
                     currency: str | None = None, multiple: int = 1, report: int | None = None) -> int:
        """Set ``scheme``'s surrender deadline for ``period``: business day ``day`` (the last day
        a surrender or emissions for ``period`` count), the penalty per tonne short
        (minor units of ``currency``) and the ``multiple`` of the shortfall carried into the next
        period's obligation (1..100; RGGI-style deduction when above 1); ``report`` is the
        reporting deadline (a business day, at most ``day``; None: none), when every operator
        account without verified emissions gets status C recorded (:class:`ReportMissed`). Once
        per scheme and period, not before the current day."""

    @abstractmethod
    def pass_days(self, since: int, day: int) -> list[Final | ReportMissed]:
        """Start business ``day`` (after ``since``): record status C for the accounts without
        emissions at every reporting deadline before ``day`` not yet passed, and make final every
        period whose surrender deadline lies before ``day`` and is not final yet; return the
        records of the deadlines in ``since``..``day - 1`` (those made now, or before when
        replayed), by day, a day's reporting deadlines before its surrender deadlines, then by
        scheme, period and account."""

    # -- settlement ----------------------------------------------------------------

    @abstractmethod
    def settle(self, trade_id: int, *, seller: str, buyer: str, unit: UnitType, qty: int,
               currency: str, amount: int, unit_hold: int | None = None,
               cash_hold: int | None = None) -> SettlementRecord:
        """Delivery versus payment: ``qty`` units seller → buyer and ``amount`` cash buyer →
        seller in one transaction, both legs or neither. If ``unit_hold`` (``cash_hold``) names
        a hold of the seller's units (the buyer's cash), up to ``qty`` (``amount``) of it is
        consumed by the same transaction.

        A trade id, ``qty`` or ``amount`` that is not a positive integer is refused with
        :class:`~carbonbook.errors.InvalidQuantity` and not recorded.

        Idempotent by ``trade_id``: the outcome (``Settled`` or ``SettlementFailed``) is
        recorded once; settling the same trade again returns the record and changes nothing;
        different terms under a recorded id raise
        :class:`~carbonbook.errors.DuplicateTrade`."""

    def settle_batch(self, trades: Iterable[SettleTerms]) -> list[SettlementRecord]:
        """:meth:`settle` each row of ``trades`` in one transaction and return the outcomes in
        order, except that a trade id already recorded with other terms yields a
        ``SettlementFailed`` (reason ``duplicate_trade``, not recorded) instead of raising.
        Any other exception rolls back the whole batch. Backends may override it with a
        faster loop; the result must be the same."""
        out: list[SettlementRecord] = []
        with self.transaction():
            for tid, seller, buyer, unit, qty, currency, amount, unit_hold, cash_hold in trades:
                try:
                    out.append(self.settle(tid, seller=seller, buyer=buyer, unit=unit, qty=qty,
                                           currency=currency, amount=amount, unit_hold=unit_hold,
                                           cash_hold=cash_hold))
                except DuplicateTrade as e:
                    out.append(SettlementFailed(tid, e.code, str(e), seller, buyer, unit, qty, currency,
                                                amount))
        return out

    @abstractmethod
    def settlement(self, trade_id: int) -> SettlementRecord | None:
        """The recorded outcome of a trade id, if any."""

    # -- queries -------------------------------------------------------------------

    @abstractmethod
    def holding(self, account: str, unit: UnitType) -> int:
        """Active units of ``unit`` held by ``account`` (reserved ones included)."""

    @abstractmethod
    def available(self, account: str, unit: UnitType) -> int:
        """Active, unreserved units of ``unit`` held by ``account``."""

    @abstractmethod
    def balance(self, account: str, currency: str) -> int:
        """Cash of ``account`` in ``currency`` (reserved included)."""

    @abstractmethod
    def available_cash(self, account: str, currency: str) -> int:
        """Unreserved cash of ``account`` in ``currency``."""

    @abstractmethod
    def blocks(self, account: str | None = None, unit: UnitType | None = None) -> list[Block]:
        """Every block (active or terminal), optionally of one holder and unit type, by origin
        and first serial."""

    @abstractmethod
    def issued(self, unit: UnitType) -> int:
        """Units of ``unit`` ever issued."""

    @property
    @abstractmethod
    def last_txid(self) -> int:
        """The txid of the latest transaction (0 before the first)."""

    @abstractmethod
    def journal(self, since: int = 0) -> Iterator[Entry]:
        """Journal rows with ``txid > since`` in txid order."""

    @abstractmethod
    def serial_history(self, origin: str, start: int, end: int) -> list[Holding]:
        """Who held serials ``start``..``end`` of ``origin`` and when: every holding of them
        (clipped to them), oldest first, with the transaction, business day, actor and
        approver that made it (see :mod:`carbonbook.registry._audit`). O(journal)."""

    @abstractmethod
    def check(self) -> None:
        """Assert every invariant (conservation per unit type, no overlap, no negative
        holdings or cash, holds covered) against the stored state;
        :class:`~carbonbook.errors.RegistryIntegrityError` if one is broken."""

    def claim_writer(self) -> None:  # noqa: B027 - optional hook
        """Make this registry the only writer of its store until :meth:`close` (a database takes
        one writer at a time), and load the store again; :class:`~carbonbook.errors.RegistryInUse`
        if another registry holds it. Without a claim, a second writer is refused only when it
        commits (:class:`~carbonbook.errors.ConcurrentModification`). A no-op in memory."""

    def share_writer(self) -> None:  # noqa: B027 - optional hook
        """Make this registry one of many writers of its store until :meth:`close`, each writing
        through :func:`carbonbook.registry.writers.retrying`; :class:`~carbonbook.errors.RegistryInUse`
        while a registry holds :meth:`claim_writer` (and :meth:`claim_writer` is refused while any
        shares). A no-op in memory."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the backend's resources (a no-op in memory)."""
