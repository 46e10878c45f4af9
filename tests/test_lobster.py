"""LOBSTER import: time parsing, a hand-made book with every message type, the CLI, and the
whole AMZN sample day, whose orderbook file the replayed log must reproduce row by row."""

from __future__ import annotations

import gzip
import io
import os
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import msgspec
import pytest

from carbonbook import Engine, Side, TimeInForce
from carbonbook.codec import json_decoder
from carbonbook.commands import CancelOrder, Command, ListInstrument, ModifyOrder, NewOrder
from carbonbook.events import Cancelled, Rejected
from carbonbook.operations.cli import main
from carbonbook.operations.lobster import (
    DEFAULT_UNIT,
    DUMMY_ASK,
    DUMMY_BID,
    SYNTHETIC_BASE,
    TAKER_ACCOUNT,
    TAKER_BASE,
    LobsterFormatError,
    LobsterImport,
    Message,
    convert,
    midnight_ns,
    parse_name,
    parse_time,
    read_messages,
    read_orderbook,
    write_log,
)

DATA = Path(os.environ.get("CARBONBOOK_LOBSTER_DATA", Path(__file__).resolve().parent / "data" / "lobster"))
AMZN = "AMZN_2012-06-21_34200000_57600000_{}_5.csv.gz"


def book_row(engine: Engine, symbol: str, levels: int) -> list[int]:
    """The engine's top levels in LOBSTER's orderbook layout, padded with LOBSTER's dummies."""
    book = engine.book(symbol)
    asks = [book.asks.levels[k] for k in book.asks.keys[:-levels - 1:-1]]
    bids = [book.bids.levels[k] for k in book.bids.keys[:-levels - 1:-1]]
    row: list[int] = []
    for i in range(levels):
        row += [asks[i].price, asks[i].qty] if i < len(asks) else [DUMMY_ASK, 0]
        row += [bids[i].price, bids[i].qty] if i < len(bids) else [DUMMY_BID, 0]
    return row


def replay_rows(result: LobsterImport, commands: Sequence[Command], symbol: str,
                levels: int) -> tuple[list[list[int]], Counter[str]]:
    """Apply ``commands`` message by message; the book's row after each, and the events by kind."""
    engine = Engine()
    rows: list[list[int]] = []
    events: Counter[str] = Counter()
    start = 0
    for end in result.ends:
        for e in engine.apply_all(commands[start:end]):
            if isinstance(e, Rejected):
                events[f"rejected {e.reason}"] += 1
            elif isinstance(e, Cancelled):
                events[f"cancelled {e.reason}"] += 1
            else:
                events[type(e).__name__] += 1
        start = end
        rows.append(book_row(engine, symbol, levels))
    engine.check()
    return rows, events


# -- time and names ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "ns"), [
    ("34200", 34_200_000_000_000),
    ("34200.5", 34_200_500_000_000),
    ("34200.18960767", 34_200_189_607_670),
    ("57599.958244616", 57_599_958_244_616),
    ("43002.632812672004", 43_002_632_812_672),  # in the AMZN file: float noise past nanoseconds
    ("1.0000000005", 1_000_000_001),  # half a nanosecond rounds up
    ("1.00000000049", 1_000_000_000),
    ("0.9999999999", 1_000_000_000),
])
def test_parse_time_is_exact(text: str, ns: int) -> None:
    assert parse_time(text) == ns


@pytest.mark.parametrize("text", ["", ".5", "5.", "-1.5", "1e3", "1.2.3", " 1", "١٢"])
def test_parse_time_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_file_names_and_midnight() -> None:
    name = parse_name("/data/AMZN_2012-06-21_34200000_57600000_message_5.csv.gz")
    assert name is not None and (name.ticker, name.day) == ("AMZN", date(2012, 6, 21))
    assert parse_name("amzn.csv") is None
    assert midnight_ns(date(2012, 6, 21)) == 1_340_251_200 * 10**9  # 04:00 UTC: New York is on EDT
    assert midnight_ns(date(2012, 1, 3)) == 1_325_566_800 * 10**9  # 05:00 UTC in winter


