"""The journal: record encoding, batches and fsync, torn and corrupted files, seq checks."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonbook import (
    CancelOrder,
    Command,
    Engine,
    Event,
    ListInstrument,
    NewOrder,
    Phase,
    SetPhase,
    Side,
    Undecodable,
    UnitType,
)
from carbonbook.errors import JournalCorrupted, JournalMismatch, PersistenceError, TornRecordWarning
from carbonbook.operations.journal import (
    HEADER_SIZE,
    JOURNAL_NAME,
    MAGIC,
    FsyncPolicy,
    Journal,
    decode_command,
    encode_command,
    frame,
    read_journal,
    recover,
)
from strategies import command_streams

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_PHASES = st.sampled_from([Phase.CALL, Phase.CALL, Phase.CONTINUOUS, Phase.CONTINUOUS, Phase.CLOSED,
                           Phase.HALTED])


@st.composite
def phased_streams(draw: st.DrawFn) -> list[Command]:
    """``command_streams`` with phase changes (calls, uncrosses, halts) inserted and sometimes a
    band and a reference on the listings, so that every part of a book's state is exercised."""
    stream = draw(command_streams())
    out: list[Command] = []
    for cmd in stream:
        if isinstance(cmd, ListInstrument) and cmd.tick > 0 and draw(st.booleans()):
            cmd = msgspec.structs.replace(cmd, band=draw(st.sampled_from([500, 3000])),
                                          reference=cmd.tick * 10)
        out.append(cmd)
        if isinstance(cmd, NewOrder | CancelOrder) and draw(st.integers(0, 7)) == 0:
            ref = draw(st.none() | st.integers(8, 12))
            symbol = cmd.symbol if isinstance(cmd, NewOrder) else "JPA-2010"
            out.append(SetPhase(symbol, draw(_PHASES), None if ref is None else ref * 100))
    return out


def journal_path(directory: Path) -> Path:
    return directory / JOURNAL_NAME


def run(commands: list[Command], batch: int = 7) -> tuple[Engine, list[Event]]:
    """The uninterrupted run: a plain engine, in batches."""
    engine = Engine()
    events: list[Event] = []
    for i in range(0, len(commands), batch):
        events += engine.apply_all(commands[i:i + batch])
    return engine, events


def listing_and_orders(n: int) -> list[Command]:
    cmds: list[Command] = [ListInstrument("JPA-2010", UnitType.JPA)]
    for i in range(n):
        side = Side.BUY if i % 2 else Side.SELL
        cmds.append(NewOrder(i, f"acct-{i % 3}", "JPA-2010", side, 5 + i % 4, price=100 + i % 5))
    return cmds


def write_journal(directory: Path, commands: list[Command], batch: int = 1) -> Journal:
    journal = Journal.open(directory, FsyncPolicy("never"))
    for i in range(0, len(commands), batch):
        journal.apply_all(commands[i:i + batch])
    journal.close()
    return journal


def record_offsets(directory: Path) -> list[int]:
    return [e.offset for e in read_journal(journal_path(directory)).entries]


# -- payloads -----------------------------------------------------------------------------


@SETTINGS
@given(phased_streams())
def test_payload_round_trip(commands: list[Command]) -> None:
    """Every command, hand-built faulty ones included, decodes to an equal command."""
    for cmd in commands:
        back = decode_command(encode_command(cmd))
        assert back == cmd and back.__class__ is cmd.__class__


def test_payload_of_odd_values() -> None:
    big = NewOrder(2**63, "", "X", Side.BUY, -(2**63) - 1, price=2**70)
    assert decode_command(encode_command(big)) == big
    odd = NewOrder(1, "a", "X", Side.BUY, True, price=5)  # type: ignore[arg-type]
    back = decode_command(encode_command(odd))
    assert back == odd and back.qty is True  # type: ignore[attr-defined]
    und = Undecodable(7, "bad json", 3)
    assert decode_command(encode_command(und)) == und
    assert repr(decode_command(encode_command(("not", "a", "command")))) == "('not', 'a', 'command')"


