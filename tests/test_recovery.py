"""Snapshots and recovery: state round trips, snapshot + journal tail, and real processes killed
with SIGKILL at random points."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbonbook import Command, Engine, Event, ListInstrument, NewOrder, Phase, SetPhase, Side, UnitType
from carbonbook.core.snapshot import SnapshotFile, decode_snapshot, encode_snapshot, read_snapshot
from carbonbook.errors import SnapshotError, TornRecordWarning
from carbonbook.operations.cli import EXIT_IO, EXIT_OK, EXIT_USAGE, main
from carbonbook.operations.journal import FsyncPolicy, Journal, log_commands, recover
from test_journal import SETTINGS, journal_path, listing_and_orders, phased_streams, run

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "examples" / "jvets-2010.jsonl"


def log_commands_of(path: Path) -> list[Command]:
    with open(path, "rb") as f:
        return list(log_commands(f, False))  # type: ignore[arg-type]


JVETS = log_commands_of(LOG)


def check_round_trip(commands: list[Command], cut: int, batch: int = 50) -> None:
    """Stop after ``cut`` commands, restore a copy from the exported state (through the snapshot
    file encoding), and check state hash, queries and every later event."""
    original, _ = run(commands[:cut], batch)
    snap = decode_snapshot(encode_snapshot(SnapshotFile(cut, 0, original.export_state())))
    copy = Engine.from_state(snap.state)
    copy.check()
    assert copy.state_hash() == original.state_hash()
    assert copy.export_state() == original.export_state()
    assert copy.snapshot() == original.snapshot() and copy.next_seq == original.next_seq
    for symbol in original.symbols:
        assert copy.phase(symbol) == original.phase(symbol)
        assert copy.indicative(symbol) == original.indicative(symbol)
        assert type(copy.book(symbol)) is type(original.book(symbol))
    rest = commands[cut:]
    for i in range(0, len(rest), batch):
        assert copy.apply_all(rest[i:i + batch]) == original.apply_all(rest[i:i + batch])
    assert copy.state_hash() == original.state_hash()
    copy.check()


# -- snapshot round trips -------------------------------------------------------------------


@pytest.mark.parametrize("cut", [0, 1, 6, 500, 1777, 3000, len(JVETS)])
def test_round_trip_on_the_example_log(cut: int) -> None:
    check_round_trip(JVETS, cut)


@SETTINGS
@given(phased_streams(), st.data())
def test_round_trip_on_generated_streams(commands: list[Command], data: st.DataObject) -> None:
    check_round_trip(commands, data.draw(st.integers(0, len(commands))), batch=3)


def test_round_trip_in_a_call_with_market_orders() -> None:
    cmds: list[Command] = [ListInstrument("X", UnitType.JPA, tick=10, band=5000, reference=1000,
                                          phase=Phase.CALL)]
    cmds += [NewOrder(i, "abcd"[i % 4], "X", Side.BUY if i % 2 else Side.SELL, 3 + i,
                      price=None if i % 5 == 0 else 1000 + 10 * (i % 3 - 1),
                      order_type="market" if i % 5 == 0 else "limit",  # type: ignore[arg-type]
                      tif="ioc" if i % 7 == 3 else "gtc")  # type: ignore[arg-type]
             for i in range(20)]
    cmds += [SetPhase("X", Phase.HALTED), SetPhase("X", Phase.CONTINUOUS, 1010)]
    for cut in range(len(cmds) + 1):
        check_round_trip(cmds, cut, batch=1)
    state = run(cmds[:21])[0].export_state()
    assert state.books[0].market_bids and state.books[0].expiring and state.books[0].pending


def test_state_hash_tells_states_apart() -> None:
    a, _ = run(listing_and_orders(10))
    b, _ = run(listing_and_orders(11))
    assert a.state_hash() != b.state_hash()
    assert a.state_hash() == run(listing_and_orders(10), batch=1)[0].state_hash()


def test_a_bad_snapshot_is_refused(tmp_path: Path) -> None:
    data = bytearray(encode_snapshot(SnapshotFile(1, 8, run(listing_and_orders(4))[0].export_state())))
    data[-3] ^= 1
    with pytest.raises(SnapshotError, match="checksum"):
        decode_snapshot(bytes(data))
    with pytest.raises(SnapshotError, match="magic"):
        decode_snapshot(b"nonsense")


# -- recovery from snapshot + journal tail -----------------------------------------------------


def test_recovery_from_snapshots_and_tail(tmp_path: Path) -> None:
    cmds = JVETS
    journal = Journal.open(tmp_path, FsyncPolicy("never"), keep=3)
    for i in range(0, len(cmds), 100):
        journal.apply_all(cmds[i:i + 100])
        if i % 1000 == 900 and i < 3000:
            journal.snapshot()
    tail = journal.records
    journal.close()
    rec = recover(tmp_path)
    assert rec.snapshot is not None and rec.replayed == tail - 3000
    assert rec.engine.state_hash() == run(cmds)[0].state_hash()
    assert len(list(tmp_path.glob("snapshot-*.cbs"))) == 3


def test_a_damaged_snapshot_falls_back_to_an_older_one(tmp_path: Path) -> None:
    cmds = listing_and_orders(60)
    journal = Journal.open(tmp_path)
    journal.apply_all(cmds[:20])
    first = journal.snapshot()
    journal.apply_all(cmds[20:40])
    latest = journal.snapshot()
    journal.apply_all(cmds[40:])
    journal.close()
    latest.write_bytes(latest.read_bytes()[:-5])
    (tmp_path / "snapshot-0000000000000050.cbs.tmp").write_bytes(b"CBSNAP01 half-written")
    with pytest.warns(TornRecordWarning, match="skipping snapshot"):
        rec = recover(tmp_path)
    assert rec.snapshot == first and rec.replayed == len(cmds) - 20
    assert rec.engine.state_hash() == run(cmds)[0].state_hash()
    with pytest.warns(TornRecordWarning):
        Journal.open(tmp_path).close()
    assert not list(tmp_path.glob("*.tmp"))


def test_journaling_an_engine_from_its_current_state(tmp_path: Path) -> None:
    cmds = listing_and_orders(30)
    engine, _ = run(cmds[:10])
    with Journal.open(tmp_path, engine=engine) as journal:
        assert journal.engine is engine and journal.records == 0
        journal.apply_all(cmds[10:])
    rec = recover(tmp_path)
    assert rec.snapshot is not None and rec.engine.state_hash() == run(cmds)[0].state_hash()


def test_subsequent_events_after_recovery(tmp_path: Path) -> None:
    cmds = JVETS
    journal = Journal.open(tmp_path, FsyncPolicy("never"))
    journal.apply_all(cmds[:1500])
    journal.snapshot()
    journal.apply_all(cmds[1500:2200])
    journal.close()
    reference, _ = run(cmds[:2200])
    resumed = Journal.open(tmp_path)
    got: list[Event] = []
    expected: list[Event] = []
    for i in range(2200, len(cmds), 300):
        got += resumed.apply_all(cmds[i:i + 300])
        expected += reference.apply_all(cmds[i:i + 300])
    resumed.close()
    assert got == expected
    assert recover(tmp_path).engine.state_hash() == reference.state_hash()


def test_recover_refuses_a_directory_without_a_journal(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``carbonbook recover`` on a typo or an empty directory: a message and exit 1, not an empty state;
    a plain engine's journal with --registry is refused in the same words."""
    for directory in (tmp_path / "typo-dir", tmp_path):
        assert main(["recover", str(directory)]) == EXIT_IO
        assert capsys.readouterr().err == (f"carbonbook: {directory} holds no journal (journal.cbj): check "
                                           "the directory; carbonbook journal LOG DIR writes one\n")
    assert main(["journal", str(LOG), str(tmp_path / "j"), "--batch", "500"]) == EXIT_OK
    capsys.readouterr()
    assert main(["recover", str(tmp_path / "j"), "--registry", "memory:"]) == EXIT_IO
    assert "leave out --registry" in capsys.readouterr().err
    assert main(["journal", str(LOG), str(tmp_path / "j"), "--fsync", "often"]) == EXIT_USAGE
    assert main(["journal", "--help"]) == EXIT_OK
    assert "resumes after the commands DIR holds" in capsys.readouterr().out