# -- a hand-made book -------------------------------------------------------------------

# Two levels. Before the file: asks 101 x10, 102 x5, 103 x7; bids 99 x4, 98 x6, 97 x3 (the
# third levels are beyond the window, so only the orderbook file can reveal them).
SMALL_MESSAGES = """\
34200.000000001,1,1,5,101,-1
34200.5,4,77,10,101,-1
34200.75,4,1,5,101,-1
34201.123456789,2,88,2,99,1
34201.1234567891,5,0,3,100,1
34202,1,2,8,100,1
34203,3,89,2,99,1
34300,7,0,0,-1,-1
34301,3,2,8,100,1
34302,1,3,10,102,-1
34303,2,3,4,102,-1
34304,4,3,6,102,-1
34305,3,66,5,102,-1
"""
# after each message; the 98 level loses 4 while it is out of view (messages 5 to 6)
SMALL_ORDERBOOK = """\
101,15,99,4,102,5,98,6
101,5,99,4,102,5,98,6
102,5,99,4,103,7,98,6
102,5,99,2,103,7,98,6
102,5,99,2,103,7,98,6
102,5,100,8,103,7,99,2
102,5,100,8,103,7,98,2
102,5,100,8,103,7,98,2
102,5,98,2,103,7,97,3
102,15,98,2,103,7,97,3
102,11,98,2,103,7,97,3
102,5,98,2,103,7,97,3
103,7,98,2,9999999999,0,97,3
"""


def _small(tmp_path: Path, gz: bool = False) -> tuple[Path, Path]:
    messages = tmp_path / "TEST_2012-06-21_34200000_57600000_message_2.csv"
    orderbook = tmp_path / "TEST_2012-06-21_34200000_57600000_orderbook_2.csv"
    messages.write_text(SMALL_MESSAGES)
    if gz:
        orderbook = orderbook.with_name(orderbook.name + ".gz")
        orderbook.write_bytes(gzip.compress(SMALL_ORDERBOOK.encode()))
    else:
        orderbook.write_text(SMALL_ORDERBOOK)
    return messages, orderbook


def test_small_book_replays_to_every_row(tmp_path: Path) -> None:
    messages_file, orderbook_file = _small(tmp_path, gz=True)
    messages = read_messages(messages_file)
    orderbook = read_orderbook(orderbook_file)
    assert messages[4] == Message(34_201_123_456_789, 5, 0, 3, 100, 1)
    result = convert(messages, orderbook, symbol="TEST", midnight=10**18)
    rows, events = replay_rows(result, result.commands, "TEST", 2)
    assert rows == orderbook
    assert events == Counter({"InstrumentListed": 1, "Accepted": 12, "Trade": 4, "cancelled user": 3,
                              "Modified": 3})
    c = result.commands
    assert c[0] == ListInstrument("TEST", DEFAULT_UNIT, ts=10**18 + 34_200_000_000_001)
    seeds = [s for s in c[1:5] if isinstance(s, NewOrder)]  # row 0 less message 0's 5 at 101
    assert [(s.id, s.side, s.price, s.qty) for s in seeds] == [
        (SYNTHETIC_BASE, Side.SELL, 101, 10), (SYNTHETIC_BASE + 1, Side.SELL, 102, 5),
        (SYNTHETIC_BASE + 2, Side.BUY, 99, 4), (SYNTHETIC_BASE + 3, Side.BUY, 98, 6)]
    assert c[result.ends[0] - 1] == NewOrder(1, "lobster-1", "TEST", Side.SELL, 5, 101,
                                             ts=10**18 + 34_200_000_000_001)
    # message 1: an execution of a seeded order: an IOC buy from the taker at 101
    assert c[result.ends[0]:result.ends[1]] == [NewOrder(TAKER_BASE, TAKER_ACCOUNT, "TEST", Side.BUY, 10, 101,
                                                         tif=TimeInForce.IOC, ts=10**18 + 34_200_500_000_000)]
    # message 2 empties 101: 103 comes into view and is seeded from the row
    assert c[result.ends[2] - 1] == NewOrder(SYNTHETIC_BASE + 4, f"lobster-{SYNTHETIC_BASE + 4}", "TEST",
                                             Side.SELL, 7, 103, ts=10**18 + 34_200_750_000_000)
    # message 3: a partial cancel of an order never seen lowers the seeded bid at 99
    ts = 10**18 + 34_201_123_456_789
    assert c[result.ends[2]:result.ends[3]] == [ModifyOrder(SYNTHETIC_BASE + 2, qty=2, ts=ts)]
    assert result.ends[4] == result.ends[3]  # hidden execution: nothing
    assert result.ends[7] == result.ends[6]  # halt: nothing
    # message 6 brings 98 back into view smaller than it left: the window lowers it
    ts = 10**18 + 34_203 * 10**9
    assert c[result.ends[5]:result.ends[6]] == [CancelOrder(SYNTHETIC_BASE + 2, ts=ts),
                                                ModifyOrder(SYNTHETIC_BASE + 3, qty=2, ts=ts)]
    # message 10 is a partial cancel of a known order: modify to the lower open quantity
    assert c[result.ends[9]:result.ends[10]] == [ModifyOrder(3, qty=6, ts=10**18 + 34_303 * 10**9)]
    # message 11's IOC order meets the order seeded at 102 before LOBSTER's order 3
    assert result.stats["execution traded with another order at its price"] == 1
    assert result.stats["execution traded with the LOBSTER order"] == 1  # message 2
    assert result.stats["reference to an order not in the file"] == 4  # 77, 88, 89, 66
    assert result.stats["trading halt messages skipped"] == 1
    assert result.stats["window: orders added"] == 2 and result.stats["window: levels lowered"] == 1
    assert "unexplained level differences" not in result.stats


