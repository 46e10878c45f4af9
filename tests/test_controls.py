"""Access and transfer controls (issue 15 item 1; DOMAIN.md 6) through the order log, on every backend.

Every scenario starts from ``SETUP`` (events and txids 1..12): administrator ``admin``;
scheme JVETS; accounts tepco (operator; representatives alice and bob; trusted-list delay
4 days, transfers outside the list wait 1 day, at most 600 units each), mitsui
(representative carol) and broker (no representatives: the thief's account); tepco holds
1000 JPA; instrument ``SYM``. The attack tests follow the 2010-11 thefts: a stolen
representative's transfer outside the trusted list waits and is stopped.
"""

from __future__ import annotations

from typing import Any

import pytest

from carbonbook import Command, Event, ListInstrument, NewOrder, Rejected, Side, UnitType
from carbonbook.commands import (
    AddAdministrator,
    AddRepresentative,
    ApproveTransfer,
    ApproveTrusted,
    BusinessDay,
    CancelTransfer,
    Expire,
    Issue,
    OpenAccount,
    OpenScheme,
    ProposeTrusted,
    RemoveTrusted,
    Retire,
    SetAccountStatus,
    SetCap,
    SetControls,
    Transfer,
)
from carbonbook.errors import NotAuthorised
from carbonbook.events import Recorded
from carbonbook.registry import Controls, MemoryRegistry, Registry
from carbonbook.venue import Venue
from conftest import RegistryFactory, Reopen

JPA = UnitType.JPA
SYM = "JPA-2010"
SETUP: list[Command] = [
    AddAdministrator(person="admin"),
    OpenScheme(name="JVETS", allowances=frozenset({JPA}), actor="admin"),
    SetCap(scheme="JVETS", period=2010, cap=10_000, actor="admin"),
    OpenAccount(account="tepco", scheme="JVETS", actor="admin"),
    OpenAccount(account="mitsui", actor="admin"),
    OpenAccount(account="broker", actor="admin"),
    AddRepresentative(account="tepco", person="alice", actor="admin"),
    AddRepresentative(account="tepco", person="bob", actor="admin"),
    AddRepresentative(account="mitsui", person="carol", actor="admin"),
    Issue(account="tepco", unit=JPA, qty=1000, scheme="JVETS", period=2010, actor="admin"),
    SetControls(account="tepco", trusted_delay=4, outside_delay=1, limit=600, actor="admin"),
    OpenAccount(account="retired", kind="retirement", actor="admin"),
    ListInstrument(SYM, JPA),
]
OUTSIDE = "(outside the trusted list)"
SECOND = "a second representative's approval"
N = len(SETUP)  # the seq of SETUP's last event; txids run 1..N-1


def setup(reg: Registry) -> Venue:
    venue = Venue(reg)
    events = venue.apply_all(SETUP)
    assert not [e for e in events if isinstance(e, Rejected)], events
    return venue


def seen(reg: Registry) -> Any:
    """What a refusal must leave unchanged."""
    return (list(reg.journal()), reg.blocks(), [(a, reg.holding(a, JPA), reg.available(a, JPA))
                                                for a in ("tepco", "mitsui", "broker")],
            [reg.trusted(a) for a in ("tepco", "mitsui")], reg.last_txid)


def move(sender: str, receiver: str, qty: int, actor: str) -> Transfer:
    return Transfer(sender=sender, receiver=receiver, unit=JPA, qty=qty, actor=actor)


def held(reg: Registry) -> tuple[int, int, int]:
    """tepco's holding and unreserved units, and broker's holding."""
    return reg.holding("tepco", JPA), reg.available("tepco", JPA), reg.holding("broker", JPA)


def refused(venue: Venue, cmd: Command, reason: str) -> None:
    """``cmd`` is rejected with ``reason`` and changes nothing."""
    before = seen(venue.registry)
    (event,) = venue.apply(cmd)
    assert isinstance(event, Rejected) and event.reason == reason, event
    assert event.detail
    assert seen(venue.registry) == before
    venue.registry.check()


def rec(event: Event) -> tuple[str, int | None, str]:
    assert isinstance(event, Recorded), event
    return event.command, event.txid, event.detail


@pytest.fixture
def fresh(backend: tuple[RegistryFactory, Reopen]) -> Registry:
    return backend[0]()


