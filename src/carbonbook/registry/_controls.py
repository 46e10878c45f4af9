"""Access and transfer controls: who may act, trusted account lists, delays, limits, four eyes.

The controls the EU registries added after the 2010-11 thefts (DOMAIN.md 6), on the order
log's business days (never a clock):

- **Actors.** Every registry command names the person acting (``acting``). An account's
  **representatives** act for it; **administrators** do what the registry's operator does
  (schemes, caps, accounts, issuance, cash, emissions, representatives, controls). The
  controls bind once configured: an account without representatives may be acted for by
  anyone, and a registry without administrators takes administrative acts from anyone, so an
  order log written before actors existed replays unchanged. Refusal: ``not_authorised``.
- **Trusted account list** per account: a representative proposes an account, a *second*
  representative approves, and it counts as trusted ``trusted_delay`` business days after the
  approval (EU: 4). Removal is at once.
- **Transfers outside the list** wait ``outside_delay`` business days (cancellable meanwhile),
  or are refused (``not_trusted``) with ``bar_outside`` (operator accounts), and may move at
  most ``limit`` units each (``limit_exceeded``).
- **Four eyes** (``four_eyes``): a transfer is proposed by one representative and executes
  (or starts its delay) only when another approves it.
- A transfer that waits is **pending**: its id is the txid that proposed it, its units are held
  under hold id ``-id`` (so they can be neither sold nor moved twice), and it ends executed,
  cancelled (by a representative of the sender or an administrator) or failed (when its
  units are gone by its due day, e.g. expired). ``start_day`` executes the ones due, in id
  order, when the log's ``business_day`` starts. Done transfers stay on record, so a replay
  reads what happened.

Settlement of a venue's trades is not a transfer here: the market's pre-trade holds and DvP
are the exchange's (its clearing account would be on every trusted list). Costs: a check is
a few dict lookups; a controlled transfer is a transfer plus one hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from carbonbook._types import INT64_MAX, UnitType
from carbonbook.errors import (
    AccountClosed,
    DuplicateAccount,
    InsufficientUnits,
    NotAuthorised,
    NotTrusted,
    OperationRefused,
    RegistryError,
    SameAccount,
    TerminalUnits,
    TransferLimitExceeded,
    UnknownTransfer,
)
from carbonbook.registry._store import (
    _ACTIVE,
    _TERMINAL_KINDS,
    PendingRow,
    Store,
    _name,
    _qty,
)
from carbonbook.registry.base import Controls, Entry, PendingTransfer, Serials, Trusted

_WAITING = ("proposed", "delayed")


def _days(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= 10_000:
        raise OperationRefused(f"{what} must be a number of business days in 0..10000, got {value!r}")
    return value


def _pending(pid: int, r: PendingRow) -> PendingTransfer:
    return PendingTransfer(pid, r[0], r[1], UnitType(r[2]), r[3], r[4], r[5], r[6], r[7], bool(r[8]), r[9],
                           r[10], r[11])


class ControlRules(Store):
    """Actors, representatives, administrators, trusted lists and controlled transfers (see the module)."""

    # -- who acts ------------------------------------------------------------------

    @contextmanager
    def acting(self, actor: str | None) -> Iterator[None]:
        if actor is not None:
            _name(actor, "actor")
        before, self._actor = self._actor, actor
        try:
            yield
        finally:
            self._actor = before

    def authorise(self, actor: str | None, account: str | None = None) -> None:
        if account is None:
            if self._ledgers.admins and actor not in self._ledgers.admins:
                raise NotAuthorised(f"{actor!r} is not an administrator of this registry")
            return
        if self._has_reps(account) and (actor is None or (account, actor) not in self._ledgers.reps):
            raise NotAuthorised(f"{actor!r} is not a representative of account {account!r}")

    def _has_reps(self, account: str) -> bool:
        return any(a == account for a, _ in self._ledgers.reps)

    def _authorise_rep(self, account: str) -> str | None:
        """The actor, who must represent ``account`` (anyone while it has no representatives)."""
        self.authorise(self._actor, account)
        return self._actor

    def add_administrator(self, person: str) -> int:
        with self.transaction():
            _name(person, "person")
            self.authorise(self._actor)
            if person in self._ledgers.admins:
                raise DuplicateAccount(f"{person!r} is an administrator already")
            txid = self._txid()
            self._put(self._ledgers.admins, person, txid)
            self._append(Entry(txid, "administrator", "", detail=person))
            return txid

    def add_representative(self, account: str, person: str) -> int:
        with self.transaction():
            _name(person, "person")
            self.authorise(self._actor)
            acc = self._acct(account)
            if acc.status.value == "closed":
                raise AccountClosed(f"account {account!r} is closed")
            if (account, person) in self._ledgers.reps:
                raise DuplicateAccount(f"{person!r} represents {account!r} already")
            txid = self._txid()
            self._put(self._ledgers.reps, (account, person), txid)
            self._append(Entry(txid, "representative", account, detail=person))
            return txid

    def set_controls(self, account: str, controls: Controls) -> int:
        with self.transaction():
            self.authorise(self._actor)
            self._acct(account)
            if type(controls) is not Controls:
                raise OperationRefused(f"controls must be a Controls, got {controls!r:.80}")
            for flag in ("bar_outside", "four_eyes"):
                if type(getattr(controls, flag)) is not bool:
                    raise OperationRefused(f"{flag} must be true or false, got {getattr(controls, flag)!r}")
            row = (_days(controls.trusted_delay, "trusted_delay"),
                   _days(controls.outside_delay, "outside_delay"), int(controls.bar_outside),
                   None if controls.limit is None else _qty(controls.limit, "limit"),
                   int(controls.four_eyes))
            txid = self._txid()
            self._put(self._ledgers.controls, account, row)
            self._append(Entry(txid, "controls", account, qty=row[3] or 0, detail=(
                f"trusted list delay {row[0]}, outside delay {row[1]}, "
                f"outside {'barred' if row[2] else 'allowed'}, "
                f"limit {row[3]}, four eyes {'on' if row[4] else 'off'}")))
            return txid

    def controls(self, account: str) -> Controls:
        """``account``'s controls (all off when none were set)."""
        self._acct(account)
        row = self._ledgers.controls.get(account)
        return Controls() if row is None else Controls(row[0], row[1], bool(row[2]), row[3], bool(row[4]))

    # -- the trusted account list ----------------------------------------------------------

    def propose_trusted(self, account: str, trusted: str) -> int:
        with self.transaction():
            actor = self._authorise_rep(account)
            self._acct(trusted)
            if trusted == account:
                raise SameAccount(f"{account!r} cannot trust itself")
            if (account, trusted) in self._ledgers.trusted:
                raise OperationRefused(f"{trusted!r} is on {account!r}'s trusted list already")
            txid = self._txid()
            self._put(self._ledgers.trusted, (account, trusted), (actor, None, None))
            self._append(Entry(txid, "trust_proposed", account, trusted))
            return txid

    def approve_trusted(self, account: str, trusted: str) -> int:
        with self.transaction():
            actor = self._authorise_rep(account)
            row = self._ledgers.trusted.get((account, trusted))
            if row is None or row[2] is not None:
                raise OperationRefused(f"no proposal to trust {trusted!r} awaits approval on {account!r}")
            if actor is None or actor == row[0]:
                raise NotAuthorised(f"a second representative of {account!r} must approve "
                                    f"{row[0]!r}'s proposal")
            effective = self._today() + self._control(account)[0]
            txid = self._txid()
            self._put(self._ledgers.trusted, (account, trusted), (row[0], actor, effective))
            self._append(Entry(txid, "trust_approved", account, trusted, ref=effective, approver=actor,
                               actor=row[0], detail=f"trusted from day {effective}"))
            return txid

    def remove_trusted(self, account: str, trusted: str) -> int:
        with self.transaction():
            self._authorise_rep(account)
            if (account, trusted) not in self._ledgers.trusted:
                raise OperationRefused(f"{trusted!r} is not on {account!r}'s trusted list")
            txid = self._txid()
            self._del(self._ledgers.trusted, (account, trusted))
            self._append(Entry(txid, "trust_removed", account, trusted))
            return txid

    def trusted(self, account: str) -> list[Trusted]:
        return [Trusted(a, t, *row) for (a, t), row in sorted(self._ledgers.trusted.items()) if a == account]

    def _is_trusted(self, account: str, other: str) -> bool:
        row = self._ledgers.trusted.get((account, other))
        return row is not None and row[2] is not None and row[2] <= self._today()

    # -- controlled transfers ----------------------------------------------------------------

    def _today(self) -> int:
        return self._meta.get("day", 0)

    def _control(self, account: str) -> tuple[int, int, int, int | None, int]:
        return self._ledgers.controls.get(account, (0, 0, 0, None, 0))

    def _controlled(self, sender: str) -> bool:
        """Whether transfers out of ``sender`` go through the controls (it has representatives
        or controls). Called by every transfer: two dict lookups, or a scan of the
        representatives when there are any."""
        return sender in self._ledgers.controls or (bool(self._ledgers.reps) and self._has_reps(sender))

    def _controlled_transfer(self, sender: str, receiver: str, unit: UnitType, qty: int,
                             serials: Serials | None) -> int:
        """A transfer out of a controlled account (see the module): at once, or pending."""
        actor = self._authorise_rep(sender)
        _, delay, barred, limit, four_eyes = self._control(sender)
        outside = not self._is_trusted(sender, receiver)
        if outside and barred:
            raise NotTrusted(f"{receiver!r} is not on {sender!r}'s trusted account list, and transfers "
                             "outside it are barred")
        if outside and limit is not None and qty > limit:
            raise TransferLimitExceeded(f"{qty} units outside {sender!r}'s trusted list; "
                                        f"at most {limit} a transfer")
        if not four_eyes and not (outside and delay):
            return self._move(sender, receiver, unit, qty, serials, "transfer", None, None)
        if serials is not None:
            raise OperationRefused("a transfer that waits moves the oldest units: it cannot name serials")
        free = self._free_units(sender, unit)
        if free < qty:
            raise InsufficientUnits(f"account {sender!r} has {free} unreserved {unit}; {qty} needed")
        txid = self._txid()
        state, due = ("proposed", None) if four_eyes else ("delayed", self._today() + delay)
        self._put(self._ledgers.pending, txid, (sender, receiver, str(unit), qty, actor, None, state, due,
                                                int(outside),
                                        None, None, ""))
        self._hold_for(txid, sender, unit, qty)
        said = ("awaits a second representative" if four_eyes
                else f"outside the trusted list: executes on day {due}")
        self._append(Entry(txid, "transfer_proposed", sender, receiver, str(unit), qty, ref=txid, detail=said))
        return txid

    def _hold_for(self, pid: int, account: str, unit: UnitType, qty: int) -> None:
        self._put(self._holds, -pid, (account, "units", str(unit), qty))
        self._add(self._ureserved, (account, str(unit)), qty)

    def _unhold(self, pid: int) -> None:
        if -pid in self._holds:
            self._shrink_hold(-pid, self._holds[-pid][3])

    def _move(self, sender: str, receiver: str, unit: UnitType, qty: int, serials: Serials | None, kind: str,
              pid: int | None, approver: str | None, proposer: str | None = None) -> int:
        """Move the units now and journal it as one ``kind`` row (``ref`` the pending id)."""
        self._take(sender, unit, qty, receiver, _ACTIVE, serials)
        txid = self._txid()
        self._append(Entry(txid, kind, sender, receiver, unit, qty, ref=pid, approver=approver, actor=proposer))
        return txid

    def approve_transfer(self, transfer: int) -> int:
        with self.transaction():
            row = self._waiting(transfer, ("proposed",))
            sender, receiver, unit, qty, proposer = row[0], row[1], UnitType(row[2]), row[3], row[4]
            actor = self._authorise_rep(sender)
            if actor is None or actor == proposer:
                raise NotAuthorised(f"a second representative of {sender!r} must approve "
                                    f"{proposer!r}'s transfer")
            delay = self._control(sender)[1]
            if row[8] and delay:
                due = self._today() + delay
                txid = self._txid()
                self._put(self._ledgers.pending, transfer, (*row[:5], actor, "delayed", due, *row[8:]))
                self._append(Entry(txid, "transfer_approved", sender, receiver, row[2], qty, ref=transfer,
                                   actor=proposer, approver=actor,
                                   detail=f"outside the trusted list: executes on day {due}"))
                return txid
            self._unhold(transfer)
            self._check_open(sender, receiver, unit)
            txid = self._move(sender, receiver, unit, qty, None, "transfer", transfer, actor, proposer)
            self._put(self._ledgers.pending, transfer,
                      (*row[:5], actor, "executed", row[7], row[8], txid, self._today(), ""))
            return txid

    def cancel_transfer(self, transfer: int) -> int:
        with self.transaction():
            row = self._waiting(transfer, _WAITING)
            try:
                self._authorise_rep(row[0])
            except NotAuthorised:
                if not self._ledgers.admins or self._actor not in self._ledgers.admins:
                    raise
            self._unhold(transfer)
            txid = self._txid()
            self._put(self._ledgers.pending, transfer,
                      (*row[:6], "cancelled", row[7], row[8], txid, self._today(), ""))
            self._append(Entry(txid, "transfer_cancelled", row[0], row[1], row[2], row[3], ref=transfer))
            return txid

    def _waiting(self, transfer: int, states: tuple[str, ...]) -> PendingRow:
        row = self._ledgers.pending.get(transfer) if type(transfer) is int else None
        if row is None or row[6] not in states:
            said = "does not exist" if row is None else f"is {row[6]}"
            what = "approve" if len(states) == 1 else "cancel"
            raise UnknownTransfer(f"transfer {transfer!r} {said}: nothing to {what}")
        return row

    def _check_open(self, sender: str, receiver: str, unit: UnitType) -> None:
        src = self._open(sender, "sending")
        dst = self._open(receiver, "receiving")
        if src.kind in _TERMINAL_KINDS:
            raise TerminalUnits(f"units in {src.kind} account {sender!r} never move again")
        self._may_hold(dst, unit)

    def pending_transfer(self, transfer: int) -> PendingTransfer | None:
        row = self._ledgers.pending.get(transfer) if type(transfer) is int else None
        return None if row is None else _pending(transfer, row)

    def start_day(self, since: int, day: int) -> list[PendingTransfer]:
        with self.transaction():
            if type(day) is not int or not 0 <= day <= INT64_MAX:
                raise OperationRefused(f"business day must be a non-negative integer, got {day!r}")
            if day > self._today():
                self._put(self._ledgers.days, day, self._meta["txid"] + 1)
                self._put(self._meta, "day", day)
                due = sorted(p for p, r in self._ledgers.pending.items()
                             if r[6] == "delayed" and (r[7] or 0) <= day)
                for pid in due:
                    self._execute(pid, day)
            return [_pending(p, r) for p, r in sorted(self._ledgers.pending.items())
                    if r[6] in ("executed", "failed") and r[7] is not None  # a due day: done by start_day
                    and r[10] is not None and since < r[10] <= day]

    def _execute(self, pid: int, day: int) -> None:
        """Execute delayed transfer ``pid`` on ``day``, or record why it failed (its hold released)."""
        row = self._ledgers.pending[pid]
        unit = UnitType(row[2])
        self._unhold(pid)
        try:
            with self.transaction():
                self._check_open(row[0], row[1], unit)
                txid = self._move(row[0], row[1], unit, row[3], None, "transfer", pid, row[5], row[4])
            self._put(self._ledgers.pending, pid, (*row[:6], "executed", row[7], row[8], txid, day, ""))
        except RegistryError as e:
            txid = self._txid()
            self._put(self._ledgers.pending, pid, (*row[:6], "failed", row[7], row[8], txid, day, e.code))
            self._append(Entry(txid, "transfer_failed", row[0], row[1], row[2], row[3], ref=pid, actor=row[4],
                               approver=row[5], detail=f"{e.code}: {e}"))