def test_without_orderbook_only_messages_are_converted(tmp_path: Path) -> None:
    messages = read_messages(_small(tmp_path)[0])
    result = convert(messages, symbol="TEST")
    kinds = Counter(type(c).__name__ for c in result.commands)
    # new orders 1, 2, 3; IOC orders for executions 1, 2 and 11; the cancel of 2 and the modify of 3
    assert kinds == Counter({"ListInstrument": 1, "NewOrder": 6, "ModifyOrder": 1, "CancelOrder": 1})
    assert result.stats["reference to an order not in the file"] == 4
    assert len(result.ends) == len(messages)


def test_bad_files_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "m.csv"
    bad.write_text("34200.1,1,1,5,101,-1\n34200.2,1,2,x,101,-1\n")
    with pytest.raises(LobsterFormatError, match=r"m\.csv:2:"):
        read_messages(bad)
    bad.write_text("101,15,99,4\n101,15,99\n")
    with pytest.raises(LobsterFormatError, match=r"m\.csv:2:"):
        read_orderbook(bad)
    with pytest.raises(LobsterFormatError, match="orderbook rows"):
        convert([Message(1, 1, 1, 1, 1, 1)], [[1, 1, 0, 0], [1, 1, 0, 0]])
    with pytest.raises(LobsterFormatError, match="order id"):
        convert([Message(1, 1, SYNTHETIC_BASE, 1, 1, 1)])
    for bad_message in (Message(1, 1, 1, 1, 1, 0), Message(1, 3, 1, 0, 1, 1), Message(1, 4, 1, 1, -1, -1)):
        with pytest.raises(LobsterFormatError, match="message 1: type"):
            convert([bad_message])
    assert convert([Message(1, 7, 0, 0, -1, -1)]).stats["trading halt messages skipped"] == 1