def test_non_commands_are_journaled_and_replayed(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    events = journal.apply_all([ListInstrument("A", UnitType.EUA), ("junk", 1),
                                Undecodable(3, "not json", 9)])
    journal.close()
    assert [e.seq for e in events] == [1, 2, 3]
    rec = recover(tmp_path)
    assert rec.records == 3 and rec.engine.state_hash() == journal.engine.state_hash()
    again, _ = run([])
    replayed = again.apply_all([e.command for e in read_journal(journal_path(tmp_path)).entries])
    assert replayed == events


# -- writing ------------------------------------------------------------------------------


@SETTINGS
@given(phased_streams(), st.integers(1, 9))
def test_journaled_engine_gives_the_same_events(commands: list[Command], batch: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        seen: list[Event] = []
        journal = Journal.open(tmp, FsyncPolicy("never"))
        journal.engine.subscribe(seen.extend)
        events: list[Event] = []
        for i in range(0, len(commands), batch):
            events += journal.apply_all(iter(commands[i:i + batch]))
        journal.close()
        plain, expected = run(commands, batch)
        assert events == expected == seen
        entries = read_journal(journal_path(Path(tmp))).entries
        assert [e.command for e in entries] == commands
        starts = [e.seq for e in events]
        assert all(e.seq in starts for e in entries)  # each record's seq is its first event's
        rec = recover(tmp)
        assert rec.records == len(commands) and rec.snapshot is None
        assert rec.engine.state_hash() == plain.state_hash()
        rec.engine.check()


def test_record_seq_is_the_first_event_of_its_command(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    journal.apply(ListInstrument("A", UnitType.JPA))  # seq 1
    journal.apply_all([NewOrder(1, "a", "A", Side.SELL, 5, price=10),  # 2
                       NewOrder(2, "b", "A", Side.BUY, 5, price=10),  # 3 accepted, 4 trade
                       CancelOrder(1)])  # 5 rejected
    journal.close()
    assert [e.seq for e in read_journal(journal_path(tmp_path)).entries] == [1, 2, 3, 5]


def test_subscribers_see_events_after_the_batch_is_written(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, FsyncPolicy("never"))
    sizes: list[int] = []
    journal.engine.subscribe(lambda events: sizes.append(os.path.getsize(journal_path(tmp_path))))
    journal.apply_all(listing_and_orders(3))
    assert sizes == [journal.offset] and journal.records == 4
    journal.close()


@pytest.mark.parametrize(("policy", "batches", "fsyncs"), [
    ("never", 6, 0), ("batch", 6, 6), ("records:4", 6, 3), ("bytes:1", 6, 6), ("bytes:100000", 6, 0),
])
def test_fsync_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str, batches: int,
                      fsyncs: int) -> None:
    journal = Journal.open(tmp_path, FsyncPolicy.parse(policy))
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    cmds = listing_and_orders(2 * batches - 1)
    for i in range(batches):
        journal.apply_all(cmds[2 * i:2 * i + 2])
    assert len(calls) == fsyncs
    journal.close()


def test_fsync_policy_parse() -> None:
    assert FsyncPolicy.parse("records:10") == FsyncPolicy("records", 10)
    for bad in ("sometimes", "bytes", "records:0", "batch:3"):
        with pytest.raises(ValueError, match="fsync policy"):
            FsyncPolicy.parse(bad)


def test_an_unencodable_command_changes_nothing(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    journal.apply(ListInstrument("A", UnitType.JPA))
    before = (journal.engine.state_hash(), journal.offset)
    with pytest.raises(TypeError):
        journal.apply_all([NewOrder(1, "a", "A", Side.BUY, 5, price=10),
                           NewOrder(2, object(), "A", Side.BUY, 5, price=10)])  # type: ignore[arg-type]
    assert (journal.engine.state_hash(), journal.offset) == before
    journal.close()


def test_reopen_appends(tmp_path: Path) -> None:
    cmds = listing_and_orders(30)
    write_journal(tmp_path, cmds[:10], batch=3)
    journal = Journal.open(tmp_path)
    assert journal.records == 10
    journal.apply_all(cmds[10:])
    journal.close()
    assert recover(tmp_path).engine.state_hash() == run(cmds)[0].state_hash()


# -- torn and corrupted journals -------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5, -1])
def test_torn_last_record_is_dropped_with_a_warning(tmp_path: Path, cut: int) -> None:
    cmds = listing_and_orders(20)
    write_journal(tmp_path, cmds)
    offsets = record_offsets(tmp_path)
    path = journal_path(tmp_path)
    size = path.stat().st_size
    last = offsets[-1]
    end = last + cut if cut > 0 else size + cut
    with open(path, "r+b") as f:
        f.truncate(end)
    with pytest.warns(TornRecordWarning, match=f"byte offset {last}"):
        rec = recover(tmp_path)
    assert rec.records == len(cmds) - 1 and rec.offset == last and rec.torn == end - last
    assert rec.engine.state_hash() == run(cmds[:-1])[0].state_hash()
    # opening truncates the torn bytes; the next record follows the last whole one
    with pytest.warns(TornRecordWarning):
        journal = Journal.open(tmp_path)
    assert path.stat().st_size == last
    journal.apply(cmds[-1])
    journal.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert recover(tmp_path).engine.state_hash() == run(cmds)[0].state_hash()


def test_damaged_last_record_and_zero_tail_are_torn(tmp_path: Path) -> None:
    cmds = listing_and_orders(5)
    write_journal(tmp_path, cmds)
    path = journal_path(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last record's body checksum fails, and nothing follows it
    path.write_bytes(bytes(data) + bytes(100))  # ...then zeros, as a power loss may leave
    with pytest.warns(TornRecordWarning):
        rec = recover(tmp_path)
    assert rec.records == len(cmds) - 1


@pytest.mark.parametrize("where", ["body", "header", "length"])
def test_corrupted_record_in_the_middle_stops_recovery(tmp_path: Path, where: str) -> None:
    cmds = listing_and_orders(20)
    write_journal(tmp_path, cmds)
    offsets = record_offsets(tmp_path)
    bad = offsets[7]
    path = journal_path(tmp_path)
    data = bytearray(path.read_bytes())
    data[{"body": bad + HEADER_SIZE + 9, "header": bad + 5, "length": bad + 2}[where]] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupted, match=f"byte offset {bad}") as info:
        recover(tmp_path)
    assert info.value.offset == bad and isinstance(info.value, PersistenceError)
    with pytest.raises(JournalCorrupted):
        Journal.open(tmp_path)
    assert path.read_bytes() == bytes(data)  # nothing was truncated


def test_a_record_with_the_wrong_seq_is_a_mismatch(tmp_path: Path) -> None:
    cmds = listing_and_orders(3)
    write_journal(tmp_path, cmds)
    path = journal_path(tmp_path)
    with open(path, "ab") as f:
        f.write(frame(99, encode_command(CancelOrder(1))))
    with pytest.raises(JournalMismatch, match="seq 99"):
        recover(tmp_path)


def test_not_a_journal(tmp_path: Path) -> None:
    journal_path(tmp_path).write_bytes(b"{\"type\": \"new\"}\n")
    with pytest.raises(JournalMismatch, match="not a carbonbook journal"):
        recover(tmp_path)


def test_a_journal_killed_as_it_was_created(tmp_path: Path) -> None:
    journal_path(tmp_path).write_bytes(MAGIC[:3])
    assert recover(tmp_path).records == 0
    with Journal.open(tmp_path) as journal:
        journal.apply(ListInstrument("A", UnitType.JPA))
    assert recover(tmp_path).records == 1
