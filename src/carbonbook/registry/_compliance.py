"""Compliance: verified emissions, obligations, surrender and carry-over.
"""

from __future__ import annotations

from collections import deque

from carbonbook._types import INT64_MAX, UnitType
from carbonbook.errors import (
    InvalidQuantity,
    OffsetLimitExceeded,
    OperationRefused,
    UnitNotAllowed,
)
from carbonbook.registry._store import (
    Store,
    _period,
    _qty,
    _unit,
)
from carbonbook.registry.base import (
    EXPIRING_UNITS,
    AccountKind,
    Block,
    BlockState,
    Compliance,
    ComplianceStatus,
    Entry,
)


class ComplianceRules(Store):
    """Emissions, obligations and compliance status, surrenders and carry-over."""

    # -- compliance ----------------------------------------------------------------

    def record_emissions(self, account: str, period: int, tonnes: int) -> int:
        with self.transaction():
            acc = self._acct(account)
            if acc.scheme is None:
                raise OperationRefused(f"account {account!r} has no compliance scheme")
            _period(period)
            if type(tonnes) is not int or not 0 <= tonnes <= INT64_MAX:
                raise InvalidQuantity(f"emissions must be a non-negative integer, got {tonnes!r}")
            verified, surrendered, offsets = self._comp.get((account, period), (None, 0, 0))
            if verified is not None:
                raise OperationRefused(f"emissions of {account!r} for {period} are already recorded")
            self._put(self._comp, (account, period), (tonnes, surrendered, offsets))
            txid = self._txid()
            self._append(Entry(txid, "emissions", account, qty=tonnes, ref=period))
            return txid

    def _obligation(self, account: str, period: int) -> int:
        periods = [p for (a, p) in self._comp if a == account and p <= period]
        carry = 0
        obligation = 0
        for p in range(min(periods), period + 1) if periods else ():
            verified, surrendered, _ = self._comp.get((account, p), (None, 0, 0))
            obligation = (verified or 0) + carry
            carry = max(0, obligation - surrendered)
        return obligation

    def compliance(self, account: str, period: int) -> Compliance:
        self._acct(account)
        verified, surrendered, offsets = self._comp.get((account, period), (None, 0, 0))
        obligation = self._obligation(account, period)
        shortfall = max(0, obligation - surrendered)
        if verified is None:
            status = ComplianceStatus.C
        else:
            status = ComplianceStatus.A if surrendered >= obligation else ComplianceStatus.B
        return Compliance(account, period, verified, obligation, surrendered, offsets, shortfall, status)

    def surrender(self, account: str, period: int, unit: UnitType, qty: int, *, to: str) -> int:
        with self.transaction():
            _qty(qty)
            unit = _unit(unit)
            _period(period)
            acc = self._open(account, "surrendering")
            if acc.scheme is None:
                raise OperationRefused(f"account {account!r} has no compliance scheme")
            self._terminal_target(to, (AccountKind.RETIREMENT,))
            sch = self._schemes[acc.scheme]
            verified, surrendered, offsets = self._comp.get((account, period), (None, 0, 0))
            credit = unit in sch.credits
            if credit:
                limit = sch.offset_percent * self._obligation(account, period) // 100
                if offsets + qty > limit:
                    raise OffsetLimitExceeded(
                        f"scheme {sch.name!r} allows {limit} credits for {account!r} in {period} "
                        f"({sch.offset_percent}% of the obligation); {offsets} used, {qty} more asked")
            elif unit not in sch.allowances:
                raise UnitNotAllowed(f"scheme {sch.name!r} does not accept {unit}")
            self._take(account, unit, qty, to, BlockState.SURRENDERED, None)
            self._put(self._comp, (account, period),
                      (verified, surrendered + qty, offsets + (qty if credit else 0)))
            txid = self._txid()
            self._append(Entry(txid, "surrender", account, to, unit, qty, ref=period))
            return txid

    def carry_over(self, account: str, unit: UnitType, period: int) -> int:
        with self.transaction():
            unit = _unit(unit)
            _period(period)
            self._open(account, "banking")
            if unit in EXPIRING_UNITS or unit is UnitType.RMU:
                raise OperationRefused(f"{unit} units cannot be carried over")
            inner = self._index.get((account, unit), deque())
            moving = [self._blocks[bid] for bid in inner if self._blocks[bid].period == period]
            for b in moving:
                if not self._schemes[b.scheme].banking:
                    raise OperationRefused(f"scheme {b.scheme!r} does not allow banking")
                if b.expiry is not None and b.expiry <= period:
                    raise OperationRefused(f"serials {b.origin} {b.start}..{b.end} expire in {b.expiry}")
            total = 0
            for b in moving:
                self._put(self._blocks, b.id, Block(b.id, b.origin, b.unit, b.start, b.end, b.holder,
                                                    b.state, period + 1, b.scheme, b.project, b.expiry))
                total += b.end - b.start + 1
            if total:
                txid = self._txid()
                self._append(Entry(txid, "carry_over", account, unit=unit, qty=total, ref=period))
            return total