def test_cli_import_then_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messages, orderbook = _small(tmp_path, gz=True)
    log = tmp_path / "test.jsonl"
    assert main(["import-lobster", str(messages), str(orderbook), "-o", str(log)]) == 0
    assert "imported 13 LOBSTER messages" in capsys.readouterr().err
    lines = log.read_bytes().splitlines()
    first = msgspec.json.decode(lines[0])
    assert first == {"type": "instrument", "symbol": "TEST", "unit": "EUA",
                     "ts": midnight_ns(date(2012, 6, 21)) + 34_200_000_000_001}
    assert msgspec.json.decode(lines[1]) == {  # defaults are left out
        "type": "new", "id": SYNTHETIC_BASE, "account": f"lobster-{SYNTHETIC_BASE}", "symbol": "TEST",
        "side": "sell", "qty": 10, "price": 101, "ts": first["ts"]}
    events = tmp_path / "events.jsonl"
    assert main(["replay", str(log), "--out", str(events), "--quiet"]) == 0
    assert b'"rejected"' not in events.read_bytes()
    mp = tmp_path / "test.msgpack"  # the same log as MessagePack gives the same events
    assert main(["import-lobster", str(messages), str(orderbook), "-o", str(mp), "--quiet"]) == 0
    assert mp.read_bytes()[:1] == b"\x84"  # a map of 4: type, symbol, unit, ts
    again = tmp_path / "again.jsonl"
    assert main(["replay", str(mp), "--out", str(again), "--quiet"]) == 0
    assert again.read_bytes() == events.read_bytes()
    assert main(["import-lobster", str(messages), "-o", str(log), "--quiet", "--symbol", "X",
                 "--unit", "JPA", "--date", "2012-01-03"]) == 0
    assert msgspec.json.decode(log.read_bytes().splitlines()[0]) == {
        "type": "instrument", "symbol": "X", "unit": "JPA",
        "ts": midnight_ns(date(2012, 1, 3)) + 34_200_000_000_001}


def test_cli_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    odd = tmp_path / "flow.csv"
    odd.write_text(SMALL_MESSAGES)
    out = str(tmp_path / "x.jsonl")
    assert main(["import-lobster", str(odd), "-o", out]) == 2
    assert "--date" in capsys.readouterr().err
    assert main(["import-lobster", str(odd), "-o", out, "--symbol", "T", "--date", "2012-06-21",
                 "--quiet"]) == 0
    odd.write_text("34200.1,9,1,5,101,-1\n")
    assert main(["import-lobster", str(odd), "-o", out, "--symbol", "T", "--date", "2012-06-21"]) == 1
    assert "unknown type 9" in capsys.readouterr().err
    assert main(["import-lobster", str(tmp_path / AMZN.format("message")), "-o", out]) == 1  # no such file
    assert "No such file" in capsys.readouterr().err
    assert main(["import-lobster", str(odd)]) == 2  # -o is required


# -- the AMZN day ----------------------------------------------------------------------


def test_amzn_day_reproduces_every_orderbook_row() -> None:
    messages = read_messages(DATA / AMZN.format("message"))
    orderbook = read_orderbook(DATA / AMZN.format("orderbook"))
    assert len(messages) == len(orderbook) == 155_935

    # Why levels must be synchronised as they come into view: the message file describes only
    # the top 5 levels. No message lies beyond the previous row's 5th level of its side.
    beyond = sum(1 for m, prev in zip(messages[1:], orderbook, strict=False) if m.type in (1, 2, 3, 4)
                 and (m.price < prev[18] if m.direction == 1 else m.price > prev[16]))
    assert beyond == 0

    result = convert(messages, orderbook, midnight=midnight_ns(date(2012, 6, 21)))
    assert "unexplained level differences" not in result.stats
    out = io.BytesIO()
    write_log(result.commands, out)
    decoded = [json_decoder.decode(line) for line in out.getvalue().splitlines()]
    assert decoded == result.commands  # the log says what convert said

    rows, events = replay_rows(result, decoded, "AMZN", 5)
    matching = sum(got == want for got, want in zip(rows, orderbook, strict=True))
    assert matching == 155_935  # every row
    # nothing is refused, every IOC order fills entirely, and only the engine's own
    # cancels of LOBSTER types 2 and 3 (and of window corrections) take quantity off
    assert not any(kind.startswith("rejected") for kind in events)
    assert events["cancelled ioc"] == 0
    assert events["Trade"] >= result.stats["type 4"]
    assert sum(1 for c in decoded if c.__class__ is NewOrder and c.account == TAKER_ACCOUNT) == 8_974
