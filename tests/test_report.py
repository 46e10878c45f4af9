"""`carbonbook report`: every figure of a small hand-checked log, with and without the log.

The log (instrument A continuous, instrument B continuous):

====  ======================================================  ===========================
cmd   what                                                    A's book after it
====  ======================================================  ===========================
1, 2  list A and B                                          empty         (one-sided)
3     sell 1: alice 100 @ 1500 (A)                            - / 1500x100  (one-sided)
4     sell 2: carol 50 @ 1510 (A)                             - / 1500      (one-sided)
5     buy 3: bob 60 @ 1490 (A)                                1490 / 1500   spread 10
6     buy 4: dave 30 @ 1500 (A): trade 30 @ 1500 (seq 7)      1490 / 1500   spread 10
7     market buy 5: erin 80 (A): trades 70 @ 1500, 10 @ 1510  1490 / 1510   spread 20
8     cancel 99: unknown_order (no instrument)
9     new 6 at price 0 (A): bad_price (A)
10    modify 3 to 1505 (A)                                    1505 / 1510   spread 5
11    a malformed line (no instrument)
12    sell 7: frank 10 @ 2000 (B)
13    buy 8: gina 10 @ 2000 (B): trade 10 @ 2000              B empty       (one-sided)
14    new 9 for symbol Z: unknown_symbol (no instrument)
====  ======================================================  ===========================

A: 3 trades, volume 110, notional 30*1500 + 70*1500 + 10*1510 = 165,100, VWAP
165,100 / 110 = 1,500.909.. -> 1,500.91; OHLC 1500 / 1510 / 1500 / 1510. Spread samples
10, 10, 20, 5 -> min 5, max 20, mean 45 / 4 = 11.25, last 5; 3 one-sided (after the
listing and commands 3 and 4; rejected commands are not sampled). At the end: bid
1505 x 60, ask 1510 x 40.
B: 1 trade, volume 10, VWAP 2,000.00, OHLC all 2000; samples: 3 one-sided (listing,
12, 13).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import get_args

import msgspec
import pytest

from carbonbook import CloseAuction, OpenAuction, PlaceBid, UnitType
from carbonbook.commands import Command
from carbonbook.core.engine import Engine
from carbonbook.events import (
    RENAMED,
    Event,
    InstrumentListed,
    ReadableEvent,
    SettlementFailure,
    TradeSettled,
    current,
)
from carbonbook.operations.cli import EXIT_IO, EXIT_OK, EXIT_USAGE, main
from carbonbook.operations.replay import replay
from carbonbook.operations.report import ReportError, build, format_text, vwap_text
from carbonbook.registry import SettlementRecord

ROWS: list[object] = [
    {"type": "instrument", "symbol": "A", "unit": "JPA"},
    {"type": "instrument", "symbol": "B", "unit": "EUA"},
    {"type": "new", "id": 1, "account": "alice", "symbol": "A", "side": "sell", "qty": 100, "price": 1500,
     "ts": 1_000_000_000},
    {"type": "new", "id": 2, "account": "carol", "symbol": "A", "side": "sell", "qty": 50, "price": 1510,
     "ts": 2_000_000_000},
    {"type": "new", "id": 3, "account": "bob", "symbol": "A", "side": "buy", "qty": 60, "price": 1490,
     "ts": 3_000_000_000},
    {"type": "new", "id": 4, "account": "dave", "symbol": "A", "side": "buy", "qty": 30, "price": 1500,
     "ts": 4_000_000_000},
    {"type": "new", "id": 5, "account": "erin", "symbol": "A", "side": "buy", "qty": 80,
     "order_type": "market", "ts": 5_000_000_000},
    {"type": "cancel", "id": 99},
    {"type": "new", "id": 6, "account": "bob", "symbol": "A", "side": "buy", "qty": 10, "price": 0},
    {"type": "modify", "id": 3, "price": 1505},
    "not json",
    {"type": "new", "id": 7, "account": "frank", "symbol": "B", "side": "sell", "qty": 10, "price": 2000},
    {"type": "new", "id": 8, "account": "gina", "symbol": "B", "side": "buy", "qty": 10, "price": 2000},
    {"type": "new", "id": 9, "account": "gina", "symbol": "Z", "side": "buy", "qty": 10, "price": 2000},
]


def _log() -> bytes:
    return b"".join((row.encode() if isinstance(row, str) else msgspec.json.encode(row)) + b"\n"
                    for row in ROWS)


def _events(log: bytes) -> bytes:
    out: list[bytes] = []
    replay(io.BytesIO(log), Engine(), out.append)
    return b"".join(out)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "day.jsonl"
    log.write_bytes(_log())
    events = tmp_path / "events.jsonl"
    events.write_bytes(_events(_log()))
    return log, events


def test_figures_from_events_alone(files: tuple[Path, Path]) -> None:
    _, events = files
    with open(events, "rb") as f:
        r = build(f)
    assert not r.book
    assert r.events == 18
    assert list(r.instruments) == ["A", "B"]
    a, b = r.instruments["A"], r.instruments["B"]
    assert (a.trades, a.volume, a.notional) == (3, 110, 165_100)
    assert (a.open, a.high, a.low, a.close) == (1500, 1510, 1500, 1510)
    assert a.trade_seq == [7, 9, 10]
    assert a.trade_price == [1500, 1500, 1510] and a.trade_qty == [30, 70, 10]
    assert a.trade_ts == [None, None, None]  # the events carry no ts
    assert (b.trades, b.volume, b.notional, b.open, b.high, b.low, b.close) == (
        1, 10, 20_000, 2000, 2000, 2000, 2000)
    assert a.spread is None and not a.rejections and not a.bids
    assert r.rejections == {"unknown_order": 1, "bad_price": 1, "malformed": 1, "unknown_symbol": 1}


OLD_TAGS = {"instrument_listed": "listed", "trade_settled": "settled",
            "settlement_failure": "settlement_failed", "auction_cleared": "auction_result"}


def test_an_event_is_tagged_with_its_class_name() -> None:
    """One name per thing: every event's tag is its class name in snake case, and no other tagged
    struct of the engine or the registry has it; the old tags read as the renamed events."""
    classes = get_args(Event)
    for cls in classes:
        assert cls.__struct_config__.tag == re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
    tags = [c.__struct_config__.tag for c in (*classes, *get_args(SettlementRecord), *get_args(Command))]
    assert len(tags) == len(set(tags))
    assert {old.__struct_config__.tag: new.__struct_config__.tag for old, new in RENAMED.items()} == {
        old: new for new, old in OLD_TAGS.items()}


def test_events_under_their_old_tags_still_report(files: tuple[Path, Path], tmp_path: Path) -> None:
    """An events file written before the tags were renamed gives the same report."""
    _, events = files
    lines = events.read_bytes().splitlines(keepends=True)
    assert b'"type":"instrument_listed"' in lines[0]
    old = tmp_path / "old.jsonl"
    old.write_bytes(b"".join(line.replace(b'"type":"instrument_listed"', b'"type":"listed"') for line in lines))
    with open(events, "rb") as f, open(old, "rb") as g:
        assert format_text(build(g)) == format_text(build(f))
    engine = Engine()
    *_, cleared = engine.apply_all([OpenAuction("A", UnitType.EUA, 10, "gov"), PlaceBid("A", 1, "x", 100, 10),
                                    CloseAuction("A")])
    decoder = msgspec.json.Decoder(ReadableEvent)
    for event in (InstrumentListed(1, "A", UnitType.JPA, 1, 1), TradeSettled(2, 1, 3),
                  SettlementFailure(3, 1, "account_blocked", "x"), cleared):
        tag = str(event.__struct_config__.tag)
        new_type, old_type = f'"type":"{tag}"'.encode(), f'"type":"{OLD_TAGS[tag]}"'.encode()
        old = msgspec.json.encode(event).replace(new_type, old_type)
        assert current(decoder.decode(old)) == event


def test_figures_with_the_log(files: tuple[Path, Path]) -> None:
    log, events = files
    with open(events, "rb") as f, open(log, "rb") as g:
        r = build(f, g)
    assert r.book and r.events == 18
    a, b = r.instruments["A"], r.instruments["B"]
    assert (a.trades, a.volume, a.notional) == (3, 110, 165_100)
    assert (a.open, a.high, a.low, a.close) == (1500, 1510, 1500, 1510)
    assert a.trade_ts == [4_000_000_000, 5_000_000_000, 5_000_000_000]
    assert a.spread is not None and b.spread is not None
    assert (a.spread.samples, a.spread.one_sided, a.spread.total) == (4, 3, 45)
    assert (a.spread.low, a.spread.high, a.spread.last) == (5, 20, 5)
    assert (b.spread.samples, b.spread.one_sided, b.spread.last) == (0, 3, None)
    assert a.bids == [(1505, 60)] and a.asks == [(1510, 40)]
    assert b.bids == [] and b.asks == []
    assert a.rejections == {"bad_price": 1} and not b.rejections
    assert r.unattributed == {"unknown_order": 1, "malformed": 1, "unknown_symbol": 1}
    assert r.rejections == {"unknown_order": 1, "bad_price": 1, "malformed": 1, "unknown_symbol": 1}


def test_text(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    log, events = files
    assert main(["report", str(events), "--log", str(log)]) == EXIT_OK
    out = capsys.readouterr().out
    assert out == """\