def test_only_representatives_and_administrators_act(fresh: Registry) -> None:
    venue = setup(fresh)
    gift = {"sender": "tepco", "receiver": "mitsui", "unit": JPA, "qty": 10}
    refused(venue, Transfer(**gift, actor="mallory"), "not_authorised")
    refused(venue, Transfer(**gift), "not_authorised")  # no actor: not a representative either
    refused(venue, Transfer(**gift, actor="carol"), "not_authorised")  # mitsui's, not tepco's
    refused(venue, Transfer(**gift, actor="admin"), "not_authorised")  # administrators move nobody's units
    refused(venue, Issue(account="tepco", unit=JPA, qty=1, scheme="JVETS", period=2010, actor="alice"),
            "not_authorised")
    refused(venue, AddAdministrator(person="mallory", actor="alice"), "not_authorised")
    refused(venue, AddRepresentative(account="tepco", person="mallory"), "not_authorised")
    refused(venue, SetControls(account="tepco", actor="alice"), "not_authorised")
    refused(venue, Retire(account="tepco", unit=JPA, qty=1, to="retired", actor="carol"), "not_authorised")
    assert rec(venue.apply(move("tepco", "broker", 5, "bob"))[0]) == (
        "transfer", N, f"transfer {N} pending: 5 JPA tepco -> broker waits for day 1 {OUTSIDE}")
    assert rec(venue.apply(AddAdministrator(person="admin2", actor="admin"))[0]) == (
        "administrator", N + 1, "admin2 is an administrator")
    # an account without representatives is anyone's, as before actors existed
    # (refused for want of units, not of authority)
    refused(venue, move("broker", "mitsui", 5, "x"), "insufficient_units")
    journal = list(fresh.journal())
    assert [(e.kind, e.actor, e.approver, e.day) for e in journal[-2:]] == [
        ("transfer_proposed", "bob", None, 0), ("administrator", "admin", None, 0)]
    assert journal[0].actor is None  # the first administrator was named by no one in particular


def test_stolen_representative_transfer_outside_the_list_waits_and_is_stopped(
        backend: tuple[RegistryFactory, Reopen]) -> None:
    """DOMAIN.md 6: the thief logs in as alice and sends 500 JPA to an account of theirs; the
    transfer waits a business day, its units held; bob sees it and cancels it."""
    reg = backend[0]()
    venue = setup(reg)
    assert rec(venue.apply(BusinessDay(day=1))[0]) == ("business_day", None, "day 1: 0 trades due")
    theft = move("tepco", "broker", 500, "alice")
    assert rec(venue.apply(theft)[0]) == (
        "transfer", N, f"transfer {N} pending: 500 JPA tepco -> broker waits for day 2 {OUTSIDE}")
    assert held(reg) == (1000, 500, 0)
    # the held units can be neither sold nor moved again
    (e,) = venue.apply(NewOrder(1, "tepco", SYM, Side.SELL, 501, price=1000))
    assert isinstance(e, Rejected) and e.reason == "insufficient_units"
    refused(venue, move("tepco", "mitsui", 501, "bob"), "insufficient_units")
    refused(venue, CancelTransfer(transfer=N, actor="mallory"), "not_authorised")
    assert rec(venue.apply(CancelTransfer(transfer=N, actor="bob"))[0]) == (
        "transfer_cancellation", N + 1, f"transfer {N} cancelled: its units are released")
    assert [rec(e) for e in venue.apply(BusinessDay(day=2))] == [("business_day", None, "day 2: 0 trades due")]
    assert held(reg) == (1000, 1000, 0)
    refused(venue, CancelTransfer(transfer=N, actor="bob"), "unknown_transfer")  # once cancelled, done
    p = reg.pending_transfer(N)
    assert p is not None and (p.state, p.proposer, p.done_txid, p.done_day) == ("cancelled", "alice", N + 1, 1)
    # not stopped, it executes when its day starts, and says so
    assert rec(venue.apply(theft)[0])[1] == N + 2
    assert [rec(e) for e in venue.apply(BusinessDay(day=3))] == [
        ("business_day", None, "day 3: 0 trades due"),
        ("transfer_executed", N + 3, f"transfer {N + 2}: 500 JPA tepco -> broker")]
    assert held(reg) == (500, 500, 500)
    assert [(e.kind, e.actor, e.day) for e in reg.journal(N + 1)] == [
        ("transfer_proposed", "alice", 2), ("transfer", "alice", 3)]
    reg.check()