# -- real processes, killed -----------------------------------------------------------------------


def replay_process(directory: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen(
        [sys.executable, "-m", "carbonbook.operations.journal", "replay", str(LOG), str(directory),
         "--batch", "16", "--snapshot-every", "400", "--fsync", "batch", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def finish(proc: subprocess.Popen[bytes]) -> dict[str, object]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    summary: dict[str, object] = json.loads(out)
    return summary


def test_sigkill_at_random_points_then_recover() -> None:
    full_engine, _ = run(JVETS, 16)
    full_hash = full_engine.state_hash()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        whole = finish(replay_process(base / "whole"))  # the uninterrupted run, as a process
        assert whole["state_hash"] == full_hash and whole["records"] == len(JVETS)
        final_size = journal_path(base / "whole").stat().st_size
        positions = []
        for seed in range(4):
            rng = random.Random(seed)
            directory = base / f"killed-{seed}"
            threshold = rng.randrange(final_size // 20, final_size * 9 // 10)
            proc = replay_process(directory, "--delay", "0.001")
            path = journal_path(directory)
            while proc.poll() is None and (not path.exists() or path.stat().st_size < threshold):
                time.sleep(rng.uniform(0, 0.004))
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TornRecordWarning)  # a kill may tear the last record
                rec = recover(directory)
            n = rec.records
            positions.append(n)
            reference, _ = run(JVETS[:n], 16)
            assert rec.engine.state_hash() == reference.state_hash(), f"seed {seed} at {n}"
            # the same later events as the uninterrupted run
            assert rec.engine.apply_all(JVETS[n:n + 500]) == reference.apply_all(JVETS[n:n + 500])
            # a new process resumes from the journal and ends in the same state
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                resumed = finish(replay_process(directory))
            assert resumed["resumed_at"] == n
            assert resumed["state_hash"] == full_hash and resumed["records"] == len(JVETS)
            assert recover(directory).engine.state_hash() == full_hash
            assert read_snapshot(max(directory.glob("snapshot-*.cbs"))).records <= len(JVETS)
        assert len(set(positions)) > 1  # the kills landed at different points
