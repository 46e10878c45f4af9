"""Free allocation: allocation by benchmark, grandfathering or intensity target, the intensity
true-up and the return of excess allocation, each a transaction with its inputs on record.

An allocation creates new serials of the operator's scheme (``IssuanceRules._mint``, under the
period's cap) and records how they were computed (``base.Allocation``: method and inputs, all
integers, divisions rounded down) in the ``allocations`` table, keyed by its txid, so a report
shows how each allocation came about (``allocations()``). A return moves units back into an
issuance account (they stay active there, so conservation holds) and lowers the period's
allocation; so does a true-up below what was allocated. The period's allocation is the sum of
its records; it is what a scheme's borrowing limit and an ``allocation`` offset base are
measured against (``_compliance``). Cost: each operation O(allocation records) plus what its
units' move costs.
"""

from __future__ import annotations

from collections.abc import Iterable

from carbonbook._types import INT64_MAX, UnitType
from carbonbook.errors import InsufficientUnits, InvalidQuantity, OperationRefused, UnitNotAllowed
from carbonbook.registry._issuance import IssuanceRules
from carbonbook.registry._store import AllocRow, Store, _period, _qty, _unit
from carbonbook.registry.base import ALLOCATION_METHODS, AccountKind, Allocation, BlockState, Entry, Scheme

BASE_YEARS_MAX = 10
"""The most base years a grandfathered allocation averages."""


def computed(method: str, activity: int, rate: int, per: int, base: tuple[int, ...], reduction: int) -> int:
    """The units ``method`` gives for these inputs (see ``base.Allocation``); OperationRefused or
    InvalidQuantity for inputs it cannot use."""
    if method not in ALLOCATION_METHODS:
        raise OperationRefused(f"allocation method must be one of {', '.join(ALLOCATION_METHODS)}, "
                               f"got {method!r:.40}")
    for value, what in ((rate, "rate"), (per, "per")):
        _qty(value, what)
    if type(reduction) is not int or not 0 <= reduction <= INT64_MAX:
        raise InvalidQuantity(f"reduction must be a non-negative integer, got {reduction!r}")
    if method == "grandfathering":
        if not 1 <= len(base) <= BASE_YEARS_MAX or any(type(e) is not int or not 0 <= e <= INT64_MAX
                                                        for e in base):
            raise InvalidQuantity(f"grandfathering needs 1..{BASE_YEARS_MAX} base years' emissions, "
                                  f"non-negative integers, got {list(base)!r:.80}")
        if activity:
            raise OperationRefused("grandfathering takes base years' emissions, not an activity")
        qty = sum(base) * rate // (len(base) * per) - reduction
    else:
        if base or reduction:
            raise OperationRefused(f"{method} takes an activity and a rate, not base years or a reduction")
        _qty(activity, "activity")
        qty = activity * rate // per
    if not 0 < qty <= INT64_MAX:
        raise InvalidQuantity(f"the {method} allocation computes to {qty} units: nothing to allocate")
    return qty


def said(a: Allocation) -> str:
    """How allocation record ``a`` was computed, in words (the ``recorded`` detail)."""
    factor = "" if a.rate == a.per == 1 else f" x {a.rate}/{a.per}"
    if a.method == "grandfathering":
        n = len(a.base)
        avg = f"({'+'.join(map(str, a.base))})/{n}" if n > 1 else str(a.base[0])
        cut = f" - {a.reduction} reduction" if a.reduction else ""
        how = f"base-year average {avg}{factor}{cut}"
    elif a.method in ("benchmark", "intensity"):
        what = "activity" if a.method == "benchmark" else "forecast production"
        how = f"{what} {a.activity}{factor}" + (", to be trued up" if a.method == "intensity" else "")
    elif a.method == "true_up":
        how = f"verified production {a.activity}{factor}, allocated {a.reduction}"
    else:
        how = "excess allocation returned" if a.method == "return" else "borrowed for the period before"
    return f"{a.account} {a.period} {a.method}: {how}: {a.qty:+d} {a.unit}"


def _record(txid: int, r: AllocRow) -> Allocation:
    account, scheme, period, method, unit, qty, activity, rate, per, base, reduction = r
    return Allocation(txid, account, scheme, period, method, UnitType(unit), qty, activity, rate, per,
                      tuple(int(e) for e in base.split(",") if e), reduction)


def allocated(store: Store, account: str, period: int, *, cuts: bool = True) -> int:
    """``account``'s allocation for ``period``: the sum of its records (without the borrowing
    cuts when ``cuts`` is false). O(allocation records)."""
    return sum(r[5] for r in store._allocations.values()
               if r[0] == account and r[2] == period and (cuts or r[3] != "borrowed"))