def test_trusted_list_needs_a_second_representative_and_counts_after_its_delay(fresh: Registry) -> None:
    venue = setup(fresh)
    venue.apply(BusinessDay(day=1))
    assert rec(venue.apply(ProposeTrusted(account="tepco", trusted="mitsui", actor="alice"))[0]) == (
        "trust", N, "mitsui proposed for tepco's trusted list: awaits a second representative")
    refused(venue, ApproveTrusted(account="tepco", trusted="mitsui", actor="alice"), "not_authorised")
    refused(venue, ApproveTrusted(account="tepco", trusted="mitsui", actor="carol"), "not_authorised")
    assert rec(venue.apply(ApproveTrusted(account="tepco", trusted="mitsui", actor="bob"))[0]) == (
        "trust_approval", N + 1, "mitsui on tepco's trusted list from day 5")
    refused(venue, ApproveTrusted(account="tepco", trusted="mitsui", actor="bob"), "refused")
    venue.apply(BusinessDay(day=4))  # not yet trusted: 700 is above the limit outside the list
    refused(venue, move("tepco", "mitsui", 700, "alice"), "limit_exceeded")
    venue.apply(BusinessDay(day=5))  # trusted: at once, and no limit
    assert rec(venue.apply(move("tepco", "mitsui", 700, "alice"))[0]) == (
        "transfer", N + 2, "")
    assert fresh.holding("mitsui", JPA) == 700
    assert [(t.trusted, t.proposer, t.approver, t.effective) for t in fresh.trusted("tepco")] == [
        ("mitsui", "alice", "bob", 5)]
    assert rec(venue.apply(RemoveTrusted(account="tepco", trusted="mitsui", actor="bob"))[0]) == (
        "distrust", N + 3, "mitsui off tepco's trusted list")
    assert rec(venue.apply(move("tepco", "mitsui", 1, "alice"))[0])[2] == (
        f"transfer {N + 4} pending: 1 JPA tepco -> mitsui waits for day 6 (outside the trusted list)")
    fresh.check()


def test_operator_accounts_may_bar_transfers_outside_the_list(fresh: Registry) -> None:
    venue = setup(fresh)
    venue.apply(SetControls(account="tepco", bar_outside=True, actor="admin"))
    refused(venue, move("tepco", "broker", 1, "alice"), "not_trusted")
    venue.apply(ProposeTrusted(account="tepco", trusted="mitsui", actor="alice"))
    venue.apply(ApproveTrusted(account="tepco", trusted="mitsui", actor="bob"))  # trusted_delay 0 now
    assert rec(venue.apply(move("tepco", "mitsui", 1, "alice"))[0])[2] == ""


def test_four_eyes_transfer_is_proposed_then_approved_by_another(fresh: Registry) -> None:
    venue = setup(fresh)
    venue.apply(SetControls(account="tepco", four_eyes=True, outside_delay=2, actor="admin"))  # txid N
    venue.apply(ProposeTrusted(account="tepco", trusted="mitsui", actor="alice"))
    venue.apply(ApproveTrusted(account="tepco", trusted="mitsui", actor="bob"))  # N + 2
    t = N + 3
    assert rec(venue.apply(move("tepco", "mitsui", 300, "alice"))[0]) == (
        "transfer", t, f"transfer {t} pending: 300 JPA tepco -> mitsui waits for {SECOND}")
    assert fresh.available("tepco", JPA) == 700
    refused(venue, ApproveTransfer(transfer=t, actor="alice"), "not_authorised")
    refused(venue, ApproveTransfer(transfer=t, actor="carol"), "not_authorised")
    assert rec(venue.apply(ApproveTransfer(transfer=t, actor="bob"))[0]) == (
        "transfer_approval", t + 1, f"transfer {t} executed: 300 JPA tepco -> mitsui")
    assert (fresh.holding("tepco", JPA), fresh.available("tepco", JPA), fresh.holding("mitsui", JPA)) == (
        700, 700, 300)
    (e,) = [e for e in fresh.journal(t) if e.kind == "transfer"]
    assert (e.actor, e.approver, e.ref) == ("alice", "bob", t)
    refused(venue, ApproveTransfer(transfer=t, actor="bob"), "unknown_transfer")
    # outside the list, the approval starts the delay
    assert rec(venue.apply(move("tepco", "broker", 100, "bob"))[0])[1] == t + 2
    assert rec(venue.apply(ApproveTransfer(transfer=t + 2, actor="alice"))[0]) == (
        "transfer_approval", t + 3,
        f"transfer {t + 2} pending: 100 JPA tepco -> broker waits for day 2 (outside the trusted list)")
    assert [rec(e) for e in venue.apply(BusinessDay(day=1))] == [("business_day", None, "day 1: 0 trades due")]
    assert [rec(e) for e in venue.apply(BusinessDay(day=2))] == [
        ("business_day", None, "day 2: 0 trades due"),
        ("transfer_executed", t + 4, f"transfer {t + 2}: 100 JPA tepco -> broker")]
    assert fresh.holding("broker", JPA) == 100
    fresh.check()


