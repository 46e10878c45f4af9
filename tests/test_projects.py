"""Crediting programmes, projects and verification (issue 15 item 3) through the order log, on every
backend: the seed's J-VER flow (positive-list methodology, registered project, monitoring report,
third-party verification, issuance of what was verified) and the attacks DOMAIN.md 6 and the
issue name: an unlisted methodology, a compliance scheme minting J-VER, issuance beyond the
verified reduction or twice for one monitoring period."""

from __future__ import annotations

from typing import Any

import pytest

from carbonbook import Command, Rejected, UnitType
from carbonbook.commands import (
    Accredit,
    AddAdministrator,
    AddRepresentative,
    Issue,
    OpenAccount,
    OpenScheme,
    RegisterProject,
    ReportMonitoring,
    SetCap,
    SetProgramme,
    Verify,
)
from carbonbook.events import Recorded
from carbonbook.registry import Project, Registry
from carbonbook.registry._projects import METHODOLOGIES
from carbonbook.venue import Venue
from conftest import RegistryFactory, Reopen

JVER, JPA, CER = UnitType.JVER, UnitType.JPA, UnitType.CER
FOREST = "JVER-R002-shimokawa-forest"
SETUP: list[Command] = [
    AddAdministrator(person="admin"),
    OpenScheme(name="JVETS", allowances=frozenset({JPA}), credits=frozenset({JVER, CER}), offset_percent=10,
               actor="admin"),
    OpenScheme(name="J-VER", allowances=frozenset({JVER}), actor="admin"),
    OpenScheme(name="CDM", allowances=frozenset({CER}), actor="admin"),
    SetCap(scheme="J-VER", period=2010, cap=100_000, actor="admin"),
    SetCap(scheme="JVETS", period=2010, cap=100_000, actor="admin"),
    SetCap(scheme="CDM", period=2008, cap=100_000, actor="admin"),
    SetProgramme(name="J-VER", methodologies=METHODOLOGIES["J-VER"], actor="admin"),
    SetProgramme(name="CDM", methodologies=METHODOLOGIES["CDM"], actor="admin"),
    Accredit(programme="J-VER", verifier="jqa", actor="admin"),
    OpenAccount(account="sumitomo-forestry", actor="admin"),
    AddRepresentative(account="sumitomo-forestry", person="sf-rep", actor="admin"),
    RegisterProject(project=FOREST, programme="J-VER", methodology="R002", account="sumitomo-forestry",
                    actor="admin"),
]
N = len(SETUP)  # the seq of SETUP's last event and its last txid


def issue(qty: int, monitoring: int | None = 2010, **kw: Any) -> Issue:
    return Issue(account="sumitomo-forestry", unit=JVER, qty=qty, scheme=kw.pop("scheme", "J-VER"), period=2010,
                 project=kw.pop("project", FOREST), monitoring=monitoring, actor="admin", **kw)


def outcome(venue: Venue, cmd: Command) -> tuple[str, str]:
    (e,) = venue.apply(cmd)
    if isinstance(e, Rejected):
        return "rejected", e.reason
    assert isinstance(e, Recorded)
    return e.command, e.detail


def seen(reg: Registry) -> Any:
    return list(reg.journal()), reg.blocks(), reg.last_txid


@pytest.fixture
def venue(backend: tuple[RegistryFactory, Reopen]) -> Venue:
    v = Venue(backend[0]())
    events = v.apply_all(SETUP)
    assert not [e for e in events if isinstance(e, Rejected)], events
    return v


def test_credits_are_issued_for_what_was_verified_once(venue: Venue) -> None:
    reg = venue.registry
    assert outcome(venue, issue(1, None)) == ("rejected", "refused")  # no monitoring period named
    assert outcome(venue, issue(1)) == ("rejected", "exceeds_verified")  # nothing verified yet
    assert outcome(venue, ReportMonitoring(project=FOREST, period=2010, reductions=1000, actor="sf-rep")) == (
        "monitoring_report", f"{FOREST} 2010: 1000 reported")
    assert outcome(venue, Verify(project=FOREST, period=2010, verified=900, actor="mallory")) == (
        "rejected", "not_authorised")
    assert outcome(venue, Verify(project=FOREST, period=2010, verified=1001, actor="jqa")) == (
        "rejected", "exceeds_verified")
    assert outcome(venue, Verify(project=FOREST, period=2010, verified=900, actor="jqa")) == (
        "verification", f"{FOREST} 2010: 900 verified")
    before = seen(reg)
    assert outcome(venue, issue(901)) == ("rejected", "exceeds_verified")  # beyond the verified reduction
    assert seen(reg) == before
    assert outcome(venue, issue(900)) == ("issue", "serials JP 1-900")
    assert outcome(venue, issue(1)) == ("rejected", "already_issued")  # never twice for one period
    (block,) = reg.blocks("sumitomo-forestry")
    assert (block.scheme, block.project, block.qty) == ("J-VER", FOREST, 900)
    assert reg.project(block.project) == Project(FOREST, "J-VER", "R002", "sustainable forest management",
                                                 "sumitomo-forestry")
    (e,) = [e for e in reg.journal() if e.kind == "verification"]
    assert (e.actor, e.qty, e.ref, e.detail) == ("jqa", 900, 2010, FOREST)
    reg.check()


