"""Voluntary cancellation with its beneficiary and purpose (issue 15 item 5) through the order log,
on every backend: the seed's LUMINE case (a retailer cancels ~900 t of J-VER biomass credits to
offset its staff's commuting) and its certificate, retrievable by id after a reopen."""

from __future__ import annotations

from carbonbook import Rejected, UnitType
from carbonbook.commands import AddRepresentative, BusinessDay, Issue, OpenAccount, OpenScheme, Retire, SetCap
from carbonbook.events import Recorded
from carbonbook.registry import Certificate, Serials
from carbonbook.venue import Venue
from conftest import RegistryFactory, Reopen

JVER = UnitType.JVER
SETUP = [
    OpenScheme(name="J-VER", allowances=frozenset({JVER})),
    SetCap(scheme="J-VER", period=2010, cap=14_659),
    OpenAccount(account="lumine"),
    OpenAccount(account="mufg-offsets", kind="cancellation"),
    Issue(account="lumine", unit=JVER, qty=1_000, scheme="J-VER", period=2010, project="E001-cement-biomass"),
    AddRepresentative(account="lumine", person="lumine-rep"),
    BusinessDay(day=7),
]


def test_cancellation_records_beneficiary_purpose_and_a_certificate(
        backend: tuple[RegistryFactory, Reopen]) -> None:
    fresh, reopen = backend
    reg = fresh()
    venue = Venue(reg)
    assert not [e for e in venue.apply_all(SETUP) if isinstance(e, Rejected)]
    cancel = Retire(account="lumine", unit=JVER, qty=900, to="mufg-offsets", beneficiary="LUMINE",
                    purpose="staff commuting FY2010", actor="lumine-rep")
    (event,) = venue.apply(cancel)
    assert event == Recorded(8, "retire", 7, "certificate 7: 900 JVER JP 1-900, for LUMINE, "
                                             "purpose: staff commuting FY2010")
    (other,) = venue.apply(Retire(account="lumine", unit=JVER, qty=1, to="mufg-offsets", actor="mallory"))
    assert isinstance(other, Rejected) and other.reason == "not_authorised"
    reg = reopen(reg)
    assert reg.certificate(7) == Certificate(7, "lumine", "mufg-offsets", JVER, 900, [Serials("JP", 1, 900)],
                                             "LUMINE", "staff commuting FY2010", 7, "lumine-rep")
    reg.check()


def test_a_retirement_takes_no_beneficiary() -> None:
    from carbonbook.registry import MemoryRegistry

    venue = Venue(MemoryRegistry())
    venue.apply_all([*SETUP, OpenAccount(account="ret", kind="retirement")])
    (event,) = venue.apply(Retire(account="lumine", unit=JVER, qty=1, to="ret", beneficiary="LUMINE",
                                  actor="lumine-rep"))
    assert isinstance(event, Rejected) and event.reason == "refused"
    assert venue.registry.holding("lumine", JVER) == 1000