def test_a_pending_transfer_whose_units_or_receiver_are_gone_fails_on_its_day(fresh: Registry) -> None:
    venue = setup(fresh)
    venue.apply(move("tepco", "broker", 100, "alice"))  # N
    venue.apply(SetAccountStatus(account="broker", status="blocked", actor="admin"))
    assert [rec(e) for e in venue.apply(BusinessDay(day=1))] == [
        ("business_day", None, "day 1: 0 trades due"),
        ("transfer_failed", N + 2, f"transfer {N}: 100 JPA tepco -> broker failed: account_blocked")]
    assert (fresh.holding("tepco", JPA), fresh.available("tepco", JPA)) == (1000, 1000)
    venue.apply(SetAccountStatus(account="broker", status="open", actor="admin"))
    venue.apply(move("tepco", "broker", 100, "alice"))  # N + 4
    venue.apply(Expire(unit=JPA, period=2010, actor="admin"))  # its held units die too
    events = venue.apply(BusinessDay(day=2))
    assert rec(events[1]) == ("transfer_failed", N + 6, f"transfer {N + 4}: 100 JPA tepco -> broker failed: "
                                                        "insufficient_units")
    fresh.check()


def test_bad_control_commands_change_nothing(fresh: Registry) -> None:
    venue = setup(fresh)
    refused(venue, ApproveTransfer(transfer=999, actor="bob"), "unknown_transfer")
    refused(venue, CancelTransfer(transfer=-1, actor="bob"), "unknown_transfer")
    refused(venue, SetControls(account="tepco", outside_delay=-1, actor="admin"), "refused")
    refused(venue, SetControls(account="tepco", trusted_delay=10**6, actor="admin"), "refused")
    refused(venue, SetControls(account="tepco", limit=0, actor="admin"), "bad_qty")
    refused(venue, SetControls(account="nobody", actor="admin"), "unknown_account")
    refused(venue, ProposeTrusted(account="tepco", trusted="tepco", actor="alice"), "same_account")
    refused(venue, ProposeTrusted(account="tepco", trusted="nobody", actor="alice"), "unknown_account")
    refused(venue, RemoveTrusted(account="tepco", trusted="mitsui", actor="alice"), "refused")
    refused(venue, AddRepresentative(account="nobody", person="x", actor="admin"), "unknown_account")
    refused(venue, AddRepresentative(account="tepco", person="alice", actor="admin"), "duplicate_account")
    refused(venue, AddAdministrator(person="admin", actor="admin"), "duplicate_account")
    refused(venue, move("tepco", "broker", 601, "alice"), "limit_exceeded")
    refused(venue, move("tepco", "broker", 0, "alice"), "bad_qty")
    refused(venue, move("tepco", "tepco", 1, "alice"), "same_account")
    refused(venue, move("tepco", "broker", 1, "al\x00ice"), "malformed")


def test_controls_replay_into_the_same_and_a_fresh_registry(backend: tuple[RegistryFactory, Reopen]) -> None:
    fresh, reopen = backend
    log: list[Command] = [*SETUP,
                          move("tepco", "broker", 400, "alice"),
                          SetControls(account="tepco", four_eyes=True, actor="admin"),
                          move("tepco", "mitsui", 100, "bob"),
                          BusinessDay(day=1),
                          ApproveTransfer(transfer=N + 2, actor="alice"),
                          ProposeTrusted(account="tepco", trusted="mitsui", actor="alice"),
                          ApproveTrusted(account="tepco", trusted="mitsui", actor="bob"),
                          BusinessDay(day=6),
                          move("mitsui", "broker", 50, "carol")]
    reg = fresh()
    first = Venue(reg).apply_all(log)
    assert not [e for e in first if isinstance(e, Rejected)]
    state = seen(reg)
    again = reopen(reg)
    assert Venue(again).apply_all(log) == first
    assert seen(again) == state
    other = fresh()
    one_by_one = Venue(other)
    assert [e for cmd in log for e in one_by_one.apply(cmd)] == first
    assert seen(other) == state


def test_library_transfers_out_of_a_controlled_account_need_its_representative() -> None:
    reg = MemoryRegistry()
    setup(reg)
    with pytest.raises(NotAuthorised):
        reg.transfer("tepco", "mitsui", JPA, 1)
    with reg.acting("bob"):
        txid = reg.transfer("tepco", "mitsui", JPA, 1)
    assert reg.pending_transfer(txid) is not None
    assert reg.controls("tepco") == Controls(trusted_delay=4, outside_delay=1, limit=600)
    assert reg.controls("mitsui") == Controls()
