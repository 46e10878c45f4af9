"""Serials and issuance: accounts, schemes, caps, issuance and expiry.

Issuance checks the scheme issues the unit type, the period's cap and that the serials
overlap no issued range of their origin (a scan of the issuances: O(issuances)).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain, pairwise
from typing import Any

from msgspec.structs import replace

from carbonbook._types import INT64_MAX, OffsetLimit, UnitType
from carbonbook.errors import (
    AccountClosed,
    CapExceeded,
    DuplicateAccount,
    DuplicateScheme,
    DuplicateSerial,
    InvalidQuantity,
    OperationRefused,
    UnitNotAllowed,
)
from carbonbook.registry._store import (
    _ACTIVE,
    _OPEN,
    Store,
    _name,
    _period,
    _qty,
    _unit,
)
from carbonbook.registry.base import (
    EXPIRING_UNITS,
    PROJECT_UNITS,
    Account,
    AccountKind,
    AccountStatus,
    Block,
    BlockState,
    Entry,
    Scheme,
)

BP_MAX = 10_000
"""Basis points in a whole: limits in basis points lie in 0..BP_MAX."""


def _basis_points(value: object, what: str) -> int | None:
    if value is not None and (type(value) is not int or not 0 <= value <= BP_MAX):
        raise InvalidQuantity(f"{what} must be basis points, an integer in 0..{BP_MAX}, got {value!r}")
    return value


def _listed(value: object, what: str) -> Iterable[Any]:
    if not isinstance(value, frozenset | set | tuple | list):
        raise OperationRefused(f"{what} must be a list, got {value!r:.80}")
    return value


def _offset_limit(row: object, credits: frozenset[UnitType]) -> OffsetLimit:
    if type(row) is not OffsetLimit:
        raise OperationRefused(f"an offset limit must be an OffsetLimit, got {row!r:.80}")
    unit = _unit(row.unit)
    if unit not in credits:
        raise OperationRefused(f"offset limit on {unit}, which the scheme does not accept as a credit")
    _basis_points(row.bp, "an offset limit's bp")
    if row.base not in ("emissions", "obligation", "allocation") or row.over not in ("period", "phase"):
        raise OperationRefused(f"an offset limit's base is emissions, obligation or allocation and its over "
                               f"period or phase, got {row.base!r}, {row.over!r}")
    return OffsetLimit(unit, row.bp, row.base, row.over)


def _phase_banking(value: object, phases: frozenset[int]) -> bool | frozenset[int]:
    """``phase_banking``: true, false, or the first periods of the phases earlier phases bank into,
    each one of ``phases``."""
    if type(value) is bool:
        return value
    if not isinstance(value, frozenset | set | tuple | list):
        raise OperationRefused(f"phase_banking must be true, false or a list of phases, got {value!r:.80}")
    into = frozenset(_period(p) for p in value)
    if not into <= phases:
        raise OperationRefused(f"phase_banking names {sorted(into - phases)}, which are not first periods of "
                               f"phases {sorted(phases)}")
    return into


def _control_periods(value: object) -> tuple[tuple[int, int], ...]:
    """Control periods as sorted ``(first, last)`` pairs, each longer than one period, none
    overlapping another."""
    spans = []
    for pair in _listed(value, "control_periods"):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise OperationRefused(f"a control period is (first, last), got {pair!r:.80}")
        first, last = _period(pair[0]), _period(pair[1])
        if first >= last:
            raise OperationRefused(f"a control period runs from its first to a later last period, got "
                                   f"{first}..{last}")
        spans.append((first, last))
    spans.sort()
    for (_, last), (first, _) in pairwise(spans):
        if first <= last:
            raise OperationRefused(f"control periods overlap in {first}")
    return tuple(spans)


def _exclusion(pair: object) -> tuple[str, int]:
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise OperationRefused(f"an exclusion is (project type, first period), got {pair!r:.80}")
    return _name(pair[0], "project type"), _period(pair[1])


class IssuanceRules(Store):
    """Opens accounts and schemes, sets caps, issues serial blocks and expires them."""

    # -- accounts and schemes ------------------------------------------------------

    def open_account(self, account: str, kind: AccountKind = AccountKind.HOLDING, *,
                     units: Iterable[UnitType] | None = None, scheme: str | None = None) -> int:
        with self.transaction():
            _name(account, "account id")
            if account in self._accounts:
                raise DuplicateAccount(f"account {account!r} already exists")
            try:
                kind = AccountKind(kind)
            except ValueError:
                raise OperationRefused(f"unknown account kind {kind!r}") from None
            allowed = None if units is None else frozenset(_unit(u) for u in units)
            if scheme is not None:
                self._scheme(scheme)
            self._put(self._accounts, account, Account(account, kind, _OPEN, allowed, scheme))
            txid = self._txid()
            self._append(Entry(txid, "open", account, detail=str(kind)))
            return txid

    def set_status(self, account: str, status: AccountStatus) -> int:
        with self.transaction():
            acc = self._acct(account)
            try:
                status = AccountStatus(status)
            except ValueError:
                raise OperationRefused(f"unknown account status {status!r}") from None
            if acc.status is AccountStatus.CLOSED:
                raise AccountClosed(f"account {account!r} is closed: closing is final")
            self._put(self._accounts, account, Account(acc.id, acc.kind, status, acc.units, acc.scheme))
            txid = self._txid()
            self._append(Entry(txid, "status", account, detail=str(status)))
            return txid

    def account(self, account: str) -> Account:
        return self._acct(account)

    def create_scheme(self, scheme: Scheme) -> int:
        with self.transaction():
            _name(scheme.name, "scheme name")
            if scheme.name in self._schemes:
                raise DuplicateScheme(f"scheme {scheme.name!r} already exists")
            if type(scheme.offset_percent) is not int or not 0 <= scheme.offset_percent <= 100:
                raise InvalidQuantity(
                    f"offset_percent must be an integer in 0..100, got {scheme.offset_percent!r}")
            if not scheme.allowances:
                raise OperationRefused(f"scheme {scheme.name!r} issues no unit type")
            for flag in ("borrowing", "removals"):
                if type(getattr(scheme, flag)) is not bool:
                    raise OperationRefused(f"{flag} must be true or false, got {getattr(scheme, flag)!r}")
            if not isinstance(scheme.phases, frozenset | set | tuple | list):
                raise OperationRefused(f"phases must be a list of periods, got {scheme.phases!r:.80}")
            phases = frozenset(_period(p) for p in scheme.phases)
            credits = frozenset(_unit(u) for u in scheme.credits)
            clean = Scheme(scheme.name, frozenset(_unit(u) for u in scheme.allowances), credits,
                           scheme.offset_percent, bool(scheme.banking),
                           phases, _phase_banking(scheme.phase_banking, phases), scheme.borrowing,
                           scheme.removals,
                           _basis_points(scheme.borrow_limit, "borrow_limit"),
                           tuple(_offset_limit(row, credits)
                                 for row in _listed(scheme.offset_limits, "offset_limits")),
                           frozenset(_exclusion(pair) for pair in _listed(scheme.excluded, "excluded")),
                           frozenset(_name(s, "linked scheme") for s in _listed(scheme.links, "links")),
                           _basis_points(scheme.import_limit, "import_limit"),
                           _control_periods(scheme.control_periods))
            if clean.allowances & clean.credits:
                raise OperationRefused("a unit type cannot be both an allowance and a credit")
            if clean.name in clean.links:
                raise OperationRefused(f"scheme {clean.name!r} cannot link to itself")
            self._put(self._schemes, scheme.name, clean)
            txid = self._txid()
            self._append(Entry(txid, "scheme", "", detail=scheme.name))
            return txid

    def set_cap(self, scheme: str, period: int, cap: int) -> int:
        with self.transaction():
            self._scheme(scheme)
            _period(period)
            _qty(cap, "cap")
            issued = self._caps.get((scheme, period), (0, 0))[1]
            if cap < issued:
                raise CapExceeded(f"scheme {scheme!r} already issued {issued} for {period}; cap {cap} is below")
            self._put(self._caps, (scheme, period), (cap, issued))
            txid = self._txid()
            self._append(Entry(txid, "cap", "", qty=cap, ref=period, detail=scheme))
            return txid

    # -- units ---------------------------------------------------------------------

    def issue(self, account: str, unit: UnitType, qty: int, *, scheme: str, period: int,
              origin: str = "JP", start: int | None = None, project: str | None = None,
              expiry: int | None = None, project_type: str | None = None,
              monitoring: int | None = None) -> Block:
        with self.transaction():
            block = self._mint(account, unit, qty, scheme, period, origin, start, project, expiry, project_type,
                               monitoring)
            txid = self._txid()
            self._append(Entry(txid, "issue", account, unit=block.unit, qty=qty, ref=period,
                               detail=f"{scheme} {origin} {block.start}..{block.end}"))
            return block

    def _mint(self, account: str, unit: UnitType, qty: int, scheme: str, period: int, origin: str,
              start: int | None, project: str | None = None, expiry: int | None = None,
              project_type: str | None = None, monitoring: int | None = None) -> Block:
        """Create ``qty`` new serials into ``account`` (checked here), journaling nothing but the
        serials it made (``_moving``): the one way units come into being (an issue, an
        allocation). A crediting programme's credits take their project's type."""
        _qty(qty)
        unit = _unit(unit)
        acc = self._open(account, "issuing")
        if acc.kind not in (AccountKind.ISSUANCE, AccountKind.HOLDING):
            raise UnitNotAllowed(f"cannot issue into {acc.kind} account {account!r}")
        self._may_hold(acc, unit)
        sch = self._scheme(scheme)
        if unit not in sch.allowances and unit not in sch.credits:
            raise UnitNotAllowed(f"scheme {scheme!r} does not issue {unit}")
        _period(period)
        _name(origin, "origin")
        if unit in PROJECT_UNITS and (type(project) is not str or not project):
            raise OperationRefused(f"{unit} units need a project id")
        if project_type is not None:
            _name(project_type, "project type")
            if unit not in PROJECT_UNITS:
                raise OperationRefused(f"{unit} units come from no project: they have no project type")
        if unit in EXPIRING_UNITS and type(expiry) is not int:
            raise OperationRefused(f"{unit} units need an expiry period")
        if expiry is not None and _period(expiry) < period:
            raise OperationRefused(f"expiry {expiry} is before the units' period {period}")
        listed = self._credit_issuance(scheme, unit, qty, project, monitoring)
        if listed is not None:
            if project_type not in (None, listed):
                raise OperationRefused(f"project {project!r} is of type {listed!r}, not {project_type!r}")
            project_type = listed
        cap, issued = self._caps.get((scheme, period), (0, 0))
        if issued + qty > cap:
            raise CapExceeded(f"scheme {scheme!r} may issue {cap - issued} more for {period}; {qty} asked")
        if start is None:
            start = self._top.get(origin, 0) + 1
        elif type(start) is not int or start < 1:
            raise InvalidQuantity(f"first serial must be a positive integer, got {start!r}")
        end = start + qty - 1
        if end > INT64_MAX:
            raise InvalidQuantity(f"serials {start}..{end} go past 2**63 - 1")
        if self.linked is not None:  # no serial issued twice in any linked registry
            self.linked(origin, start, end)
        if start <= self._top.get(origin, 0):  # else past every serial of origin issued or imported: O(1)
            for (o, s), (e, *_rest) in chain(self._issuances.items(), self._ledgers.imports.items()):
                if o == origin and s <= end and e >= start:
                    raise DuplicateSerial(f"serials {origin} {start}..{end} overlap issued {s}..{e}")
        self._put(self._caps, (scheme, period), (cap, issued + qty))
        self._put(self._issuances, (origin, start), (end, str(unit), scheme, period))
        self._add(self._issued, unit, qty)
        if end > self._top.get(origin, 0):
            self._put(self._top, origin, end)
        bid = self._new_block_id()
        block = Block(bid, origin, unit, start, end, account, _ACTIVE, period, scheme, project, expiry,
                      project_type)
        self._put(self._blocks, bid, block)
        self._q_push(self._inner_of((account, unit)), bid)
        self._add(self._held, (account, unit), qty)
        self._moving = ("issue", [(origin, start, end)])
        return block

    def expire(self, unit: UnitType, period: int) -> int:
        with self.transaction():
            unit = _unit(unit)
            _period(period)
            dying = [b for b in self._blocks.values()
                     if b.state is _ACTIVE and b.unit is unit
                     and (b.period if b.expiry is None else b.expiry) <= period]
            total = 0
            touched: set[str] = set()
            for b in dying:
                n = b.end - b.start + 1
                self._q_remove(self._index[b.holder, unit], b.id)
                self._put(self._blocks, b.id, replace(b, state=BlockState.EXPIRED))
                self._add(self._held, (b.holder, unit), -n)
                touched.add(b.holder)
                total += n
            for holder in sorted(touched):  # shrink holds the expiry left uncovered, newest first
                excess = self._ureserved.get((holder, unit), 0) - self._held[holder, unit]
                for hid in sorted(self._holds, reverse=True):
                    if excess <= 0:
                        break
                    account, kind, asset, amount = self._holds[hid]
                    if account == holder and kind == "units" and asset == unit:
                        cut = min(excess, amount)
                        self._shrink_hold(hid, cut)
                        excess -= cut
            if total:
                self._moving = ("expire", [(b.origin, b.start, b.end) for b in dying])
                txid = self._txid()
                self._append(Entry(txid, "expire", "", unit=unit, qty=total, ref=period))
            return total
