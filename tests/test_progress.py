"""The replay progress line: paced, once per batch, silent off a terminal, events unchanged."""

from __future__ import annotations

import io
import itertools
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from carbonbook.core.engine import Engine
from carbonbook.operations import cli
from carbonbook.operations.progress import Progress
from carbonbook.operations.replay import replay

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "jvets-2010.jsonl"


class Clock:
    def __init__(self, *ticks: float) -> None:
        self.ticks = list(ticks)
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.ticks.pop(0) if len(self.ticks) > 1 else self.ticks[0]


def test_line_with_and_without_a_size() -> None:
    p = Progress(io.StringIO(), 4 << 20, clock=Clock(0.0))
    line = p.line(100_000, 1 << 20, 2.0)
    assert "[#####...............]  25%" in line
    assert "100,000 records" in line and "50,000 rec/s" in line and line.endswith("ETA 0:06")
    p = Progress(io.StringIO(), None, clock=Clock(0.0))
    line = p.line(100_000, 3 << 20, 2.0)
    assert "3.0 MiB" in line and "ETA" not in line and "[" not in line and "%" not in line
    assert Progress(io.StringIO(), 0, clock=Clock(0.0)).line(1, 1, 1.0).count("ETA") == 0
    assert Progress(io.StringIO(), 100, clock=Clock(0.0)).line(1, 1, 7200.0).endswith("ETA 198:00:00")


def test_paced_and_erased() -> None:
    out = io.StringIO()
    clock = Clock(0.0, 0.1, 0.6, 0.7, 0.86, 5.0)
    p = Progress(out, 1000, clock=clock)  # reads 0.0
    p.update(1, 1)     # 0.1: before the delay, nothing
    assert out.getvalue() == ""
    p.update(2, 2)     # 0.6: drawn
    p.update(3, 3)     # 0.7: within the interval
    p.update(4, 4)     # 0.86: drawn
    p.update(5, 5)     # 5.0: drawn
    assert out.getvalue().count("\r") == 3
    p.close()
    assert out.getvalue().endswith("\r\x1b[K")
    quiet = io.StringIO()
    p = Progress(quiet, 1000, clock=Clock(0.0))
    p.update(1, 1)
    p.close()  # never drawn: nothing to erase
    assert quiet.getvalue() == ""


def test_replay_calls_the_hook_once_per_batch_with_exact_bytes() -> None:
    data = EXAMPLE.read_bytes()
    calls: list[tuple[int, int]] = []
    out: list[bytes] = []
    tally = replay(io.BytesIO(data), Engine(), out.append, progress=lambda r, b: calls.append((r, b)))
    assert calls == [(4000, len(data))]  # one 4 MiB chunk: one batch
    plain: list[bytes] = []
    replay(io.BytesIO(data), Engine(), plain.append)
    assert b"".join(out) == b"".join(plain) and tally.records == 4000


def test_replay_hook_for_msgpack_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    import msgspec

    from carbonbook import codec
    from carbonbook.operations.workload import busy

    good = busy(3500)
    data = b"".join(msgspec.msgpack.encode(o) for o in good)
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(codec, "_MSGPACK_BATCH", 1000)
    replay(io.BytesIO(data), Engine(), lambda b: None, msgpack=True,
           progress=lambda r, b: calls.append((r, b)))
    assert [r for r, _ in calls] == [min(n, len(good)) for n in range(1000, len(good) + 1000, 1000)]
    assert calls[-1][1] == len(data)
    assert all(a[1] < b[1] for a, b in itertools.pairwise(calls))


@pytest.mark.parametrize("args", [[], ["--progress", "always", "--quiet"], ["--progress", "never"]])
def test_silent_without_a_terminal(tmp_path: Path, args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "carbonbook", "replay", str(EXAMPLE), "--out",
                           str(tmp_path / "e.jsonl"), *args], capture_output=True, check=True)
    assert b"\r" not in proc.stderr and b"\x1b" not in proc.stderr


def test_events_identical_with_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["replay", str(EXAMPLE), "--out", str(tmp_path / "a.jsonl"), "--quiet"]) == 0
    # delay 0: draw after every batch
    original = Progress.__init__

    def eager(self: Progress, *a: object, **k: object) -> None:
        k["delay"] = 0.0
        k["interval"] = 0.0
        original(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Progress, "__init__", eager)
    assert cli.main(["replay", str(EXAMPLE), "--out", str(tmp_path / "b.jsonl"), "--progress",
                     "always"]) == 0
    err = capsys.readouterr().err
    assert "\rreplay  [####################] 100%      4,000 records" in err
    assert "\r\x1b[K" in err and err.rstrip().splitlines()[-1].strip()  # erased, then the summary
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_terminal_shows_progress_and_pipe_has_no_eta(tmp_path: Path) -> None:
    """On a real terminal (a pty) the line appears by default; from a pipe it has no ETA."""
    code = ("import sys, carbonbook.operations.progress as p; "
            "init = p.Progress.__init__; "
            "p.Progress.__init__ = lambda s, *a, **k: init(s, *a, **{**k, 'delay': 0.0}); "
            "from carbonbook.operations.cli import main; sys.exit(main(sys.argv[1:]))")
    for source, stdin in ((str(EXAMPLE), None), ("-", EXAMPLE)):
        leader, follower = pty.openpty()
        proc = subprocess.run([sys.executable, "-c", code, "replay", source, "--out",
                               str(tmp_path / "e.jsonl")],
                              input=stdin.read_bytes() if stdin else b"", stderr=follower,
                              stdout=subprocess.DEVNULL, check=True)
        os.close(follower)
        err = b""
        try:
            while chunk := os.read(leader, 65536):
                err += chunk
        except OSError:
            pass
        os.close(leader)
        assert proc.returncode == 0
        assert b"4,000 records" in err and b"replayed 4,000 records" in err
        if stdin:
            assert b"ETA" not in err and b"KiB" in err
        else:
            assert b"ETA" in err and b"100%" in err