def test_unlisted_methodologies_and_compliance_schemes_mint_nothing(venue: Venue) -> None:
    reg = venue.registry
    before = seen(reg)
    unlisted = "X999-not-on-positive-list"
    assert outcome(venue, RegisterProject(project="X", programme="J-VER", methodology=unlisted,
                                          account="sumitomo-forestry", actor="admin")) == (
        "rejected", "unlisted_methodology")
    # a compliance scheme mints no J-VER
    assert outcome(venue, issue(10, None, scheme="JVETS")) == ("rejected", "unit_not_allowed")
    assert outcome(venue, issue(10, project="unregistered")) == ("rejected", "unknown_project")
    assert outcome(venue, RegisterProject(project="HFC", programme="JVETS", methodology="AM0001",
                                          account="sumitomo-forestry", actor="admin")) == (
        "rejected", "refused")  # JVETS is no crediting programme
    assert seen(reg) == before
    assert outcome(venue, RegisterProject(project="CDM-0001-hfc23", programme="CDM", methodology="AM0001",
                                          account="sumitomo-forestry", actor="admin")) == (
        "project", "CDM-0001-hfc23: CDM AM0001 (HFC-23)")
    assert outcome(venue, RegisterProject(project="CDM-0002", programme="CDM", methodology="R002",
                                          account="sumitomo-forestry", actor="admin")) == (
        "rejected", "unlisted_methodology")  # J-VER's, not on CDM's list


@pytest.mark.parametrize(("cmd", "reason"), [
    (SetProgramme(name="J-VER", methodologies={"E001": "x"}, actor="admin"), "refused"),  # has one
    (SetProgramme(name="nowhere", methodologies={"E001": "x"}, actor="admin"), "unknown_scheme"),
    (SetProgramme(name="JVETS", methodologies={}, actor="admin"), "refused"),
    (SetProgramme(name="JVETS", methodologies={"E001": "x"}, actor="sf-rep"), "not_authorised"),
    (Accredit(programme="J-VER", verifier="jqa", actor="admin"), "duplicate_account"),
    (Accredit(programme="JVETS", verifier="jqa", actor="admin"), "refused"),  # not a programme
    (RegisterProject(project=FOREST, programme="J-VER", methodology="R002", account="sumitomo-forestry",
                     actor="admin"), "refused"),  # registered already
    (RegisterProject(project="P", programme="J-VER", methodology="R002", account="nobody", actor="admin"),
     "unknown_account"),
    (ReportMonitoring(project="nobody", period=2010, reductions=1, actor="sf-rep"), "unknown_project"),
    (ReportMonitoring(project=FOREST, period=2010, reductions=-1, actor="sf-rep"), "refused"),
    (ReportMonitoring(project=FOREST, period=2010, reductions=1, actor="mallory"), "not_authorised"),
    (Verify(project=FOREST, period=2011, verified=1, actor="jqa"), "refused"),  # nothing reported
    (Verify(project=FOREST, period=2010, verified=1, actor=None), "not_authorised"),
])
def test_bad_programme_input_changes_nothing(venue: Venue, cmd: Command, reason: str) -> None:
    before = seen(venue.registry)
    assert outcome(venue, cmd) == ("rejected", reason)
    assert seen(venue.registry) == before
    venue.registry.check()


def test_programme_records_survive_a_reopen_and_replay(backend: tuple[RegistryFactory, Reopen]) -> None:
    fresh, reopen = backend
    log = [*SETUP, ReportMonitoring(project=FOREST, period=2010, reductions=50, actor="sf-rep"),
           Verify(project=FOREST, period=2010, verified=40, actor="jqa"), issue(40), issue(1)]
    reg = fresh()
    first = Venue(reg).apply_all(log)
    again = reopen(reg)
    assert Venue(again).apply_all(log) == first
    assert again.monitoring(FOREST, 2010) == (50, 40, 40)
    assert isinstance(first[-1], Rejected) and first[-1].reason == "already_issued"
    other = Venue(fresh())
    assert [e for c in log for e in other.apply(c)] == first