class AllocationRules(IssuanceRules):
    """Allocations, true-ups and returns of excess allocation (see the module)."""

    def _operator(self, account: str, period: int) -> tuple[str, Scheme]:
        acc = self._open(account, "allocated")
        if acc.scheme is None:
            raise OperationRefused(f"account {account!r} has no compliance scheme: nothing to allocate under")
        _period(period)
        return account, self._schemes[acc.scheme]

    def _put_allocation(self, txid: int, a: Allocation) -> Allocation:
        self._put(self._allocations, txid, (a.account, a.scheme, a.period, a.method, str(a.unit), a.qty,
                                            a.activity, a.rate, a.per, ",".join(map(str, a.base)), a.reduction))
        return a

    def allocate(self, account: str, period: int, method: str, *, unit: UnitType | None = None,
                 activity: int = 0, rate: int = 1, per: int = 1, base: Iterable[int] = (), reduction: int = 0,
                 origin: str = "JP", start: int | None = None) -> Allocation:
        with self.transaction():
            account, sch = self._operator(account, period)
            if not isinstance(base, tuple | list):
                raise OperationRefused(f"base must be a list of emissions, got {base!r:.80}")
            years = tuple(base)
            qty = computed(method, activity, rate, per, years, reduction)
            if unit is None:
                if len(sch.allowances) != 1:
                    raise OperationRefused(f"scheme {sch.name!r} issues {len(sch.allowances)} allowance types: "
                                           "name the unit")
                (unit,) = sch.allowances
            unit = _unit(unit)
            if unit not in sch.allowances:
                raise UnitNotAllowed(f"scheme {sch.name!r} allocates no {unit}")
            block = self._mint(account, unit, qty, sch.name, period, origin, start)
            txid = self._txid()
            a = self._put_allocation(txid, Allocation(txid, account, sch.name, period, method, unit, qty,
                                                      activity, rate, per, years, reduction))
            self._append(Entry(txid, "allocate", account, unit=unit, qty=qty, ref=period,
                               detail=f"{method} {block.origin} {block.start}..{block.end}"))
            return a

    def true_up(self, account: str, period: int, production: int, *, to: str | None = None,
                origin: str = "JP") -> Allocation:
        with self.transaction():
            account, sch = self._operator(account, period)
            _qty(production, "production")
            target = [self._allocations[t] for t in sorted(self._allocations)
                      if self._allocations[t][0] == account and self._allocations[t][2] == period
                      and self._allocations[t][3] == "intensity"]
            if not target:
                raise OperationRefused(f"account {account!r} has no intensity allocation for {period} "
                                       "to true up")
            unit, rate, per = UnitType(target[-1][4]), target[-1][7], target[-1][8]
            entitled = production * rate // per
            now = allocated(self, account, period, cuts=False)
            delta = entitled - now
            if delta == 0:
                raise OperationRefused(f"{account!r} {period}: production {production} x {rate}/{per} = "
                                       f"{entitled}, already allocated: nothing to true up")
            if delta > 0:
                self._mint(account, unit, delta, sch.name, period, origin, None)
            else:
                self._give_back(account, sch, unit, period, -delta, to)
            txid = self._txid()
            a = self._put_allocation(txid, Allocation(txid, account, sch.name, period, "true_up", unit, delta,
                                                      production, rate, per, (), now))
            self._append(Entry(txid, "true_up", account, to if delta < 0 else None, unit, abs(delta),
                               ref=period, detail=f"production {production}: {entitled} due, {now} allocated"))
            return a

    def return_allocation(self, account: str, period: int, qty: int, *, to: str) -> Allocation:
        with self.transaction():
            account, sch = self._operator(account, period)
            _qty(qty)
            now = allocated(self, account, period)
            if qty > now:
                raise OperationRefused(f"{account!r} was allocated {now} for {period}: it cannot return {qty}")
            unit = UnitType(next(r[4] for t, r in sorted(self._allocations.items(), reverse=True)
                                 if r[0] == account and r[2] == period))
            self._give_back(account, sch, unit, period, qty, to)
            txid = self._txid()
            a = self._put_allocation(txid, Allocation(txid, account, sch.name, period, "return", unit, -qty))
            self._append(Entry(txid, "allocation_return", account, to, unit, qty, ref=period))
            return a

    def _give_back(self, account: str, sch: Scheme, unit: UnitType, period: int, qty: int,
                   to: str | None) -> None:
        """Move ``qty`` of ``account``'s ``unit`` of ``sch`` and vintage ``period`` (oldest first) into
        issuance account ``to``."""
        if to is None:
            raise OperationRefused("units taken back need the issuance account they go to")
        dst = self._open(to, "receiving")
        if dst.kind is not AccountKind.ISSUANCE:
            raise UnitNotAllowed(f"account {to!r} is a {dst.kind} account, not issuance")
        self._may_hold(dst, unit)
        blocks = self._blocks
        picks = [bid for bid in self._index.get((account, unit), ())
                 if blocks[bid].scheme == sch.name and blocks[bid].period == period]
        have = sum(blocks[bid].qty for bid in picks)
        if have < qty:
            raise InsufficientUnits(f"account {account!r} holds {have} {unit} of {sch.name!r} {period}; "
                                    f"{qty} to give back")
        self._take(account, unit, qty, to, BlockState.ACTIVE, None, picks=picks)

    def allocations(self, account: str | None = None, period: int | None = None) -> list[Allocation]:
        return [_record(t, r) for t, r in sorted(self._allocations.items())
                if (account is None or r[0] == account) and (period is None or r[2] == period)]
