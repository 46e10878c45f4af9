"""Compliance: verified emissions, obligations, surrender and its eligibility, carry-over.

A surrender counts only units the account's scheme accepts for the period (``ineligible``
states the rules and their sources) and takes the oldest eligible ones first, or the named
vintage or serials; it is refused with ``not_eligible`` when those cannot cover it.
Surrendering more than the obligation is allowed, as in the EU registry (code A is
"surrendered >= verified", DOMAIN.md 2): the surplus is spent, it does not carry to a later
period, and the recorded detail says so (``registry.commands``).
"""

from __future__ import annotations

from collections import deque

from msgspec.structs import replace

from carbonbook._types import INT64_MAX, UnitType
from carbonbook.errors import (
    BorrowingLimitExceeded,
    DeadlinePassed,
    InvalidQuantity,
    NotEligible,
    OffsetLimitExceeded,
    OperationRefused,
    RegistryError,
    UnitNotAllowed,
)
from carbonbook.registry._allocation import allocated
from carbonbook.registry._issuance import BP_MAX
from carbonbook.registry._store import (
    CompRow,
    Store,
    _name,
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
    Final,
    Scheme,
    Serials,
)


def ineligible(scheme: Scheme, issuer: Scheme, b: Block, period: int) -> str | None:
    """Why block ``b``, issued under ``issuer``, does not count for ``scheme``'s obligation for
    ``period`` (None: it counts). The caller has checked that ``scheme`` accepts ``b``'s unit
    type, as an allowance (its own or a linked scheme's) or as a credit. The rules, in order:

    - an allowance counts only for the scheme that issued it and for schemes that link to that
      one (``Scheme.links``: a scheme lists the schemes whose allowances it accepts, ICAP-style;
      DOMAIN.md 0, international linking); a credit (CER, ERU, JVER, ...) counts for any scheme
      that lists its type, within that scheme's offset limits (DOMAIN.md 2, "International
      credits"; 3, JVETS), unless the scheme excludes its project type from ``period`` on
      (``Scheme.excluded``; EU: HFC-23 and adipic N2O credits from 2013, Reg. 550/2011, DOMAIN.md 2);
    - a unit without an expiry counts for its own period (vintage); for a later one only when its
      issuing scheme banks into it (``Scheme.banks``: within a phase, or across phases; DOMAIN.md
      2, "Banking": none from phase 1 to 2, unlimited from phase 2; Kyoto carry-over, DOMAIN.md
      1); for the period before its own only when the scheme lends it (``Scheme.lends``: the next
      period within a phase, DOMAIN.md 2; the trial market's borrowing, DOMAIN.md 0), never further back;
    - a unit with an expiry (tCER, lCER) counts from its period up to its expiry period,
      banking or not (DOMAIN.md 1: valid until the end of the next commitment period).
    """
    if b.unit not in scheme.credits and b.scheme != scheme.name and b.scheme not in scheme.links:
        return f"scheme {b.scheme!r}, whose allowances {scheme.name!r} does not accept"
    if b.project_type is not None:
        for kind, first in scheme.excluded:
            if kind == b.project_type and period >= first:
                return f"project type {kind}, which {scheme.name!r} excludes from {first}"
    if b.period > period:
        if issuer.lends(b.period, period):
            return None
        return f"vintage {b.period}, later than {period} (scheme {issuer.name!r} does not lend it)"
    if b.expiry is not None:
        return None if period <= b.expiry else f"vintage {b.period}, expired after {b.expiry}"
    if b.period < period and not issuer.banks(b.period, period):
        return f"vintage {b.period} of scheme {issuer.name!r}, which does not allow banking into {period}"
    return None


def _imported(scheme: Scheme, b: Block) -> bool:
    """Whether ``b`` is an allowance of a scheme ``scheme`` links to (not its own, not a credit)."""
    return b.scheme != scheme.name and b.unit not in scheme.credits


def _within(bp: int, base: int, used: int, more: int, error: type[RegistryError], said: str) -> None:
    """Refuse ``more`` on top of ``used`` beyond ``bp`` basis points of ``base`` (rounded down):
    ``error`` with ``said`` (its ``{limit}`` filled in) and how many more were asked."""
    limit = bp * base // BP_MAX
    if used + more > limit:
        raise error(said.format(limit=limit) + f", {more} more asked")


IMPORTED = "import"
"""The ``credit_use`` key under which allowances of linked schemes are counted."""

