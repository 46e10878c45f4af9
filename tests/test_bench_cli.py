"""`carbonbook bench`: runs the workload harness and prints rate and latency percentiles."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from carbonbook import workload
from carbonbook.cli import EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("args", [["--messages", "3000", "--runs", "1"],
                                  ["--workload", "deep", "--resting", "2000", "--messages", "1000",
                                   "--runs", "2", "--seed", "3"]])
def test_bench_prints_rate_and_percentiles(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *args]) == EXIT_OK
    out = capsys.readouterr().out
    assert re.search(r"^throughput [\d,]+ messages/s", out, re.M)
    assert re.search(r"^latency    p50 [\d.]+ us  p99 [\d.]+ us  p99\.9 [\d.]+ us", out, re.M)
    n = "1,000 messages in" if "deep" in args else "3,001 messages in"  # busy includes the listing
    assert n in out


def test_bench_usage_errors() -> None:
    assert main(["bench", "--messages", "0"]) == EXIT_USAGE
    assert main(["bench", "--workload", "nope"]) == EXIT_USAGE


def test_workload_is_deterministic() -> None:
    assert workload.busy(500, 2) == workload.busy(500, 2)
    assert workload.deep(100, 50, 1)[:101] == workload.deep_resting(100, 1)
    assert workload.percentile([1, 3, 5], 50) == 3


def test_bench_throughput_script_runs() -> None:
    proc = subprocess.run([sys.executable, "throughput.py", "--workload", "busy", "--messages", "2000",
                           "--runs", "1"], cwd=ROOT / "bench", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "latency mix   p50" in proc.stdout
