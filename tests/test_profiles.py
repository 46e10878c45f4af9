"""The scheme profiles in examples/profiles/: one replayable year per scheme, each replayed on
every registry backend and on every core, checked against results computed by hand (the
arithmetic is written out beside each expected figure)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carbonbook import UnitType
from carbonbook.codec import command_batches, json_encoder
from carbonbook.core import CORES
from carbonbook.events import Event, Recorded, Rejected
from carbonbook.registry import ComplianceStatus, Registry
from carbonbook.venue import Venue
from test_venue import RegistryFactory, Reopen, backend  # noqa: F401 - the fixture

PROFILES = Path(__file__).resolve().parent.parent / "examples" / "profiles"
JPA, CER, JCR, EUA, RGA = UnitType.JPA, UnitType.CER, UnitType.JCR, UnitType.EUA, UnitType.RGA


def replay(name: str, reg: Registry, core: str | None = None) -> list[Event]:
    """Profile ``name`` through a venue on ``reg`` (settlement at once), as ``carbonbook replay
    --registry`` runs it."""
    with open(PROFILES / name, "rb") as f:
        commands = [c for batch in command_batches(f, False) for c in batch[0]]
    venue = Venue(reg, core=core)
    events = venue.apply_all(commands)
    venue.check()
    reg.check()
    return events


def outcomes(events: list[Event]) -> list[tuple[str, str]]:
    """What the registry said: each ``recorded`` with a detail, each ``rejected`` (reason, detail)."""
    return [(e.command, e.detail) if isinstance(e, Recorded) else (e.reason, e.detail)
            for e in events if (isinstance(e, Recorded) and e.detail and e.command != "business_day")
            or isinstance(e, Rejected)]


def status(reg: Registry, account: str, period: int) -> tuple[Any, ...]:
    c = reg.compliance(account, period)
    return c.status, c.obligation, c.surrendered, c.shortfall, c.final, c.penalty


Run = Callable[[str], tuple[list[Event], Registry]]


@pytest.fixture
def run(backend: tuple[RegistryFactory, Reopen]) -> Run:  # noqa: F811 - the fixture
    """Replay a profile into a fresh registry of the backend; the events and the registry as
    opened again from its store."""
    fresh, reopen = backend

    def go(name: str) -> tuple[list[Event], Registry]:
        reg = fresh()
        events = replay(name, reg)
        return events, reopen(reg)
    return go


@pytest.mark.parametrize("name", sorted(p.name for p in PROFILES.glob("*.jsonl")))
def test_every_core_gives_the_same_bytes_and_replays_are_rejection_free_but_the_planned(name: str) -> None:
    from carbonbook.registry import MemoryRegistry

    outs = {core: json_encoder.encode_lines(replay(name, MemoryRegistry(), core)) for core in CORES}
    assert len(set(outs.values())) == 1
    events = replay(name, MemoryRegistry())
    assert all(e.reason in ("not_eligible", "offset_limit", "borrowing_limit") for e in events
               if isinstance(e, Rejected))


def test_jvets_allocation_from_the_base_year_average_and_true_up_with_kyoto_credits(run: Run) -> None:
    events, reg = run("jvets-fy2010.jsonl")
    assert outcomes(events) == [
        # (12000 + 11500 + 11800) / 3 = 11766 (rounded down), minus the committed 2100
        ("allocate", "kirin 2010 grandfathering: base-year average (12000+11500+11800)/3 - 2100 reduction: "
                     "+9666 JPA"),
        # (8000 + 8300 + 8600) / 3 = 8300, minus 1250
        ("allocate", "asahi 2010 grandfathering: base-year average (8000+8300+8600)/3 - 1250 reduction: "
                     "+7050 JPA"),
        ("issue", "serials CN 1-3000"),
        ("deadline", "JVETS 2010: surrender by day 2"),
        ("surrender", "9666 of 10400 surrendered for 2010: status B"),
        ("surrender", "10400 of 10400 surrendered for 2010: status A"),  # + 734 CER bought at 1,200
        ("surrender", "6900 of 6900 surrendered for 2010: status A"),
        ("compliance_final", "asahi 2010: status A final at the deadline (day 2), 6900 of 6900 surrendered, "
                             "0 short"),
        ("compliance_final", "kirin 2010: status A final at the deadline (day 2), 10400 of 10400 surrendered, "
                             "0 short"),
    ]
    assert [(a.account, a.method, a.base, a.reduction, a.qty) for a in reg.allocations()] == [
        ("kirin", "grandfathering", (12000, 11500, 11800), 2100, 9666),
        ("asahi", "grandfathering", (8000, 8300, 8600), 1250, 7050)]
    assert status(reg, "kirin", 2010) == (ComplianceStatus.A, 10400, 10400, 0, True, 0)
    assert status(reg, "asahi", 2010) == (ComplianceStatus.A, 6900, 6900, 0, True, 0)
    assert (reg.holding("kirin", JPA), reg.holding("kirin", CER), reg.holding("asahi", JPA)) == (0, 266, 150)
    assert (reg.holding("mitsui", CER), reg.balance("mitsui", "JPY"), reg.balance("kirin", "JPY")) == (
        2000, 1_200_000, 5_000_000 - 1_200_000)  # 1,000 CER at 1,200 (the maker's price)
    assert reg.compliance("kirin", 2010).offsets == 734


def test_trial_market_absolute_and_intensity_targets_and_one_borrowing(run: Run) -> None:
    events, reg = run("trial-fy2008.jsonl")
    assert outcomes(events) == [
        ("allocate", "tokyo-gas 2008 grandfathering: base-year average 5000 - 250 reduction: +4750 JPA"),
        ("allocate", "chubu 2008 grandfathering: base-year average 20000 - 1000 reduction: +19000 JPA"),
        ("allocate", "chubu 2009 grandfathering: base-year average 20000 - 1000 reduction: +19000 JPA"),
        # 10000 t forecast x 1.8 t/t
        ("allocate", "nippon-steel 2008 intensity: forecast production 10000 x 1800/1000, to be trued up: "
                     "+18000 JPA"),
        ("issue", "serials JP 60751-61000"),
        # 9500 t verified x 1.8 = 17100: 900 back
        ("true_up", "nippon-steel 2008 true_up: verified production 9500 x 1800/1000, allocated 18000: "
                    "-900 JPA"),
        ("deadline", "TRIAL 2008: surrender by day 2"),
        ("surrender", "4600 of 4600 surrendered for 2008: status A"),
        # 23000 - 19000 = 4000 of 2009 asked, 20% of 19000 = 3800 allowed
        ("borrowing_limit", "scheme 'TRIAL' lends 'chubu' at most 3800 of 2009 for 2008 (2000 bp of its 2009 "
                            "allocation of 19000); 0 borrowed, 4000 more asked"),
        ("surrender", "21500 of 21500 surrendered for 2008: status A, 2500 borrowed from 2009"),
        ("surrender", "17250 of 17500 surrendered for 2008: status B"),  # 17100 + 150 bought
        ("surrender", "17500 of 17500 surrendered for 2008: status A"),  # + 250 domestic credits
        ("compliance_final", "chubu 2008: status A final at the deadline (day 2), 21500 of 21500 surrendered, "
                             "0 short"),
        ("compliance_final", "nippon-steel 2008: status A final at the deadline (day 2), 17500 of 17500 "
                             "surrendered, 0 short"),
        ("compliance_final", "tokyo-gas 2008: status A final at the deadline (day 2), 4600 of 4600 "
                             "surrendered, 0 short"),
    ]
    c = reg.compliance("chubu", 2008)
    assert (c.status, c.borrowed, c.final) == (ComplianceStatus.A, 2500, True)
    # the 2009 allocation is cut by what was borrowed from it: 19000 - 2500 left, all still held
    assert [(a.method, a.qty) for a in reg.allocations("chubu", 2009)] == [("grandfathering", 19000),
                                                                           ("borrowed", -2500)]
    assert reg.holding("chubu", JPA) == 16500
    assert [(a.method, a.qty) for a in reg.allocations("nippon-steel", 2008)] == [("intensity", 18000),
                                                                                  ("true_up", -900)]
    assert [reg.holding(a, u) for a, u in (("meti-issuance", JPA), ("nippon-steel", JPA), ("nippon-steel", JCR),
                                           ("tokyo-gas", JPA))] == [900, 0, 0, 0]
    # 150 at 900; the bid's hold of 400 x 950 was released by the trade and the cancel
    assert (reg.balance("nippon-steel", "JPY"), reg.available_cash("nippon-steel", "JPY"),
            reg.balance("tokyo-gas", "JPY")) == (865_000, 865_000, 135_000)


def test_eu_ets_phase_2_to_3_benchmark_phase_1_units_cer_limit_penalty_hfc_ban(run: Run) -> None:
    events, reg = run("euets-2012.jsonl")
    got = outcomes(events)
    assert got[:4] == [
        ("issue", "serials EU 1-500"),  # a phase-1 allowance, valid up to 2007
        # 100000 t clinker x 0.766
        ("allocate", "cement-de 2012 benchmark: activity 100000 x 766/1000: +76600 EUA"),
        ("allocate", "power-pl 2012 grandfathering: base-year average (50000+52000)/2 x 90/100: +45900 EUA"),
        ("issue", "serials CN 1-9000")]
    assert got[6][0] == "not_eligible" and "500 EUA of vintage 2007, expired after 2007" in got[6][1]
    assert got[7:] == [
        ("surrender", "76600 of 85000 surrendered for 2012: status B"),
        # 11% of the phase's allocation: 76600 x 0.11 = 8426
        ("offset_limit", "scheme 'EUETS' allows 8426 CER for 'cement-de' in the phase from 2008 (periods on "
                         "record: 2012) (1100 bp of its allocation of 76600); 0 used, 8500 more asked"),
        ("surrender", "85000 of 85000 surrendered for 2012: status A"),
        ("surrender", "45900 of 48000 surrendered for 2012: status B"),
        ("compliance_final", "cement-de 2012: status A final at the deadline (day 3), 85000 of 85000 "
                             "surrendered, 0 short"),
        # 2100 t short x EUR 100
        ("compliance_final", "power-pl 2012: status B final at the deadline (day 3), 45900 of 48000 "
                             "surrendered, 2100 short, penalty 21000000 EUR"),
        ("allocate", "cement-de 2013 benchmark: activity 100000 x 766/1000: +76600 EUA"),
        ("not_eligible", "serials CN 9001..11000 (CER) do not count for 'EUETS' 2013: project type HFC-23, "
                         "which 'EUETS' excludes from 2013"),
        ("surrender", "600 of 78000 surrendered for 2013: status B"),
    ]
    assert status(reg, "power-pl", 2012) == (ComplianceStatus.B, 48000, 45900, 2100, True, 21_000_000)
    assert status(reg, "power-pl", 2013)[:2] == (ComplianceStatus.B, 42100)  # 40000 + the 2100 carried
    assert (reg.holding("cement-de", EUA), reg.holding("cement-de", CER)) == (500 + 76600, 2000)
    assert sorted((b.project_type, b.qty) for b in reg.blocks("eu-surrender", CER)) == [("hydro", 600),
                                                                                       ("hydro", 8400)]
    assert all(b.project_type == "HFC-23" for b in reg.blocks("cement-de", CER))


def test_rggi_control_period_with_the_excess_emissions_deduction(run: Run) -> None:
    events, reg = run("rggi-2009-2011.jsonl")
    assert outcomes(events)[-4:] == [
        ("surrender", "9000 of 9500 surrendered for 2011: status B"),
        ("surrender", "5800 of 5800 surrendered for 2011: status A"),
        ("compliance_final", "plant-md 2011: status A final at the deadline (day 2), 5800 of 5800 surrendered, "
                             "0 short"),
        # 500 t of excess emissions x 3
        ("compliance_final", "plant-ny 2011: status B final at the deadline (day 2), 9000 of 9500 surrendered, "
                             "500 short, 1500 added to 2012's obligation"),
    ]
    assert status(reg, "plant-ny", 2011) == (ComplianceStatus.B, 9500, 9000, 500, True, 0)
    assert status(reg, "plant-ny", 2014)[:2] == (ComplianceStatus.B, 8000 + 1500)  # the next control period
    # the plants bought the oldest vintage (2009), which counts for the control period (banking)
    assert {(b.period, b.state) for b in reg.blocks("rggi-retirement")} == {(2009, "surrendered")}
    assert (reg.holding("plant-ny", RGA), reg.holding("plant-md", RGA), reg.holding("rggi-auction", RGA)) == (
        0, 200, 30000)
    assert (reg.balance("plant-ny", "USD"), reg.balance("plant-md", "USD")) == (
        5_000_000 - 9000 * 190, 5_000_000 - 6000 * 190)
