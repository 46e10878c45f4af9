"""The order log's registry commands carried out on a registry: one function per command.

:func:`carry_out` runs a :class:`~carbonbook.commands.RegistryCommand` (except
``business_day``, the settler's) as the registry call it names and returns the detail of its
``recorded`` event; a refusal raises the registry's :class:`~carbonbook.errors.RegistryError`.
Each is one registry call (a surrender also reads the compliance status), atomic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carbonbook.commands import (
    Allocate,
    CarryOver,
    CorrectEmissions,
    Deposit,
    Expire,
    Issue,
    OpenAccount,
    OpenScheme,
    RecordEmissions,
    RegistryCommand,
    Retire,
    ReturnAllocation,
    SetAccountStatus,
    SetCap,
    SetDeadline,
    Surrender,
    Transfer,
    TrueUp,
)
from carbonbook.registry._allocation import said
from carbonbook.registry.base import AccountKind, AccountStatus, Registry, Scheme, Serials

__all__ = ["carry_out"]


def carry_out(registry: Registry, cmd: RegistryCommand) -> str:
    """Carry out ``cmd`` on ``registry``; return the detail of its ``recorded``. KeyError for a
    command class with no handler (``business_day``)."""
    return _HANDLERS[cmd.__class__](registry, cmd)


def _open_scheme(reg: Registry, c: OpenScheme) -> str:
    reg.create_scheme(Scheme(c.name, c.allowances, c.credits, c.offset_percent, c.banking, c.phases,
                             c.phase_banking, c.borrowing, c.removals, c.borrow_limit, c.offset_limits,
                             frozenset(c.excluded.items()), c.links, c.import_limit))
    return ""


def _set_cap(reg: Registry, c: SetCap) -> str:
    reg.set_cap(c.scheme, c.period, c.cap)
    return ""


def _open_account(reg: Registry, c: OpenAccount) -> str:
    reg.open_account(c.account, AccountKind(c.kind), units=c.units, scheme=c.scheme)
    return ""


def _set_status(reg: Registry, c: SetAccountStatus) -> str:
    reg.set_status(c.account, AccountStatus(c.status))
    return ""


def _issue(reg: Registry, c: Issue) -> str:
    b = reg.issue(c.account, c.unit, c.qty, scheme=c.scheme, period=c.period, origin=c.origin,
                  start=c.start, project=c.project, expiry=c.expiry, project_type=c.project_type)
    return f"serials {b.origin} {b.start}-{b.end}"


def _allocate(reg: Registry, c: Allocate) -> str:
    return said(reg.allocate(c.account, c.period, c.method, unit=c.unit, activity=c.activity, rate=c.rate,
                             per=c.per, base=c.base, reduction=c.reduction, origin=c.origin))


def _true_up(reg: Registry, c: TrueUp) -> str:
    return said(reg.true_up(c.account, c.period, c.production, to=c.to, origin=c.origin))


def _return_allocation(reg: Registry, c: ReturnAllocation) -> str:
    return said(reg.return_allocation(c.account, c.period, c.qty, to=c.to))


def _transfer(reg: Registry, c: Transfer) -> str:
    reg.transfer(c.sender, c.receiver, c.unit, c.qty)
    return ""


def _deposit(reg: Registry, c: Deposit) -> str:
    reg.deposit(c.account, c.currency, c.amount)
    return ""


def _emissions(reg: Registry, c: RecordEmissions) -> str:
    reg.record_emissions(c.account, c.period, c.tonnes)
    return ""


def _correct_emissions(reg: Registry, c: CorrectEmissions) -> str:
    before = reg.compliance(c.account, c.period).verified
    reg.correct_emissions(c.account, c.period, c.tonnes)
    comp = reg.compliance(c.account, c.period)
    return (f"{c.period} emissions corrected from {before} to {c.tonnes}: {comp.surrendered} of "
            f"{comp.obligation} surrendered, status {comp.status}")


def _surrender(reg: Registry, c: Surrender) -> str:
    serials = None if c.start is None and c.end is None else Serials(c.origin, c.start, c.end)  # type: ignore[arg-type]
    reg.surrender(c.account, c.period, c.unit, c.qty, to=c.to, vintage=c.vintage, serials=serials)
    comp = reg.compliance(c.account, c.period)
    said = f"{comp.surrendered} of {comp.obligation} surrendered for {c.period}: status {comp.status}"
    if comp.borrowed:
        said += f", {comp.borrowed} borrowed from {c.period + 1}"
    if comp.verified is not None and comp.surrendered > comp.obligation:
        surplus = comp.surrendered - comp.obligation
        said += f", {surplus} above the obligation (spent; not carried to a later period)"
    return said


def _retire(reg: Registry, c: Retire) -> str:
    reg.retire(c.account, c.unit, c.qty, to=c.to)
    return ""


def _carry_over(reg: Registry, c: CarryOver) -> str:
    return f"{reg.carry_over(c.account, c.unit, c.period)} units carried over"


def _expire(reg: Registry, c: Expire) -> str:
    return f"{reg.expire(c.unit, c.period)} units expired"


def _deadline(reg: Registry, c: SetDeadline) -> str:
    reg.set_deadline(c.scheme, c.period, c.day, penalty=c.penalty, currency=c.currency, multiple=c.multiple)
    return f"{c.scheme} {c.period}: surrender by day {c.day}"


_HANDLERS: dict[type, Callable[[Registry, Any], str]] = {
    OpenScheme: _open_scheme, SetCap: _set_cap, OpenAccount: _open_account, SetAccountStatus: _set_status,
    Issue: _issue, Allocate: _allocate, TrueUp: _true_up, ReturnAllocation: _return_allocation,
    Transfer: _transfer, Deposit: _deposit, RecordEmissions: _emissions,
    Surrender: _surrender, Retire: _retire, CarryOver: _carry_over, Expire: _expire,
    SetDeadline: _deadline, CorrectEmissions: _correct_emissions,
}
