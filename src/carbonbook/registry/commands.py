"""The order log's registry commands carried out on a registry: one function per command.

:func:`carry_out` runs a :class:`~carbonbook.commands.RegistryCommand` (except
``business_day``, the settler's) as the registry call it names, with its ``actor`` acting
(:meth:`~carbonbook.registry.base.Registry.acting`), and returns the detail of its
``recorded`` event; a refusal raises the registry's :class:`~carbonbook.errors.RegistryError`.
Each is one registry call (a surrender also reads the compliance status), atomic.

Who may: :data:`_ACTS_FOR` names, per command, the account field whose representatives may
give it (None: an administrator's act); the rest are checked by the registry call itself
(approving or cancelling a pending transfer, whose sender the command does not name, and
naming the first administrator). An unknown account passes the check, so it stays the
registry call's own refusal, as before actors existed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carbonbook.commands import (
    Accredit,
    AddAdministrator,
    AddRepresentative,
    Allocate,
    ApproveTransfer,
    ApproveTrusted,
    CancelTransfer,
    CarryOver,
    CorrectEmissions,
    Deposit,
    Expire,
    Issue,
    OpenAccount,
    OpenScheme,
    ProposeTrusted,
    RecordEmissions,
    RegisterProject,
    RegistryCommand,
    RemoveTrusted,
    ReportMonitoring,
    Retire,
    ReturnAllocation,
    SetAccountStatus,
    SetCap,
    SetControls,
    SetDeadline,
    SetProgramme,
    Surrender,
    Transfer,
    TrueUp,
    Verify,
)
from carbonbook.registry._allocation import said
from carbonbook.registry.base import (
    AccountKind,
    AccountStatus,
    Controls,
    PendingTransfer,
    Registry,
    Scheme,
    Serials,
)

__all__ = ["carry_out"]


def carry_out(registry: Registry, cmd: RegistryCommand) -> str:
    """Carry out ``cmd`` on ``registry``; return the detail of its ``recorded``. KeyError for a
    command class with no handler (``business_day``)."""
    handler = _HANDLERS[cmd.__class__]
    with registry.acting(cmd.actor):
        acts_for = _ACTS_FOR.get(cmd.__class__, _SELF)
        if acts_for is not _SELF:
            registry.authorise(cmd.actor, None if acts_for is None else getattr(cmd, acts_for))
        return handler(registry, cmd)


def _open_scheme(reg: Registry, c: OpenScheme) -> str:
    reg.create_scheme(Scheme(c.name, c.allowances, c.credits, c.offset_percent, c.banking, c.phases,
                             c.phase_banking, c.borrowing, c.removals, c.borrow_limit, c.offset_limits,
                             frozenset(c.excluded.items()), c.links, c.import_limit, c.control_periods))
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
                  start=c.start, project=c.project, expiry=c.expiry, project_type=c.project_type,
                  monitoring=c.monitoring)
    return f"serials {b.origin} {b.start}-{b.end}"


def _allocate(reg: Registry, c: Allocate) -> str:
    return said(reg.allocate(c.account, c.period, c.method, unit=c.unit, activity=c.activity, rate=c.rate,
                             per=c.per, base=c.base, reduction=c.reduction, origin=c.origin))


def _true_up(reg: Registry, c: TrueUp) -> str:
    return said(reg.true_up(c.account, c.period, c.production, to=c.to, origin=c.origin))


def _return_allocation(reg: Registry, c: ReturnAllocation) -> str:
    return said(reg.return_allocation(c.account, c.period, c.qty, to=c.to))


def _transfer(reg: Registry, c: Transfer) -> str:
    txid = reg.transfer(c.sender, c.receiver, c.unit, c.qty)
    return _waits(reg.pending_transfer(txid))


def _waits(p: PendingTransfer | None) -> str:
    """What a transfer that waits waits for ("" for one done at once)."""
    if p is None or p.state not in ("proposed", "delayed"):
        return ""
    why = ("a second representative's approval" if p.state == "proposed"
           else f"day {p.due} (outside the trusted list)")
    return f"transfer {p.id} pending: {p.qty} {p.unit} {p.sender} -> {p.receiver} waits for {why}"


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
    txid = reg.retire(c.account, c.unit, c.qty, to=c.to, beneficiary=c.beneficiary, purpose=c.purpose)
    cert = reg.certificate(txid)
    if cert is None or (c.beneficiary is None and c.purpose is None):
        return ""  # as before certificates named them (the certificate is still there)
    said = f"certificate {cert.id}: {cert.qty} {cert.unit} " + ", ".join(
        f"{s.origin} {s.start}-{s.end}" for s in cert.serials)
    return said + "".join(f", {k} {v}" for k, v in (("for", cert.beneficiary), ("purpose:", cert.purpose)) if v)


def _carry_over(reg: Registry, c: CarryOver) -> str:
    return f"{reg.carry_over(c.account, c.unit, c.period)} units carried over"


def _expire(reg: Registry, c: Expire) -> str:
    return f"{reg.expire(c.unit, c.period)} units expired"


def _deadline(reg: Registry, c: SetDeadline) -> str:
    reg.set_deadline(c.scheme, c.period, c.day, penalty=c.penalty, currency=c.currency, multiple=c.multiple,
                     report=c.report)
    report = "" if c.report is None else f"report by day {c.report}, "
    return f"{c.scheme} {c.period}: {report}surrender by day {c.day}"


def _administrator(reg: Registry, c: AddAdministrator) -> str:
    reg.add_administrator(c.person)
    return f"{c.person} is an administrator"


def _representative(reg: Registry, c: AddRepresentative) -> str:
    reg.add_representative(c.account, c.person)
    return f"{c.person} represents {c.account}"


def _controls(reg: Registry, c: SetControls) -> str:
    reg.set_controls(c.account, Controls(c.trusted_delay, c.outside_delay, c.bar_outside, c.limit, c.four_eyes))
    return ""


def _trust(reg: Registry, c: ProposeTrusted) -> str:
    reg.propose_trusted(c.account, c.trusted)
    return f"{c.trusted} proposed for {c.account}'s trusted list: awaits a second representative"


def _trust_approval(reg: Registry, c: ApproveTrusted) -> str:
    reg.approve_trusted(c.account, c.trusted)
    day = next(t.effective for t in reg.trusted(c.account) if t.trusted == c.trusted)
    return f"{c.trusted} on {c.account}'s trusted list from day {day}"


def _distrust(reg: Registry, c: RemoveTrusted) -> str:
    reg.remove_trusted(c.account, c.trusted)
    return f"{c.trusted} off {c.account}'s trusted list"


def _transfer_approval(reg: Registry, c: ApproveTransfer) -> str:
    reg.approve_transfer(c.transfer)
    p = reg.pending_transfer(c.transfer)
    assert p is not None
    return _waits(p) or f"transfer {p.id} executed: {p.qty} {p.unit} {p.sender} -> {p.receiver}"


def _transfer_cancellation(reg: Registry, c: CancelTransfer) -> str:
    reg.cancel_transfer(c.transfer)
    return f"transfer {c.transfer} cancelled: its units are released"


def _programme(reg: Registry, c: SetProgramme) -> str:
    reg.set_programme(c.name, dict(c.methodologies))
    return f"{c.name}: {len(c.methodologies)} methodologies"


def _accredit(reg: Registry, c: Accredit) -> str:
    reg.accredit(c.programme, c.verifier)
    return f"{c.verifier} verifies for {c.programme}"


def _project(reg: Registry, c: RegisterProject) -> str:
    reg.register_project(c.project, c.programme, c.methodology, c.account)
    p = reg.project(c.project)
    return f"{p.id}: {p.programme} {p.methodology} ({p.project_type})"


def _monitoring(reg: Registry, c: ReportMonitoring) -> str:
    reg.report_monitoring(c.project, c.period, c.reductions)
    return f"{c.project} {c.period}: {c.reductions} reported"


def _verify(reg: Registry, c: Verify) -> str:
    reg.verify(c.project, c.period, c.verified)
    return f"{c.project} {c.period}: {c.verified} verified"


_HANDLERS: dict[type, Callable[[Registry, Any], str]] = {
    OpenScheme: _open_scheme, SetCap: _set_cap, OpenAccount: _open_account, SetAccountStatus: _set_status,
    Issue: _issue, Allocate: _allocate, TrueUp: _true_up, ReturnAllocation: _return_allocation,
    Transfer: _transfer, Deposit: _deposit, RecordEmissions: _emissions,
    Surrender: _surrender, Retire: _retire, CarryOver: _carry_over, Expire: _expire,
    SetDeadline: _deadline, CorrectEmissions: _correct_emissions, AddAdministrator: _administrator,
    AddRepresentative: _representative, SetControls: _controls, ProposeTrusted: _trust,
    ApproveTrusted: _trust_approval, RemoveTrusted: _distrust, ApproveTransfer: _transfer_approval,
    CancelTransfer: _transfer_cancellation, SetProgramme: _programme, Accredit: _accredit,
    RegisterProject: _project, ReportMonitoring: _monitoring, Verify: _verify,
}

_SELF = "self"
_ACTS_FOR: dict[type, str | None] = {
    OpenScheme: None, SetCap: None, OpenAccount: None, SetAccountStatus: None, Issue: None, Deposit: None,
    RecordEmissions: None, CorrectEmissions: None, Expire: None, SetDeadline: None, AddRepresentative: None,
    SetControls: None, Transfer: "sender", Surrender: "account", Retire: "account", CarryOver: "account",
    ProposeTrusted: "account", ApproveTrusted: "account", RemoveTrusted: "account", SetProgramme: None,
    Accredit: None, RegisterProject: None, Allocate: None, TrueUp: None, ReturnAllocation: "account",
}
"""Per command, the field naming the account whose representatives may give it (None: an
administrator's act); a command missing here is checked by its registry call (``_SELF``)."""
