"""The audit trail (issue 15 item 2): actor, approver and business day on every journal row,
who held which serials and when, an account's statement, and ``carbonbook registry``.

The serial audit replays the journal over a model of the blocks (trade settlements record no
serials); here the model must end with exactly the registry's blocks after the whole example
session (1,432 trades settled, surrenders, cancellations, carry-over), and give exact holdings
in a small scenario that moves units every way, on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonbook import ListInstrument, NewOrder, Rejected, Side, UnitType
from carbonbook.codec import command_batches
from carbonbook.commands import (
    AddAdministrator,
    AddRepresentative,
    ApproveTransfer,
    BusinessDay,
    Command,
    Deposit,
    Issue,
    OpenAccount,
    OpenScheme,
    Retire,
    SetCap,
    SetControls,
    Transfer,
)
from carbonbook.operations.cli import EXIT_IO, EXIT_OK, EXIT_USAGE, main
from carbonbook.registry import BlockState, Holding, MemoryRegistry, Registry, SQLiteRegistry
from carbonbook.registry._audit import active_blocks
from carbonbook.venue import Venue
from conftest import RegistryFactory, Reopen

JPA = UnitType.JPA
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jvets-2010.jsonl"
ACTIVE, CANCELLED = BlockState.ACTIVE, BlockState.CANCELLED
LOG: list[Command] = [
    AddAdministrator(person="admin"),
    OpenScheme(name="JVETS", allowances=frozenset({JPA}), actor="admin"),
    SetCap(scheme="JVETS", period=2010, cap=1_000, actor="admin"),
    OpenAccount(account="tepco", actor="admin"),
    OpenAccount(account="mitsui", actor="admin"),
    OpenAccount(account="offsets", kind="cancellation", actor="admin"),
    AddRepresentative(account="tepco", person="alice", actor="admin"),
    AddRepresentative(account="tepco", person="bob", actor="admin"),
    SetControls(account="tepco", four_eyes=True, actor="admin"),
    Issue(account="tepco", unit=JPA, qty=100, scheme="JVETS", period=2010, actor="admin"),  # txid 10
    Deposit(account="tepco", currency="JPY", amount=100_000, actor="admin"),
    ListInstrument("JPA", JPA),
    BusinessDay(day=1),
    Transfer(sender="tepco", receiver="mitsui", unit=JPA, qty=30, actor="alice"),  # 12: proposed
    ApproveTransfer(transfer=12, actor="bob"),  # 13: JP 1-30 to mitsui
    NewOrder(1, "mitsui", "JPA", Side.SELL, 10, price=1000),  # 14: hold
    NewOrder(2, "tepco", "JPA", Side.BUY, 10, price=1000),  # 15, 16: hold, settlement of JP 1-10
    BusinessDay(day=2),
    Retire(account="tepco", unit=JPA, qty=15, to="offsets", beneficiary="LUMINE", actor="bob"),  # 17
]


def run(reg: Registry) -> Registry:
    events = Venue(reg).apply_all(LOG)
    assert not [e for e in events if isinstance(e, Rejected)], events
    return reg


def test_who_held_which_serials_and_when(backend: tuple[RegistryFactory, Reopen]) -> None:
    fresh, reopen = backend
    reg = reopen(run(fresh()))
    assert reg.serial_history("JP", 1, 40) == [
        Holding("JP", 1, 40, "JPA", "tepco", ACTIVE, 10, 0, "issue", "admin", None),
        Holding("JP", 1, 30, "JPA", "mitsui", ACTIVE, 13, 1, "transfer", "alice", "bob"),
        Holding("JP", 1, 10, "JPA", "tepco", ACTIVE, 16, 1, "settle", None, None),
        Holding("JP", 31, 40, "JPA", "offsets", CANCELLED, 17, 2, "cancel", "bob", None),
    ]  # tepco's oldest block is what is left of the issued one, not the JP 1-10 it bought back
    assert reg.serial_history("JP", 500, 600) == []
    assert active_blocks(reg.journal(), reg._ledgers.moves) == sorted(  # type: ignore[attr-defined]
        (b.origin, b.start, b.end, b.holder, b.state) for b in reg.blocks())


def test_every_journal_row_names_its_actor_approver_and_day() -> None:
    reg = run(MemoryRegistry())
    rows = [(e.txid, e.kind, e.actor, e.approver, e.day) for e in reg.journal()]
    assert rows[9:] == [
        (10, "issue", "admin", None, 0), (11, "deposit", "admin", None, 0),
        (12, "transfer_proposed", "alice", None, 1), (13, "transfer", "alice", "bob", 1),
        (14, "reserve", None, None, 1), (15, "reserve", None, None, 1), (16, "settle", None, None, 1),
        (17, "cancel", "bob", None, 2)]


def test_the_model_rebuilds_the_example_sessions_blocks() -> None:
    reg = MemoryRegistry()
    venue = Venue(reg)
    with EXAMPLE.open("rb") as source:
        for batch, *_ in command_batches(source, False):
            venue.apply_all(batch)
    assert active_blocks(reg.journal(), reg._ledgers.moves) == sorted(  # type: ignore[attr-defined]
        (b.origin, b.start, b.end, b.holder, b.state) for b in reg.blocks())


def test_a_registry_from_before_moves_were_recorded_is_refused_not_misread() -> None:
    reg = run(MemoryRegistry())
    reg._ledgers.moves.clear()  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="names no serials"):
        reg.serial_history("JP", 1, 10)


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "reg.db"
    reg = run(SQLiteRegistry(path))
    reg.close()
    return f"sqlite:///{path}"


def test_cli_audit_statement_and_certificate(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["registry", "audit", db, "--serials", "JP:1-12"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == [
        "JP 1-12 JPA: tepco (active) from txid 10 day 0, issue, actor admin",
        "JP 1-12 JPA: mitsui (active) from txid 13 day 1, transfer, actor alice, approver bob",
        "JP 1-10 JPA: tepco (active) from txid 16 day 1, settle, actor -"]
    assert main(["registry", "audit", db, "--account", "mitsui"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == [
        "txid 5 day 0 open mitsui actor admin (holding)",
        "txid 12 day 1 transfer_proposed tepco -> mitsui 30 JPA actor alice ref 12 "
        "(awaits a second representative)",
        "txid 13 day 1 transfer tepco -> mitsui 30 JPA actor alice approver bob ref 12",
        "txid 14 day 1 reserve mitsui 10 JPA actor - ref 1",
        "txid 16 day 1 settle mitsui -> tepco 10 JPA 10000 JPY actor - ref 18"]  # ref: the trade's seq
    assert main(["registry", "statement", db, "tepco"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == [
        "account tepco: holding, open", "JPA: 65 held, 65 free", "  vintage 2010: 65",
        "    JP 1-10 (10)", "    JP 46-100 (55)"]
    assert main(["registry", "certificate", db, "17"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == [
        "cancellation certificate 17", "  15 JPA of tepco, cancelled into offsets on business day 2 by bob",
        "  serials JP 31-45", "  beneficiary LUMINE", "  purpose -"]


@pytest.mark.parametrize(("argv", "code", "says"), [
    (["certificate", "DB", "16"], EXIT_IO, "no cancellation certificate 16"),
    (["statement", "DB", "nobody"], EXIT_IO, "account 'nobody' does not exist"),
    (["audit", "DB", "--account", "nobody"], EXIT_IO, "account 'nobody' does not exist"),
    (["audit", "DB", "--serials", "JP:9-1"], EXIT_USAGE, "give ORIGIN:FIRST-LAST"),
    (["audit", "DB", "--serials", "1-5"], EXIT_USAGE, "give ORIGIN:FIRST-LAST"),
    (["audit", "nowhere", "--account", "x"], EXIT_USAGE, "not a registry URL"),
])
def test_cli_bad_input(db: str, capsys: pytest.CaptureFixture[str], argv: list[str], code: int,
                       says: str) -> None:
    assert main(["registry", *[db if a == "DB" else a for a in argv]]) == code
    assert says in capsys.readouterr().err
