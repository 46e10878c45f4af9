"""Registry commands in the journal: journaled as themselves, hand-built ones included, so a
journal replays them exactly."""

from __future__ import annotations

from pathlib import Path

from carbonbook import Engine, ListInstrument, Rejected, RejectReason
from carbonbook.commands import Deposit, Issue, OpenAccount, OpenScheme
from carbonbook.journal import JOURNAL_NAME, Journal, decode_command, encode_command, read_journal, recover
from test_venue import ALL_REGISTRY_COMMANDS, JPA, SETUP


def test_every_registry_command_round_trips_hand_built_ones_included() -> None:
    odd = [OpenScheme(name="X", allowances=frozenset({JPA, "bogus"}), offset_percent=2**70),  # type: ignore[arg-type]
           OpenAccount(account="a", units=frozenset({JPA}), kind="nonsense"),  # type: ignore[arg-type]
           Issue(account="a", unit="nope", qty=-(2**64), scheme="S", period=1),  # type: ignore[arg-type]
           Deposit(account="a", currency="JPY", amount=1.5)]  # type: ignore[arg-type]
    for cmd in [*ALL_REGISTRY_COMMANDS, *odd]:
        back = decode_command(encode_command(cmd))
        assert back == cmd and back.__class__ is cmd.__class__


def test_a_plain_engine_journal_replays_registry_commands_as_no_registry(tmp_path: Path) -> None:
    commands = [*SETUP[:3], ListInstrument("A", JPA)]
    with Journal.open(tmp_path) as journal:
        events = journal.apply_all(commands)
    assert [e.reason for e in events if isinstance(e, Rejected)] == [RejectReason.NO_REGISTRY] * 3
    replayed = [e.command for e in read_journal(tmp_path / JOURNAL_NAME).entries]
    assert replayed == commands and Engine().apply_all(replayed) == events
    assert recover(tmp_path).engine.state_hash() == journal.engine.state_hash()
