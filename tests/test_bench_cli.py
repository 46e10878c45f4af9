"""`carbonbook bench`: times the yardstick and each core in one run and prints ratios."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from carbonbook import core as cores
from carbonbook.operations import workload
from carbonbook.operations.cli import EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parent.parent

FAKE_YARDSTICK = '''
def refbook_rate(path, repeats=3):
    with open(path, "rb") as f:
        n = sum(1 for _ in f)
    return 1000.0, 0, n, 0
'''


@pytest.fixture
def yardstick(tmp_path: Path) -> str:
    """A yardstick that rates every log at 1,000 messages/s, so every ratio is rate / 1,000."""
    path = tmp_path / "yardstick.py"
    path.write_text(FAKE_YARDSTICK)
    return str(path)


def test_bench_prints_and_writes_ratios_per_core(yardstick: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "bench.json"
    assert main(["bench", "--messages", "3000", "--runs", "1", "--yardstick", yardstick,
                 "--json", str(out_json)]) == EXIT_OK
    out = capsys.readouterr().out
    for core in cores.CORES:
        row = re.search(rf"^busy +{core} +3,001 +([\d,]+) +([\d.]+) +([\d,]+) +([\d.]+) +[\d.]+ +[\d.]+",
                        out, re.M)
        assert row, out
        rate, ratio = float(row[1].replace(",", "")), float(row[2])
        assert ratio == pytest.approx(rate / 1000, rel=0.01)
    report = json.loads(out_json.read_text())
    assert report["machine"]["cpu"] and report["machine"]["python"] == sys.version.split()[0]
    assert {r["core"] for r in report["results"]} == set(cores.CORES)
    for r in report["results"]:
        assert r["workload"] == "busy" and r["yardstick"] == 1000.0
        assert r["ratios"]["apply_all"] == pytest.approx(r["apply_all"] / 1000)
        assert 0 < r["p50_ns"] <= r["p99_ns"] <= r["p999_ns"]


def test_bench_deep_and_auction(yardstick: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--workload", "deep", "--resting", "2000", "--messages", "1000", "--runs", "1",
                 "--core", "pure", "--yardstick", yardstick]) == EXIT_OK
    out = capsys.readouterr().out
    assert re.search(r"^deep +pure +3,001 .* \d+ B/resting order; mix alone [\d,]+/s apply", out, re.M), out
    assert main(["bench", "--workload", "auction", "--messages", "2500", "--runs", "1", "--core", "pure",
                 "--yardstick", yardstick]) == EXIT_OK
    assert re.search(r"^auction +pure +2,501 ", capsys.readouterr().out, re.M)


def test_bench_without_a_yardstick_prints_rates_only(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("carbonbook.operations.benchmark.find_yardstick", lambda path=None: None)
    assert main(["bench", "--messages", "500", "--runs", "1", "--core", "pure"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "yardstick not found: rates only" in out and re.search(r"^busy +pure +501 ", out, re.M)


def test_bench_usage_errors() -> None:
    assert main(["bench", "--messages", "0"]) == EXIT_USAGE
    assert main(["bench", "--workload", "nope"]) == EXIT_USAGE
    assert main(["bench", "--core", "nope"]) == EXIT_USAGE


def test_workloads_are_deterministic() -> None:
    assert workload.busy(500, 2) == workload.busy(500, 2)
    assert workload.auction(2500, 2) == workload.auction(2500, 2)
    assert workload.deep(100, 50, 1)[:101] == workload.deep_resting(100, 1)
    assert workload.percentile([1, 3, 5], 50) == 3


def test_bench_throughput_script_runs() -> None:
    proc = subprocess.run([sys.executable, "throughput.py", "--workload", "busy", "--messages", "2000",
                           "--runs", "1"], cwd=ROOT / "bench", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^busy +\w+ +2,001 ", proc.stdout, re.M), proc.stdout


def test_bench_venue_against_the_bare_engine(yardstick: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--workload", "venue", "--messages", "2000", "--runs", "1", "--core", "pure",
                 "--yardstick", yardstick]) == EXIT_OK
    out = capsys.readouterr().out
    assert re.search(r"^busy +pure +2,001 ", out, re.M), out
    row = re.search(r"^venue +pure +2,001 +([\d,]+) .* venue/engine ([\d.]+) apply, ([\d.]+) apply_all$",
                    out, re.M)
    assert row, out
    assert float(row[2]) > 0 and float(row[3]) > 0  # (how fast is bench/'s to say, not a test's)
