"""A journaled venue (:mod:`carbonbook.operations.journal` over :class:`~carbonbook.venue.Venue`): registry
commands in the journal, recovery onto the registry the commands went into (kept alive, or
reopened from its file or server), venue snapshots, the write-ahead order (the batch is
written before the registry commits) and recovery after a failed commit, and refusals.

``LOG`` is ``expiry_log() + more_commands()`` of ``test_venue``: registry commands, orders
that trade and settle at T+1, an expiry that cancels the sells it leaves short, refusals.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carbonbook import Engine, Event, ListInstrument, Rejected, RejectReason
from carbonbook.commands import Deposit, Expire, Issue, OpenAccount, OpenScheme, Undecodable
from carbonbook.errors import JournalMismatch, RegistryUnavailable
from carbonbook.operations.cli import EXIT_IO, EXIT_OK, main
from carbonbook.operations.journal import (
    JOURNAL_NAME,
    VENUE_MAGIC,
    FsyncPolicy,
    Journal,
    decode_command,
    encode_command,
    read_journal,
    recover,
)
from carbonbook.operations.journal import main as journal_main
from carbonbook.registry import MemoryRegistry, Registry, SQLiteRegistry
from carbonbook.venue import LogMismatch, Venue
from carbonbook.venue.checkpoint import Checkpoint
from conftest import RegistryFactory, Reopen
from test_venue import (
    ALL_REGISTRY_COMMANDS,
    JPA,
    SETUP,
    encode,
    expiry_log,
    fingerprint,
    more_commands,
    run_log,
    sell,
    state,
    write_log,
)

LOG = expiry_log() + more_commands()
EXPIRY = LOG.index(Expire(unit=JPA, period=2010))
BATCH = 4
LAG = 1


def venue_on(reg: Registry) -> Callable[[], Venue]:
    """How to make the journal's venue on ``reg``: the settings LOG runs with."""
    return lambda: Venue(reg, lag=LAG)


def apply(journal: Journal, commands: list[Any]) -> list[Event]:
    events: list[Event] = []
    for i in range(0, len(commands), BATCH):
        events += journal.apply_all(commands[i:i + BATCH])
    return events


def journaled(directory: Path, reg: Registry, commands: list[Any], **kw: Any) -> tuple[Journal, list[Event]]:
    """A new journal of a venue on ``reg`` in ``directory`` that applied ``commands``, closed."""
    journal = Journal.open(directory, FsyncPolicy("never"), engine=Venue(reg, lag=LAG), **kw)
    events = apply(journal, commands)
    journal.close()
    return journal, events


def entries(directory: Path) -> list[Any]:
    return [e.command for e in read_journal(directory / JOURNAL_NAME, magic=VENUE_MAGIC).entries]


class FailingCommit:
    """Makes the next commit of ``reg`` raise, as a database lost at that moment would, once; records
    the journal's size at each commit attempt (the records must be there already)."""

    def __init__(self, reg: Registry, journal: Path) -> None:
        self.reg = reg
        self.journal = journal
        self.sizes: list[int] = []
        reg._commit = self  # type: ignore[attr-defined]

    def __call__(self, log: Any) -> None:
        self.sizes.append(self.journal.stat().st_size)
        del self.reg._commit  # type: ignore[attr-defined]  # the next commit goes through
        raise RegistryUnavailable("the database went away")


# -- registry commands are journaled as themselves (the regression) ------------------------------


def test_registry_commands_are_journaled_and_a_venue_is_recovered(tmp_path: Path) -> None:
    """Registry commands used to be journaled as opaque objects and recovered as ``malformed``
    rejections by a plain engine, without holds or settlement."""
    reg = MemoryRegistry()
    journal, events = journaled(tmp_path, reg, LOG)
    assert entries(tmp_path) == LOG
    rec = recover(tmp_path, venue=venue_on(reg))
    assert isinstance(rec.engine, Venue) and rec.engine.registry is reg
    assert rec.engine.export_venue_state() == journal.engine.export_venue_state()  # type: ignore[attr-defined]
    rebuilt = MemoryRegistry()  # a registry that lost everything: the journal carries it all out again
    assert encode(run_log(rebuilt, entries(tmp_path), lag=LAG)) == encode(events)
    assert fingerprint(rebuilt) == fingerprint(reg)