MULTIPLE_MAX = 100
"""The largest multiple of a shortfall a deadline may carry into the next obligation."""

_NONE: CompRow = (None, 0, 0, 0)
"""The compliance row of an account and period with nothing recorded."""


class ComplianceRules(Store):
    """Emissions, obligations and compliance status, surrenders and carry-over, deadlines and
    penalties.

    A scheme's surrender deadline for a period (``set_deadline``) is a business day of the
    order log; when a later business day starts (``pass_days``) every operator account of the
    scheme gets its compliance for the period made final (a ``compliance_final`` transaction
    with the penalty: shortfall x rate, DOMAIN.md 2 "Penalty"). After that a surrender or
    emissions for the period are refused with ``deadline_passed``: the status is final, and the
    shortfall, carried into the next period's obligation, is surrendered against that period
    (DOMAIN.md 2: "the shortfall must still be surrendered with next year's allowances").
    A deadline's ``multiple`` (default 1) is how many times the final shortfall is added to the
    next period's obligation: 1 is the EU rule (the shortfall itself, DOMAIN.md 2); RGGI-style
    schemes deduct a multiple of the excess emissions (3 in RGGI: recalled, issue 14 item 3).
    Periods of a scheme without a deadline keep today's rules (never final)."""

    def _open_period(self, scheme: str, account: str, period: int, what: str) -> None:
        dl = self._deadlines.get((scheme, period))
        if dl is not None and dl[3]:
            raise DeadlinePassed(
                f"{what} of {account!r} for {period}: the surrender deadline of {scheme!r} {period} "
                f"(day {dl[0]}) has passed and its compliance is final; the shortfall is carried into "
                f"{period + 1}'s obligation: surrender against {period + 1}")

    def set_deadline(self, scheme: str, period: int, day: int, *, penalty: int = 0,
                     currency: str | None = None, multiple: int = 1) -> int:
        with self.transaction():
            sch = self._scheme(scheme)
            _period(period)
            if type(day) is not int or not 0 <= day <= INT64_MAX:
                raise OperationRefused(f"deadline day must be a non-negative integer, got {day!r}")
            if type(penalty) is not int or not 0 <= penalty <= INT64_MAX:
                raise InvalidQuantity(f"penalty must be a non-negative integer, got {penalty!r}")
            if type(multiple) is not int or not 1 <= multiple <= MULTIPLE_MAX:
                raise InvalidQuantity(f"multiple must be an integer in 1..{MULTIPLE_MAX}, got {multiple!r}")
            if currency is not None:
                _name(currency, "currency")
            elif penalty:
                raise OperationRefused("a penalty needs its currency")
            if (sch.name, period) in self._deadlines:
                raise OperationRefused(f"the deadline of {sch.name!r} {period} is already set")
            today = self._meta.get("day", 0)
            if day < today:
                raise OperationRefused(f"deadline day {day} is before the current business day {today}")
            self._put(self._deadlines, (sch.name, period), (day, penalty, currency, 0, multiple))
            txid = self._txid()
            said = f"day {day}" + (f", shortfall carried x{multiple}" if multiple > 1 else "")
            self._append(Entry(txid, "deadline", sch.name, currency=currency, amount=penalty, ref=period,
                               detail=said))
            return txid

    def pass_days(self, since: int, day: int) -> list[Final]:
        with self.transaction():
            if day > self._meta.get("day", 0):
                self._put(self._meta, "day", day)
            due = sorted((dl[0], sch, period) for (sch, period), dl in self._deadlines.items()
                         if dl[0] < day and not dl[3])
            for when, sch, period in due:
                self._finalize(sch, period, when)
            out: list[Final] = []
            shown = sorted((dl[0], sch, period) for (sch, period), dl in self._deadlines.items()
                           if since <= dl[0] < day)
            for when, sch, period in shown:
                currency = self._deadlines[sch, period][2]
                for (account, p), row in sorted(self._finals.items()):
                    status, obl, surr, short, pen, txid, carried = row
                    if p == period and self._accounts[account].scheme == sch:
                        out.append(Final(account, period, when, ComplianceStatus(status), obl, surr, short, pen,
                                         currency, txid, carried))
            return out

    def _finalize(self, scheme: str, period: int, when: int) -> None:
        day, rate, currency, _, multiple = self._deadlines[scheme, period]
        for account in sorted(a for a, acc in self._accounts.items() if acc.scheme == scheme):
            c = self.compliance(account, period)
            penalty = min(INT64_MAX, c.shortfall * rate) if c.verified is not None else 0
            carried = min(INT64_MAX, c.shortfall * multiple)
            txid = self._txid()
            # obligations add up carried shortfalls: what is stored stays within 64 bits
            obligation, shortfall = min(INT64_MAX, c.obligation), min(INT64_MAX, c.shortfall)
            self._put(self._finals, (account, period),
                      (str(c.status), obligation, c.surrendered, shortfall, penalty, txid, carried))
            self._append(Entry(txid, "compliance_final", account, currency=currency, amount=penalty,
                               qty=shortfall, ref=period, detail=f"status {c.status}, day {when}"))
        self._put(self._deadlines, (scheme, period), (day, rate, currency, 1, multiple))

    def _emissions_row(self, account: str, period: int, tonnes: int, what: str) -> CompRow:
        """Check an emissions figure for ``account``'s open ``period``; its compliance row."""
        acc = self._acct(account)
        if acc.scheme is None:
            raise OperationRefused(f"account {account!r} has no compliance scheme")
        _period(period)
        self._open_period(acc.scheme, account, period, what)
        if self._schemes[acc.scheme].removals:
            if type(tonnes) is not int or not -INT64_MAX <= tonnes <= INT64_MAX:
                raise InvalidQuantity(f"emissions must be an integer below 2**63 in size (negative: net "
                                      f"removals), got {tonnes!r}")
        elif type(tonnes) is not int or not 0 <= tonnes <= INT64_MAX:
            raise InvalidQuantity(f"emissions must be a non-negative integer (scheme {acc.scheme!r} counts no "
                                  f"removals), got {tonnes!r}")
        return self._comp.get((account, period), _NONE)

    def record_emissions(self, account: str, period: int, tonnes: int) -> int:
        with self.transaction():
            verified, *counts = self._emissions_row(account, period, tonnes, "emissions")
            if verified is not None:
                raise OperationRefused(f"emissions of {account!r} for {period} are already recorded")
            self._put(self._comp, (account, period), (tonnes, *counts))
            txid = self._txid()
            self._append(Entry(txid, "emissions", account, qty=tonnes, ref=period))
            return txid

    def correct_emissions(self, account: str, period: int, tonnes: int) -> int:
        with self.transaction():
            verified, *counts = self._emissions_row(account, period, tonnes, "emissions correction")
            if verified is None:
                raise OperationRefused(f"emissions of {account!r} for {period} are not recorded: "
                                       "nothing to correct")
            if verified == tonnes:
                raise OperationRefused(f"emissions of {account!r} for {period} are already {tonnes}")
            self._put(self._comp, (account, period), (tonnes, *counts))
            txid = self._txid()
            self._append(Entry(txid, "emissions_correction", account, qty=tonnes, ref=period,
                               detail=f"corrected from {verified} to {tonnes}"))
            return txid

    def _obligation(self, account: str, period: int) -> int:
        periods = [p for (a, p) in self._comp if a == account and p <= period]
        carry = 0
        obligation = 0
        finals = self._finals
        for p in range(min(periods), period + 1) if periods else ():
            final = finals.get((account, p)) if finals else None
            if final is not None:
                obligation, carry = final[1], final[6]
                continue
            verified, surrendered, *_ = self._comp.get((account, p), _NONE)
            obligation = (verified or 0) + carry
            if obligation < 0:  # net removals (a scheme with removals) owe nothing, carry nothing
                obligation = 0
            carry = max(0, obligation - surrendered)
        return obligation

    def compliance(self, account: str, period: int) -> Compliance:
        self._acct(account)
        verified, surrendered, offsets, borrowed = self._comp.get((account, period), _NONE)
        final = self._finals.get((account, period))
        if final is not None:
            status, obligation, surrendered, shortfall, penalty, _, _ = final
            return Compliance(account, period, verified, obligation, surrendered, offsets, shortfall,
                              ComplianceStatus(status), borrowed, True, penalty)
        obligation = self._obligation(account, period)
        shortfall = max(0, obligation - surrendered)
        if verified is None:
            status = ComplianceStatus.C
        else:
            status = ComplianceStatus.A if surrendered >= obligation else ComplianceStatus.B
        return Compliance(account, period, verified, obligation, surrendered, offsets, shortfall, status,
                          borrowed)

    def surrender(self, account: str, period: int, unit: UnitType, qty: int, *, to: str,
                  vintage: int | None = None, serials: Serials | None = None) -> int:
        with self.transaction():
            _qty(qty)
            unit = _unit(unit)
            _period(period)
            if vintage is not None:
                _period(vintage)
                if serials is not None:
                    raise OperationRefused("a surrender names a vintage or serials, not both")
            acc = self._open(account, "surrendering")
            if acc.scheme is None:
                raise OperationRefused(f"account {account!r} has no compliance scheme")
            self._open_period(acc.scheme, account, period, "surrender")
            self._terminal_target(to, (AccountKind.RETIREMENT,))
            sch = self._schemes[acc.scheme]
            verified, surrendered, offsets, borrowed = self._comp.get((account, period), _NONE)
            credit = unit in sch.credits
            if credit:
                if sch.offset_percent or not sch.offset_limits:
                    limit = sch.offset_percent * self._obligation(account, period) // 100
                    if offsets + qty > limit:
                        raise OffsetLimitExceeded(
                            f"scheme {sch.name!r} allows {limit} credits for {account!r} in {period} "
                            f"({sch.offset_percent}% of the obligation); {offsets} used, {qty} more asked")
            elif unit not in sch.allowances and not any(
                    unit in self._schemes[s].allowances for s in sch.links if s in self._schemes):
                raise UnitNotAllowed(f"scheme {sch.name!r} does not accept {unit}")
            if serials is None:
                picks, lent, imported = self._eligible(account, sch, unit, qty, period, vintage)
                self._take(account, unit, qty, to, BlockState.SURRENDERED, None, picks=picks)
            else:
                lent = imported = 0

                def admit(b: Block) -> None:
                    nonlocal lent, imported
                    fault = ineligible(sch, self._schemes[b.scheme], b, period)
                    if fault is not None:
                        raise NotEligible(f"serials {b.origin} {b.start}..{b.end} ({b.unit}) do not count for "
                                          f"{sch.name!r} {period}: {fault}")
                    n = min(b.end, serials.end) - max(b.start, serials.start) + 1
                    lent += n if b.period > period else 0
                    imported += n if _imported(sch, b) else 0
                self._take(account, unit, qty, to, BlockState.SURRENDERED, serials, admit=admit)
            txid = self._txid()
            if lent:
                self._lend(account, sch, unit, period, borrowed, lent, txid)
            if credit and sch.offset_limits:
                self._offset_table(account, sch, unit, period, qty)
            if imported:
                self._imports(account, sch, period, imported)
            self._put(self._comp, (account, period),
                      (verified, surrendered + qty, offsets + (qty if credit else 0), borrowed + lent))
            self._append(Entry(txid, "surrender", account, to, unit, qty, ref=period,
                               detail=f"borrowed {lent} of {period + 1}" if lent else ""))
            return txid

    def _lend(self, account: str, sch: Scheme, unit: UnitType, period: int, borrowed: int, lent: int,
              txid: int) -> None:
        """Check a surrender's ``lent`` units of ``period + 1`` against ``sch``'s borrowing limit (a
        share of the account's allocation for ``period + 1``: the trial market's 借り入れ, DOMAIN.md
        0) and record them as a cut to that allocation (an ``Allocation`` of method ``borrowed``)
        when one is on record."""
        nxt = allocated(self, account, period + 1, cuts=False)
        if sch.borrow_limit is not None:
            _within(sch.borrow_limit, nxt, borrowed, lent, BorrowingLimitExceeded,
                    f"scheme {sch.name!r} lends {account!r} at most {{limit}} of {period + 1} for {period} "
                    f"({sch.borrow_limit} bp of its {period + 1} allocation of {nxt}); {borrowed} borrowed")
        if nxt:
            self._put(self._allocations, txid, (account, sch.name, period + 1, "borrowed", str(unit), -lent,
                                                0, 1, 1, "", 0))

    def _phase_periods(self, account: str, sch: Scheme, period: int) -> list[int]:
        """The periods of ``period``'s phase of ``sch`` for which ``account`` has anything on record."""
        seen = {p for (a, p) in self._comp if a == account}
        seen.update(r[2] for r in self._allocations.values() if r[0] == account)
        seen.update(p for (a, p, _) in self._credit_use if a == account)
        seen.add(period)
        phase = sch.phase(period)
        return sorted(p for p in seen if sch.phase(p) == phase)

    def _offset_table(self, account: str, sch: Scheme, unit: UnitType, period: int, qty: int) -> None:
        """Check ``qty`` more credits of ``unit`` against every row of ``sch``'s offset table for
        that credit type (DOMAIN.md 2, "International credits": per-installation limits in phase 2,
        a share of allocation or of verified emissions in phase 3, Reg. 1123/2013; GX-ETS 10% of
        emissions, DOMAIN.md 3), and count them."""
        for row in sch.offset_limits:
            if row.unit != unit:
                continue
            periods = [period] if row.over == "period" else self._phase_periods(account, sch, period)
            used = sum(self._credit_use.get((account, p, str(unit)), 0) for p in periods)
            if row.base == "emissions":
                base = sum(max(0, self._comp.get((account, p), _NONE)[0] or 0) for p in periods)
            elif row.base == "obligation":
                base = sum(self._obligation(account, p) for p in periods)
            else:
                base = sum(max(0, allocated(self, account, p, cuts=False)) for p in periods)
            span = (period if row.over == "period" else
                    f"the phase from {sch.phase(period)} (periods on record: {', '.join(map(str, periods))})")
            _within(row.bp, base, used, qty, OffsetLimitExceeded,
                    f"scheme {sch.name!r} allows {{limit}} {unit} for {account!r} in {span} ({row.bp} bp of "
                    f"its {row.base} of {base}); {used} used")
        self._add(self._credit_use, (account, period, str(unit)), qty)

    def _imports(self, account: str, sch: Scheme, period: int, imported: int) -> None:
        """Check ``imported`` allowances of linked schemes against ``sch``'s import limit (a share
        of the period's obligation) and count them."""
        used = self._credit_use.get((account, period, IMPORTED), 0)
        if sch.import_limit is not None:
            obligation = self._obligation(account, period)
            _within(sch.import_limit, obligation, used, imported, OffsetLimitExceeded,
                    f"scheme {sch.name!r} takes at most {{limit}} allowances of linked schemes from "
                    f"{account!r} in {period} ({sch.import_limit} bp of its obligation of {obligation}); "
                    f"{used} used")
        self._add(self._credit_use, (account, period, IMPORTED), imported)

    def _eligible(self, account: str, sch: Scheme, unit: UnitType, qty: int, period: int,
                  vintage: int | None) -> tuple[list[int], int, int]:
        """The ids of ``account``'s active ``unit`` blocks that count for ``sch``'s ``period``
        (only those of ``vintage`` when given), oldest vintage first (so borrowed units go
        last), then oldest block; and how many of the first ``qty`` units are borrowed and how
        many are allowances of a linked scheme.
        Raises NotEligible when they cannot cover ``qty`` but the ineligible ones would have
        helped (an account that holds too few units at all gets InsufficientUnits from the
        move). Cost: O(blocks held of ``unit``)."""
        blocks = self._blocks
        ok: list[Block] = []
        refused: dict[str, int] = {}
        for bid in self._index.get((account, unit), ()):
            b = blocks[bid]
            fault = ineligible(sch, self._schemes[b.scheme], b, period)
            if fault is None and vintage is not None and b.period != vintage:
                fault = f"vintage {b.period}, not the named vintage {vintage}"
            if fault is None:
                ok.append(b)
            else:
                refused[fault] = refused.get(fault, 0) + b.qty
        have = sum(b.qty for b in ok)
        if have < qty and refused:
            why = "; ".join(f"{n} {unit} of {fault}" for fault, n in sorted(refused.items()))
            raise NotEligible(f"account {account!r} holds {have} {unit} that count for {sch.name!r} {period}, "
                              f"{qty} needed; not eligible: {why}")
        ok.sort(key=lambda b: (b.period, b.id))
        need = qty
        lent = imported = 0
        for b in ok:
            if not need:
                break
            n = min(b.qty, need)
            lent += n if b.period > period else 0
            imported += n if _imported(sch, b) else 0
            need -= n
        return [b.id for b in ok], lent, imported

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
                if not self._schemes[b.scheme].banks(period, period + 1):
                    raise OperationRefused(f"scheme {b.scheme!r} does not allow banking into {period + 1}")
                if b.expiry is not None and b.expiry <= period:
                    raise OperationRefused(f"serials {b.origin} {b.start}..{b.end} expire in {b.expiry}")
            total = 0
            for b in moving:
                self._put(self._blocks, b.id, replace(b, period=period + 1))
                total += b.end - b.start + 1
            if total:
                txid = self._txid()
                self._append(Entry(txid, "carry_over", account, unit=unit, qty=total, ref=period))
            return total