18 events, 2 instruments; book rebuilt from the order log
A
  trades       3
  volume       110
  vwap         1,500.91  (notional 165,100 / volume 110)
  ohlc         1,500 / 1,510 / 1,500 / 1,510
  spread       min 5  mean 11.25  max 20  last 5  (4 two-sided samples, 3 one-sided)
  book at end  bid 1,505 x 60 / ask 1,510 x 40
  rejections   bad_price 1
B
  trades       1
  volume       10
  vwap         2,000.00  (notional 20,000 / volume 10)
  ohlc         2,000 / 2,000 / 2,000 / 2,000
  spread       -  (0 two-sided samples, 3 one-sided)
  book at end  bid - / ask -
  rejections   none
rejections by reason: bad_price 1, malformed 1, unknown_order 1, unknown_symbol 1
  without an instrument: malformed 1, unknown_order 1, unknown_symbol 1
"""
    assert main(["report", str(events)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "spreads and per-instrument rejections need --log" in out
    assert "  vwap         1,500.91  (notional 165,100 / volume 110)\n" in out
    assert "spread" not in out.split("\n", 1)[1]


def test_vwap_rounding() -> None:
    assert vwap_text(165_100, 110) == "1,500.91"
    assert vwap_text(5, 2) == "2.50"
    assert vwap_text(1, 8) == "0.13"  # 0.125 rounds half up
    assert vwap_text(1, 3, places=0) == "0"
    assert vwap_text(0, 0) == "-"


def test_mismatched_log_is_refused(files: tuple[Path, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    _, events = files
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"".join(_log().splitlines(keepends=True)[:-1]))
    with open(events, "rb") as f, open(other, "rb") as g, pytest.raises(ReportError):
        build(f, g)
    assert main(["report", str(events), "--log", str(other)]) == EXIT_IO
    assert "is not what the log replays to" in capsys.readouterr().err


def test_bad_events_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"type": "trade", "seq": 1}\n')
    assert main(["report", str(bad)]) == EXIT_IO
    assert "line 1 is not an event" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.jsonl")]) == EXIT_IO


def test_empty_events(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with open(empty, "rb") as f:
        r = build(f)
    assert r.events == 0 and not r.instruments
    assert format_text(r).endswith("rejections by reason: none")


def test_plot_writes_a_png(files: tuple[Path, Path], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    log, events = files
    for args, name in (([], "events-only.png"), (["--log", str(log)], "with-log.png")):
        out = tmp_path / name
        assert main(["report", str(events), *args, "--plot", str(out)]) == EXIT_OK
        assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert out.stat().st_size > 10_000
        assert capsys.readouterr().err == f"plot written to {out}\n"


def test_progress_is_called_after_each_batch(files: tuple[Path, Path]) -> None:
    """``build(progress=...)`` hears the records and bytes read: of the log with it, else of the events."""
    log, events = files
    for with_log, size in ((False, events.stat().st_size), (True, log.stat().st_size)):
        calls: list[tuple[int, int]] = []
        with open(events, "rb") as ev, open(log, "rb") as lg:
            build(ev, lg if with_log else None, progress=lambda n, b, calls=calls: calls.append((n, b)))
        assert calls and calls[-1][1] == size


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jvets-2010.jsonl"


def test_events_of_a_registry_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A replay with a registry is rebuilt on a registry in memory (--registry), lag and all."""
    events = tmp_path / "ev.jsonl"
    assert main(["replay", str(EXAMPLE), "--registry", "memory:", "--settle-lag", "5",
                 "--out", str(events), "--quiet"]) == EXIT_OK
    capsys.readouterr()
    assert main(["report", str(events), "--log", str(EXAMPLE)]) == EXIT_IO
    assert "with the same --registry options" in capsys.readouterr().err
    assert main(["report", str(events), "--log", str(EXAMPLE), "--registry"]) == EXIT_IO  # lag 0
    capsys.readouterr()
    assert main(["report", str(events), "--log", str(EXAMPLE), "--registry", "--settle-lag", "5"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "book rebuilt from the order log" in text and "insufficient_units" in text


def test_a_registry_url_gives_the_replay_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--registry URL``: the currency and settlement lag come from the registry the replay went into."""
    events, url = tmp_path / "ev.jsonl", f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["replay", str(EXAMPLE), "--registry", url, "--settle-lag", "5", "--out", str(events),
                 "--quiet"]) == EXIT_OK
    capsys.readouterr()
    assert main(["report", str(events), "--log", str(EXAMPLE), "--registry", url]) == EXIT_OK
    assert "book rebuilt from the order log" in capsys.readouterr().out
    report = ["report", str(events), "--log", str(EXAMPLE), "--registry"]
    assert main([*report, url, "--settle-lag", "0"]) == EXIT_IO  # the events were made with lag 5
    assert main([*report, "nowhere"]) == EXIT_USAGE
    assert "not a registry URL" in capsys.readouterr().err