def test_every_registry_command_round_trips_hand_built_ones_included() -> None:
    odd = [OpenScheme(name="X", allowances=frozenset({JPA, "bogus"}), offset_percent=2**70),  # type: ignore[arg-type]
           OpenScheme(name="X", allowances=frozenset({"bogus"}), phase_banking=frozenset({2013}),  # type: ignore[arg-type]
                      control_periods=((2009, 2011),)),
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


# -- recovery onto the same registry -------------------------------------------------------------


@pytest.mark.parametrize("cut", [EXPIRY - 3, EXPIRY + 2])
def test_a_recovered_venue_continues_as_if_uninterrupted(backend: tuple[RegistryFactory, Reopen],
                                                         tmp_path: Path, cut: int) -> None:
    fresh, reopen = backend
    one = fresh()
    straight = run_log(one, LOG, batch=BATCH)
    two = fresh()
    journal, first = journaled(tmp_path / "j", two, LOG[:cut])
    before = state(two)
    two = reopen(two)
    resumed = Journal.open(tmp_path / "j", venue=venue_on(two))
    assert resumed.records == cut and state(two) == before  # the replay changed nothing
    assert resumed.engine.export_venue_state() == journal.engine.export_venue_state()  # type: ignore[attr-defined]
    rest = apply(resumed, LOG[cut:])
    resumed.close()
    assert encode(first + rest) == encode(straight)
    assert state(two) == state(one)
    resumed.engine.check()
    two.check()


def test_recovery_from_a_snapshot_in_the_middle(backend: tuple[RegistryFactory, Reopen],
                                                tmp_path: Path) -> None:
    """A venue journaled from its current state (its first snapshot) and snapshotted again later."""
    fresh, reopen = backend
    one = fresh()
    straight = run_log(one, LOG, batch=BATCH)
    two = fresh()
    venue = Venue(two, lag=LAG)
    first = venue.apply_all(SETUP)
    journal = Journal.open(tmp_path, FsyncPolicy("never"), engine=venue, keep=3)
    first += apply(journal, LOG[len(SETUP):EXPIRY])
    middle = journal.snapshot()
    first += apply(journal, LOG[EXPIRY:EXPIRY + 5])
    journal.close()
    two = reopen(two)
    rec = recover(tmp_path, venue=venue_on(two))
    assert rec.snapshot == middle and rec.replayed == 5 and rec.records == EXPIRY + 5 - len(SETUP)
    assert rec.engine.export_venue_state() == venue.export_venue_state()
    with Journal.open(tmp_path, venue=venue_on(two)) as resumed:
        rest = apply(resumed, LOG[EXPIRY + 5:])
    assert encode(first + rest) == encode(straight)
    assert state(two) == state(one)


def test_a_new_memory_registry_is_rebuilt_from_the_journal_past_the_snapshots(tmp_path: Path) -> None:
    """The snapshots are ahead of an empty registry: recovery starts from the journal's start and
    carries every command out again."""
    one = MemoryRegistry()
    straight = run_log(one, LOG, batch=BATCH)
    journal = Journal.open(tmp_path, venue=venue_on(MemoryRegistry()))
    first = apply(journal, LOG[:20])
    journal.snapshot()
    first += apply(journal, LOG[20:25])
    journal.close()
    reg = MemoryRegistry()
    with Journal.open(tmp_path, venue=venue_on(reg)) as resumed:
        assert resumed.records == 25
        rest = apply(resumed, LOG[25:])
    assert encode(first + rest) == encode(straight)
    assert state(reg) == state(one)
    assert recover(tmp_path, venue=venue_on(reg)).snapshot is not None  # now the registry has reached it


# -- write-ahead ---------------------------------------------------------------------------------


def test_the_batch_is_written_and_fsynced_before_the_registry_commits(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    reg = MemoryRegistry()
    journal = Journal.open(tmp_path, FsyncPolicy("batch"), venue=venue_on(reg))
    path = tmp_path / JOURNAL_NAME
    steps: list[str] = []
    real_fsync, real_commit = os.fsync, reg._commit
    monkeypatch.setattr(os, "fsync", lambda fd: (steps.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(reg, "_commit", lambda log: (steps.append(f"commit at {path.stat().st_size}"),
                                                     real_commit(log))[1])
    sizes = []
    for i in range(0, 3 * BATCH, BATCH):
        journal.apply_all(LOG[i:i + BATCH])
        sizes.append(journal.offset)
    assert steps == [step for size in sizes for step in ("fsync", f"commit at {size}")]
    journal.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_failed_commit_leaves_the_journal_ahead_and_recovery_carries_the_batch_out(tmp_path: Path,
                                                                                      kind: str) -> None:
    """The registry commit of the batch with the expiry fails after the journal was written: the
    registry is left as it was before the batch, the journal refuses further batches, and recovery
    (from the snapshot before the batch) carries the batch out; then the session goes on as if
    uninterrupted."""
    one = MemoryRegistry()
    straight = run_log(one, LOG, batch=BATCH)
    db = tmp_path / "venue.db"
    reg: Registry = MemoryRegistry() if kind == "memory" else SQLiteRegistry(db)
    journal = Journal.open(tmp_path / "j", FsyncPolicy("batch"), venue=venue_on(reg))
    cut = EXPIRY - EXPIRY % BATCH  # the batch holding the expiry
    first = apply(journal, LOG[:cut])
    journal.snapshot()  # recovery starts here, with the registry exactly at the snapshot
    before = state(reg)
    failing = FailingCommit(reg, tmp_path / "j" / JOURNAL_NAME)
    with pytest.raises(RegistryUnavailable):
        journal.apply_all(LOG[cut:cut + BATCH])
    assert failing.sizes == [journal.offset] and journal.records == cut + BATCH  # written before the commit
    assert state(reg) == before  # the registry rolled the batch back
    with pytest.raises(JournalMismatch, match="failed part way"):
        journal.apply_all(LOG[cut + BATCH:])
    with pytest.raises(JournalMismatch, match="failed part way"):
        journal.snapshot()
    journal.close()
    if isinstance(reg, SQLiteRegistry):
        reg.close()
        reg = SQLiteRegistry(db)
    assert Checkpoint(reg).position == first[-1].seq
    resumed = Journal.open(tmp_path / "j", venue=venue_on(reg))  # carries the batch out
    position = Checkpoint(reg).position
    assert resumed.records == cut + BATCH and position == resumed.engine.next_seq - 1 > first[-1].seq
    rest = apply(resumed, LOG[cut + BATCH:])
    resumed.close()
    assert encode(first) == encode(straight[:len(first)])
    position = Checkpoint(reg).position
    assert encode(rest) == encode(straight[-len(rest):]) and rest[0].seq == position - len(rest) + 1
    assert fingerprint(reg) == fingerprint(one) and Checkpoint(reg).position == Checkpoint(one).position
    reg.check()


def test_a_closed_sqlite_connection_at_commit_then_recovery(tmp_path: Path) -> None:
    one = MemoryRegistry()
    run_log(one, LOG, batch=BATCH)
    db = tmp_path / "venue.db"
    reg = SQLiteRegistry(db)
    journal = Journal.open(tmp_path / "j", venue=venue_on(reg))
    apply(journal, LOG[:12])
    reg.close()  # the connection is gone: the next commit fails, after the journal write
    with pytest.raises(RegistryUnavailable):
        journal.apply_all(LOG[12:16])
    journal.close()
    reg = SQLiteRegistry(db)
    with Journal.open(tmp_path / "j", venue=venue_on(reg)) as resumed:
        assert resumed.records == 16
        apply(resumed, LOG[16:])
    assert fingerprint(reg) == fingerprint(one)
    reg.close()


# -- refusals ------------------------------------------------------------------------------------


def test_a_venue_journal_is_not_an_engine_journal_nor_the_reverse(tmp_path: Path) -> None:
    reg = MemoryRegistry()
    journaled(tmp_path / "venue", reg, LOG[:12])
    with Journal.open(tmp_path / "plain") as plain:
        plain.apply(ListInstrument("A", JPA))
    for opener in (recover, Journal.open):
        with pytest.raises(JournalMismatch, match="a venue's journal: open or recover it with venue="):
            opener(tmp_path / "venue")
        with pytest.raises(JournalMismatch, match="a plain engine's journal"):
            opener(tmp_path / "plain", venue=venue_on(MemoryRegistry()))


def test_bad_venue_arguments_are_type_errors(tmp_path: Path) -> None:
    reg = MemoryRegistry()
    with pytest.raises(TypeError, match="not both"):
        Journal.open(tmp_path, engine=Venue(reg), venue=venue_on(reg))
    used = Venue(MemoryRegistry())
    used.apply(SETUP[0])
    for make in (lambda: used, Engine):
        with pytest.raises(TypeError, match="must make a new Venue"):
            Journal.open(tmp_path, venue=make)  # type: ignore[arg-type]
    journal = Journal.open(tmp_path, venue=venue_on(reg))
    with pytest.raises(TypeError, match="commands and Undecodable records"):
        journal.apply_all([Undecodable(1, "bad"), ("not", "a", "command")])
    assert journal.records == 0 and journal.engine.next_seq == 1
    journal.apply_all([Undecodable(1, "bad")])  # the journal is still usable
    journal.close()


def test_a_registry_ahead_of_the_journal_is_refused(tmp_path: Path) -> None:
    reg = MemoryRegistry()
    journaled(tmp_path / "j", reg, LOG[:12])
    Venue(reg, lag=LAG).apply_all(LOG[:14])  # two commands the journal never saw
    with pytest.raises(JournalMismatch, match=r"holds events up to 14.*only up to 12"):
        recover(tmp_path / "j", venue=venue_on(reg))
    with pytest.raises(JournalMismatch, match="holds events up to 14"):  # a new journal for a used registry
        Journal.open(tmp_path / "new", engine=Venue(reg, lag=LAG))
    assert not (tmp_path / "new" / JOURNAL_NAME).exists()


def test_recovery_onto_a_registry_of_another_log_is_a_log_mismatch(tmp_path: Path) -> None:
    reg = MemoryRegistry()
    journaled(tmp_path, reg, LOG[:20])
    other = MemoryRegistry()
    run_log(other, [*LOG[:15], sell(40, 10, 1700)], lag=LAG)
    with pytest.raises(LogMismatch):
        recover(tmp_path, venue=venue_on(other))


def test_the_command_line_journals_a_venue_on_a_registry(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``carbonbook journal|recover ... --registry URL``: the settings the first run gave are the
    registry's from then on; recovery needs the registry, and says so; a replay resumes; the
    events a journaled run writes are replay's."""
    log = write_log(tmp_path / "log.jsonl", LOG)
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    jdir = str(tmp_path / "j")
    events = tmp_path / "events.jsonl"
    assert main(["journal", str(log), jdir, "--registry", url, "--settle-lag", "1", "--batch", "7",
                 "--snapshot-every", "14", "--out", str(events)]) == EXIT_OK
    replayed = json.loads(capsys.readouterr().out)
    assert main(["replay", str(log), "--registry", "memory:", "--settle-lag", "1", "--out",
                 str(tmp_path / "plain.jsonl"), "--quiet"]) == EXIT_OK
    assert events.read_bytes() == (tmp_path / "plain.jsonl").read_bytes()
    assert main(["recover", jdir, "--registry", url]) == EXIT_OK
    recovered = json.loads(capsys.readouterr().out)
    assert (recovered["seq"], recovered["state_hash"], recovered["registry_position"]) == (
        replayed["seq"], replayed["state_hash"], replayed["registry_position"])
    assert replayed["registry_position"] == replayed["seq"] - 1
    assert main(["recover", jdir]) == EXIT_IO
    assert capsys.readouterr().err == (f"carbonbook: {jdir} holds a venue's journal: add --registry URL, "
                                       "the registry its commands went into\n")
    assert main(["recover", jdir, "--registry", url, "--settle-lag", "0"]) == EXIT_IO
    assert "not JPY and 0" in capsys.readouterr().err
    # the same log again resumes after what the journal holds: nothing more to do
    assert journal_main(["replay", str(log), jdir, "--registry", url, "--out", str(events)]) == EXIT_OK
    again = json.loads(capsys.readouterr().out)
    assert (again["resumed_at"], again["state_hash"]) == (replayed["records"], replayed["state_hash"])
    assert events.read_bytes() == b""  # no command applied this time
