"""`carbonbook replay`: hostile input, MessagePack, the command line and determinism.

The contract (ORDER-LOG.md, "Encoding" and "The replay command"): a record that cannot be
decoded into a command gives exactly one ``rejected`` event with reason ``malformed``,
its 1-based ``line`` (blank lines counted, giving no event) and the record's ``id`` when
it carries a valid one; the replay goes on, the event ``seq`` stays gapless, and the exit
status is 0 whenever the log was read to its end.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from carbonbook import codec
from carbonbook.codec import json_decoder
from carbonbook.core.engine import Engine
from carbonbook.events import Event
from carbonbook.operations.cli import EXIT_IO, EXIT_OK, EXIT_USAGE, main
from carbonbook.operations.replay import replay
from carbonbook.registry import SQLiteRegistry

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "jvets-2010.jsonl"
SYM = "JPA-2010"
EVENT_DECODER = msgspec.json.Decoder(Event)

Obj = dict[str, Any]


def enc(obj: Any) -> bytes:
    """One JSON line (without its newline)."""
    return msgspec.json.encode(obj)


def jsonl(*lines: bytes) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def run(data: bytes, msgpack: bool = False) -> list[Obj]:
    """Replay ``data`` in-process; the events as plain dicts, after checking the output's form."""
    chunks: list[bytes] = []
    replay(io.BytesIO(data), Engine(), chunks.append, msgpack)
    return parse_events(b"".join(chunks))


def parse_events(out: bytes) -> list[Obj]:
    """Decode JSON Lines events; every line must be a valid Event and seq must run 1..N."""
    assert out == b"" or out.endswith(b"\n")
    lines = out.splitlines()
    for line in lines:
        EVENT_DECODER.decode(line)
    events: list[Obj] = [msgspec.json.decode(line) for line in lines]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    return events


def without_detail(events: list[Obj]) -> list[Obj]:
    """The events with each rejection's ``detail`` checked (non-empty text) and dropped."""
    out = []
    for e in events:
        if e["type"] == "rejected":
            e = dict(e)
            detail = e.pop("detail")
            assert isinstance(detail, str) and detail
        out.append(e)
    return out


def without_line_detail(events: list[Obj]) -> list[Obj]:
    """The events with the ``detail`` of each undecodable record (one with a ``line``) dropped."""
    return [{k: v for k, v in e.items() if k != "detail"} if "line" in e else e for e in events]


# --------------------------------------------------------------------------- the test log

INSTRUMENT = enc({"type": "instrument", "symbol": SYM, "unit": "JPA"})
MAKER = enc({"type": "new", "id": 1, "account": "mak", "symbol": SYM, "side": "sell",
             "price": 1500, "qty": 10})
# The good line after a hostile one reuses id 7: had the hostile line changed anything, it
# would be a duplicate id (or have traded first).
TAKER = enc({"type": "new", "id": 7, "account": "tak", "symbol": SYM, "side": "buy",
             "price": 1500, "qty": 4})

LISTED = {"type": "instrument_listed", "seq": 1, "symbol": SYM, "unit": "JPA", "tick": 1, "lot": 1}
MAKER_ACCEPTED = {"type": "accepted", "seq": 2, "id": 1, "symbol": SYM}


def taker_events(seq: int) -> list[Obj]:
    return [
        {"type": "accepted", "seq": seq, "id": 7, "symbol": SYM},
        {"type": "trade", "seq": seq + 1, "symbol": SYM, "price": 1500, "qty": 4, "maker_id": 1,
         "taker_id": 7, "buy_id": 7, "sell_id": 1, "buy_account": "tak", "sell_account": "mak"},
    ]


def malformed(seq: int, oid: int | None, line: int) -> Obj:
    return {"type": "rejected", "seq": seq, "id": oid, "reason": "malformed", "line": line}


# A new order that would be accepted (and trade with the maker) but for one fault.
NEW7: Obj = {"type": "new", "id": 7, "account": "hostile", "symbol": SYM, "side": "buy",
             "price": 1500, "qty": 3}


def new7(**changes: Any) -> bytes:
    """NEW7 with fields replaced (a value of ``...`` removes the field)."""
    obj = {k: v for k, v in {**NEW7, **changes}.items() if v is not ...}
    return enc(obj)


def raw_new7(field: str, raw: bytes) -> bytes:
    """NEW7 with ``field`` given as raw JSON text (for what msgspec would not encode)."""
    obj = {k: v for k, v in NEW7.items() if k != field}
    return enc(obj)[:-1] + b',"' + field.encode() + b'":' + raw + b"}"


DEEP = 100_000
HOSTILE: list[Any] = [
    # not JSON / not UTF-8
    pytest.param(b"\x00\x01garbage\xfe", None, id="garbage-bytes"),
    pytest.param(b"\xff\xfe\xfd", None, id="invalid-utf8-bytes"),
    pytest.param(b"not json at all", None, id="text"),
    pytest.param(b'{"type":"new","id":7,', None, id="truncated-object"),
    pytest.param(new7()[:-1] + b",}", None, id="trailing-comma"),
    pytest.param(new7() + new7(), None, id="two-objects-on-a-line"),
    pytest.param(raw_new7("price", b"NaN"), None, id="nan-price"),
    pytest.param(raw_new7("price", b"Infinity"), None, id="infinite-price"),
    # invalid UTF-8 inside strings: the line as a whole cannot be decoded, so no id is read
    pytest.param(raw_new7("account", b'"\xff\xfe"'), None, id="invalid-utf8-in-account"),
    pytest.param(raw_new7("symbol", b'"JPA-\xc3"'), None, id="truncated-utf8-in-symbol"),
    pytest.param(raw_new7("note", b'"\xed\xa0\x80"'), None, id="invalid-utf8-in-unknown-field"),
    pytest.param(b'{"type":"\xff","id":7}', None, id="invalid-utf8-in-type"),
    # not an object
    pytest.param(b"[1,2,3]", None, id="array"),
    pytest.param(b"[" + new7() + b"]", None, id="command-in-array"),
    pytest.param(b"42", None, id="number"),
    pytest.param(b"-1.5e3", None, id="float"),
    pytest.param(b'"new"', None, id="string"),
    pytest.param(b"null", None, id="null"),
    pytest.param(b"true", None, id="bool"),
    # no usable type
    pytest.param(b"{}", None, id="empty-object"),
    pytest.param(new7(type=...), 7, id="no-type"),
    pytest.param(new7(type=5), 7, id="numeric-type"),
    pytest.param(new7(type=None), 7, id="null-type"),
    pytest.param(new7(type=["new"]), 7, id="array-type"),
    pytest.param(new7(type={"name": "new"}), 7, id="object-type"),
    pytest.param(new7(type="bogus"), 7, id="unknown-type"),
    pytest.param(new7(type="NEW"), 7, id="wrong-case-type"),
    pytest.param(new7(type=""), 7, id="empty-type"),
    pytest.param(new7(type="trade"), 7, id="event-type-as-command"),
    # missing required fields
    pytest.param(new7(id=...), None, id="new-no-id"),
    pytest.param(new7(account=...), 7, id="new-no-account"),
    pytest.param(new7(symbol=...), 7, id="new-no-symbol"),
    pytest.param(new7(side=...), 7, id="new-no-side"),
    pytest.param(new7(qty=...), 7, id="new-no-qty"),
    pytest.param(enc({"type": "cancel"}), None, id="cancel-no-id"),
    pytest.param(enc({"type": "modify", "qty": 3}), None, id="modify-no-id"),
    pytest.param(enc({"type": "instrument", "symbol": "X"}), None, id="instrument-no-unit"),
    pytest.param(enc({"type": "instrument", "unit": "JPA"}), None, id="instrument-no-symbol"),
    # wrong types
    pytest.param(new7(price=1500.0), 7, id="float-price"),
    pytest.param(raw_new7("price", b"1.5e3"), 7, id="exponent-price"),
    pytest.param(new7(qty=3.0), 7, id="float-qty"),
    pytest.param(new7(price="1500"), 7, id="string-price"),
    pytest.param(new7(qty="3"), 7, id="string-qty"),
    pytest.param(new7(qty=True), 7, id="bool-qty"),
    pytest.param(new7(price=True), 7, id="bool-price"),
    pytest.param(new7(price=False), 7, id="false-price"),
    pytest.param(new7(id=True), None, id="bool-id"),
    pytest.param(new7(id=False), None, id="false-id"),
    pytest.param(new7(id="7"), None, id="string-id"),
    pytest.param(new7(id=7.0), None, id="float-id"),
    pytest.param(new7(id=None), None, id="null-id"),
    pytest.param(new7(id=[7]), None, id="array-id"),
    pytest.param(new7(qty=None), 7, id="null-qty"),
    pytest.param(new7(qty=[3]), 7, id="array-qty"),
    pytest.param(new7(qty={"t": 3}), 7, id="object-qty"),
    pytest.param(new7(account=5), 7, id="numeric-account"),
    pytest.param(new7(account=None), 7, id="null-account"),
    pytest.param(new7(symbol=["JPA-2010"]), 7, id="array-symbol"),
    pytest.param(new7(side=None), 7, id="null-side"),
    pytest.param(new7(side=1), 7, id="numeric-side"),
    pytest.param(new7(post_only=1), 7, id="int-post-only"),
    pytest.param(new7(post_only="true"), 7, id="string-post-only"),
    pytest.param(new7(post_only=None), 7, id="null-post-only"),
    pytest.param(new7(ts=1.5), 7, id="float-ts"),
    pytest.param(new7(ts="2010-10-01T09:00:00"), 7, id="string-ts"),
    pytest.param(new7(ts=2**63), 7, id="huge-ts"),
    pytest.param(enc({"type": "cancel", "id": 1.0}), None, id="cancel-float-id"),
    pytest.param(enc({"type": "cancel", "id": "1"}), None, id="cancel-string-id"),
    pytest.param(enc({"type": "modify", "id": 1, "price": 1400.0}), 1, id="modify-float-price"),
    pytest.param(enc({"type": "modify", "id": 1, "qty": "5"}), 1, id="modify-string-qty"),
    pytest.param(enc({"type": "modify", "id": 1, "qty": False}), 1, id="modify-bool-qty"),
    pytest.param(enc({"type": "instrument", "symbol": "X", "unit": "JPA", "tick": 0.5}), None,
                 id="instrument-float-tick"),
    pytest.param(enc({"type": "instrument", "symbol": "X", "unit": "JPA", "lot": "100"}), None,
                 id="instrument-string-lot"),
    # integers outside 64 bits; ids outside 0..2**63-1
    pytest.param(new7(price=2**63), 7, id="price-2**63"),
    pytest.param(new7(price=-(2**63) - 1), 7, id="price-below-int64"),
    pytest.param(new7(price=10**30), 7, id="price-10**30"),
    pytest.param(new7(qty=2**63), 7, id="qty-2**63"),
    pytest.param(new7(qty=-(2**63) - 1), 7, id="qty-below-int64"),
    pytest.param(new7(qty=2**64), 7, id="qty-2**64"),
    pytest.param(raw_new7("qty", b"9" * 400), 7, id="qty-400-digits"),
    pytest.param(new7(id=2**63), None, id="id-2**63"),
    pytest.param(new7(id=2**64 - 1), None, id="id-2**64-1"),
    pytest.param(new7(id=10**40), None, id="id-10**40"),
    pytest.param(new7(id=-1), None, id="id-negative"),
    pytest.param(new7(id=-(2**63)), None, id="id-int64-min"),
    pytest.param(enc({"type": "cancel", "id": 2**63}), None, id="cancel-id-2**63"),
    pytest.param(enc({"type": "modify", "id": -5, "qty": 1}), None, id="modify-negative-id"),
    pytest.param(enc({"type": "modify", "id": 1, "price": 2**63}), 1, id="modify-price-2**63"),
    # values outside their sets; empty names
    pytest.param(new7(side="hold"), 7, id="unknown-side"),
    pytest.param(new7(side="BUY"), 7, id="upper-case-side"),
    pytest.param(new7(side=""), 7, id="empty-side"),
    pytest.param(new7(tif="day"), 7, id="unknown-tif"),
    pytest.param(new7(tif="GTC"), 7, id="upper-case-tif"),
    pytest.param(new7(order_type="stop"), 7, id="unknown-order-type"),
    pytest.param(new7(stp="none"), 7, id="unknown-stp"),
    pytest.param(new7(account=""), 7, id="empty-account"),
    pytest.param(new7(symbol=""), 7, id="empty-symbol"),
    pytest.param(enc({"type": "instrument", "symbol": "", "unit": "JPA"}), None,
                 id="instrument-empty-symbol"),
    pytest.param(enc({"type": "instrument", "symbol": "X", "unit": "GOLD"}), None,
                 id="instrument-unknown-unit"),
    pytest.param(enc({"type": "instrument", "symbol": "X", "unit": "jpa"}), None,
                 id="instrument-lower-unit"),
    # deeply nested junk; very long lines (longer than the 4 MiB read chunk)
    pytest.param(b"[" * DEEP + b"]" * DEEP, None, id="deep-array"),
    pytest.param(b"[" * DEEP, None, id="deep-unclosed-array"),
    pytest.param(b'{"a":' * DEEP + b"1" + b"}" * DEEP, None, id="deep-objects"),
    # too deep to decode even to find the id: reported without one
    pytest.param(raw_new7("junk", b"[" * DEEP + b"]" * DEEP), None, id="deep-junk-in-unknown-field"),
    pytest.param(raw_new7("qty", b"[" * DEEP + b"]" * DEEP), None, id="deep-junk-as-qty"),
    pytest.param(b"x" * 5_000_000, None, id="long-garbage-line"),
    pytest.param(raw_new7("qty", b'"' + b"9" * 5_000_000 + b'"'), 7, id="long-string-qty"),
    pytest.param(b" " * 5_000_000 + b"[]", None, id="long-whitespace-then-array"),
]


@pytest.mark.parametrize(("hostile", "oid"), HOSTILE)
def test_hostile_line_gives_one_malformed_rejection(hostile: bytes, oid: int | None) -> None:
    log = jsonl(INSTRUMENT, MAKER, hostile, b"", TAKER)
    assert without_detail(run(log)) == [LISTED, MAKER_ACCEPTED, malformed(3, oid, 3), *taker_events(4)]


@pytest.mark.parametrize(("hostile", "oid"), HOSTILE)
def test_hostile_line_crlf_and_unterminated(hostile: bytes, oid: int | None) -> None:
    """The same with CRLF line endings, the hostile line last and without a newline."""
    log = b"\r\n".join([INSTRUMENT, MAKER, b"", TAKER, b"\r", hostile])
    assert without_detail(run(log)) == [
        LISTED, MAKER_ACCEPTED, *taker_events(3), malformed(5, oid, 6),
    ]


@pytest.mark.parametrize(
    ("hostile", "field"),
    [
        (new7(price=1500.0), "price"),
        (new7(qty="3"), "qty"),
        (new7(qty=True), "qty"),
        (new7(id=2**63), "id"),
        (new7(side="hold"), "side"),
        (new7(tif="day"), "tif"),
        (new7(order_type="stop"), "order_type"),
        (new7(stp="none"), "stp"),
        (new7(account=""), "account"),
        (new7(qty=...), "qty"),
        (new7(type="bogus"), "type"),
    ],
)
def test_malformed_detail_names_the_field(hostile: bytes, field: str) -> None:
    rejection = run(jsonl(INSTRUMENT, hostile))[1]
    assert rejection["reason"] == "malformed"
    assert field in rejection["detail"]


def test_every_hostile_line_in_one_log() -> None:
    """All hostile lines together, each between blank lines: the replay never stops."""
    hostile = [p.values for p in HOSTILE]
    lines = [INSTRUMENT, MAKER]
    expected = [LISTED, MAKER_ACCEPTED]
    for record, oid in hostile:
        lines += [b"", record]
        expected.append(malformed(len(expected) + 1, oid, len(lines)))
    lines.append(TAKER)
    expected += taker_events(len(expected) + 1)
    assert without_detail(run(jsonl(*lines))) == expected


# --------------------------------------------------------------------------- lines that are fine


def test_unknown_fields_are_ignored() -> None:
    extra = new7(id=7, account="tak", qty=4, note="bought for 東京電力 ✓",
                 meta={"a": [1, 2.5, None, {"b": True}]}, tags=["x", "y"], price_float=1500.0,
                 qty_text="4", nested=[[[[[[[[[[1]]]]]]]]]])
    assert without_detail(run(jsonl(INSTRUMENT, MAKER, extra))) == [LISTED, MAKER_ACCEPTED, *taker_events(3)]


def test_unknown_fields_on_every_command() -> None:
    log = jsonl(
        enc({"type": "instrument", "symbol": SYM, "unit": "JPA", "venue": "TOCOM", "x": [1.5]}),
        enc({"type": "new", "id": 1, "account": "mak", "symbol": SYM, "side": "sell", "price": 1500,
             "qty": 10, "client_ref": "abc", "x": {"y": None}}),
        enc({"type": "modify", "id": 1, "qty": 6, "reason": "trim", "x": 1.5}),
        enc({"type": "cancel", "id": 1, "why": "eod", "x": "ü"}),
    )
    assert run(log) == [
        LISTED,
        MAKER_ACCEPTED,
        {"type": "modified", "seq": 3, "id": 1, "price": 1500, "qty": 6},
        {"type": "cancelled", "seq": 4, "id": 1, "qty": 6, "reason": "user"},
    ]


def test_non_ascii_names_round_trip() -> None:
    maker = enc({"type": "new", "id": 1, "account": "東京電力", "symbol": "JCR-東北", "side": "sell",
                 "price": 2688, "qty": 1})
    taker = enc({"type": "new", "id": 2, "account": "mitsui-物産", "symbol": "JCR-東北", "side": "buy",
                 "price": 2688, "qty": 1})
    events = run(jsonl(enc({"type": "instrument", "symbol": "JCR-東北", "unit": "JCR"}), maker, taker))
    assert events[-1] == {
        "type": "trade", "seq": 4, "symbol": "JCR-東北", "price": 2688, "qty": 1, "maker_id": 1,
        "taker_id": 2, "buy_id": 2, "sell_id": 1, "buy_account": "mitsui-物産", "sell_account": "東京電力",
    }


def test_int64_and_id_bounds_decode() -> None:
    """The edges of the ranges are not malformed: the engine judges them."""
    top = 2**63 - 1
    log = jsonl(
        INSTRUMENT,
        new7(id=top, account="a", side="sell", price=2000, qty=1),  # largest id: accepted
        new7(id=0, account="b", side="sell", price=2001, qty=1),  # smallest id: accepted
        new7(id=5, qty=-(2**63)),  # smallest qty: bad_qty
        new7(id=6, price=-(2**63)),  # smallest price: bad_price
        new7(id=8, qty=top, price=top, tif="ioc"),  # largest both: accepted, trades, remainder cancelled
        enc({"type": "cancel", "id": top}),
        enc({"type": "cancel", "id": 0}),
    )
    events = without_detail(run(log))
    assert [(e["type"], e.get("id"), e.get("reason")) for e in events] == [
        ("instrument_listed", None, None),
        ("accepted", top, None),
        ("accepted", 0, None),
        ("rejected", 5, "bad_qty"),
        ("rejected", 6, "bad_price"),
        ("accepted", 8, None),
        ("trade", None, None),
        ("trade", None, None),
        ("cancelled", 8, "ioc"),
        ("rejected", top, "unknown_order"),
        ("rejected", 0, "unknown_order"),
    ]
    assert events[8]["qty"] == top - 2


def test_decodable_but_malformed_commands_are_malformed() -> None:
    """Commands that decode but break a rule of their shape are refused as malformed, with their id.

    (Whether these carry ``line`` is not checked: the contract gives ``line`` to lines that
    could not be decoded, and these could.)
    """
    log = jsonl(
        INSTRUMENT,
        new7(price=None),  # a limit order without a price
        new7(price=...),
        new7(order_type="market"),  # a market order with a price
        new7(post_only=True, tif="ioc"),
        enc({"type": "modify", "id": 7}),  # neither price nor qty
        enc({"type": "instrument", "symbol": "X", "unit": "JPA", "tick": 0}),
        TAKER.replace(b'"id":7', b'"id":1'),
    )
    events = run(log)
    assert [(e["type"], e.get("id"), e.get("reason")) for e in events] == [
        ("instrument_listed", None, None),
        *[("rejected", 7, "malformed")] * 5,
        ("rejected", None, "malformed"),
        ("accepted", 1, None),
    ]


def test_blank_lines_are_counted_but_give_no_event() -> None:
    log = b"\n\n" + INSTRUMENT + b"\n \n\t\n\r\n" + b"oops\n" + b"\n" * 10 + b"[]\n" + TAKER + b"\n\n"
    assert without_detail(run(log)) == [
        LISTED,
        malformed(2, None, 7),
        malformed(3, None, 18),
        {"type": "accepted", "seq": 4, "id": 7, "symbol": SYM},
    ]


def test_only_blank_lines_give_no_events() -> None:
    assert run(b"\n\r\n   \n\t\n") == []
    assert run(b"") == []


def test_crlf_log_replays_like_lf() -> None:
    lines = EXAMPLE.read_bytes().split(b"\n")
    assert run(b"\r\n".join(lines)) == run(b"\n".join(lines))


def test_final_line_without_newline_is_applied() -> None:
    assert run(INSTRUMENT + b"\n" + MAKER) == [LISTED, MAKER_ACCEPTED]
    assert run(INSTRUMENT + b"\r\n" + MAKER + b"\r") == [LISTED, MAKER_ACCEPTED]


def test_line_numbers_across_read_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    data = EXAMPLE.read_bytes()
    expected = run(data)
    monkeypatch.setattr(codec, "_CHUNK", 97)
    assert run(data) == expected


# --------------------------------------------------------------------------- MessagePack


def example_objects() -> list[Any]:
    """The example log's lines that are JSON values MessagePack can hold (blank and broken lines dropped)."""
    objs = []
    for line in EXAMPLE.read_bytes().splitlines():
        try:
            obj = msgspec.json.decode(line)
            msgspec.msgpack.encode(obj)
        except (msgspec.DecodeError, OverflowError):
            continue
        objs.append(obj)
    return objs


@pytest.fixture(scope="module")
def session() -> tuple[bytes, bytes]:
    """The same commands as JSON Lines and as a MessagePack stream."""
    objs = example_objects()
    return jsonl(*map(enc, objs)), b"".join(map(msgspec.msgpack.encode, objs))


def test_example_objects_cover_bad_records() -> None:
    """The MessagePack comparison also covers records that decode but are refused."""
    objs = example_objects()
    assert len(objs) > 3900
    assert any(not isinstance(o, dict) for o in objs)


def test_msgpack_replays_like_jsonl(session: tuple[bytes, bytes]) -> None:
    as_json, as_msgpack = session
    from_json = run(as_json)
    from_msgpack = run(as_msgpack, msgpack=True)
    # the decoder's wording of a fault differs between the formats; the engine's does not
    assert without_line_detail(from_msgpack) == without_line_detail(from_json)
    assert sum(e["reason"] == "malformed" for e in from_json if e["type"] == "rejected") > 5


def test_msgpack_cli_by_flag_extension_and_first_byte(session: tuple[bytes, bytes], tmp_path: Path) -> None:
    as_json, as_msgpack = session
    from_json = cli_events(tmp_path, "log.jsonl", as_json)
    from_msgpack = cli_events(tmp_path, "log.bin", as_msgpack, "--format", "msgpack")
    assert from_msgpack != from_json  # the fault wording tells the formats apart
    assert without_line_detail(from_msgpack) == without_line_detail(from_json)
    assert cli_events(tmp_path, "log.msgpack", as_msgpack) == from_msgpack
    assert cli_events(tmp_path, "log.mpk", as_msgpack) == from_msgpack
    assert cli_events(tmp_path, "log", as_msgpack) == from_msgpack  # sniffed: a map header
    assert cli_events(tmp_path, "log.dat", as_msgpack, "--format", "auto") == from_msgpack
    assert cli_events(tmp_path, "log2", as_json) == from_json  # sniffed: JSON text
    assert cli_events(tmp_path, "log.msgpack", as_json, "--format", "jsonl") == from_json
    assert cli_events(tmp_path, "log.jsonl", as_msgpack, "--format", "msgpack") == from_msgpack


def test_msgpack_data_forced_as_jsonl_is_rejected_not_crashed(
    session: tuple[bytes, bytes], tmp_path: Path
) -> None:
    _, as_msgpack = session
    events = cli_events(tmp_path, "log.jsonl", as_msgpack[:5000])
    assert events and all(e["reason"] == "malformed" for e in events)


def test_bad_msgpack_stream() -> None:
    pack = msgspec.msgpack.encode
    instrument = pack({"type": "instrument", "symbol": SYM, "unit": "JPA"})
    maker = pack({"type": "new", "id": 1, "account": "mak", "symbol": SYM, "side": "sell",
                  "price": 1500, "qty": 10})
    taker = pack({"type": "new", "id": 7, "account": "tak", "symbol": SYM, "side": "buy",
                  "price": 1500, "qty": 4})
    stream = b"".join([
        instrument,                                      # 1
        b"\xc1",                                         # 2: never-used byte
        maker,                                           # 3
        pack([1, 2, 3]),                                 # 4: not a map
        pack(42),                                        # 5: not a map
        pack(None),                                      # 6: not a map
        pack({"type": "new", "id": 7, "price": 1.5}),    # 7: mistyped, carries id 7
        pack({"type": "cancel", "id": 2**64 - 1}),       # 8: id out of range
        b"\x82\xa4type\xa6cancel\xa2id\xa2\xff\xfe",      # 9: invalid UTF-8
        b"\x82\xa4type\xa6cancel\xa2id" + b"\x91" * DEEP + b"\x90",  # 10: too deep
        taker,                                           # 11
        taker[:-3],                                      # 12: truncated last object
    ])
    assert without_detail(run(stream, msgpack=True)) == [
        LISTED,
        malformed(2, None, 2),
        {**MAKER_ACCEPTED, "seq": 3},
        malformed(4, None, 4),
        malformed(5, None, 5),
        malformed(6, None, 6),
        malformed(7, 7, 7),
        malformed(8, None, 8),
        malformed(9, None, 9),
        malformed(10, None, 10),
        *taker_events(11),
        malformed(13, None, 12),
    ]


def test_msgpack_stream_of_only_garbage() -> None:
    assert without_detail(run(b"\xc1\xc1\xc1", msgpack=True)) == [malformed(i, None, i) for i in (1, 2, 3)]
    assert run(b"", msgpack=True) == []


def test_msgpack_unknown_fields_are_ignored() -> None:
    pack = msgspec.msgpack.encode
    stream = b"".join([
        pack({"type": "instrument", "symbol": SYM, "unit": "JPA", "x": b"\xc1\xc1"}),
        pack({"type": "new", "id": 1, "account": "mak", "symbol": SYM, "side": "sell", "price": 1500,
              "qty": 10, "bin": b"\x00" * 300, "ext": msgspec.msgpack.Ext(3, b"\xc1"), "f": 1.5,
              "arr": list(range(40)), "map": {str(i): i for i in range(20)}, "big": 2**64 - 1}),
    ])
    assert run(stream, msgpack=True) == [LISTED, MAKER_ACCEPTED]


# --------------------------------------------------------------------------- the command line


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def cli_events(tmp_path: Path, name: str, data: bytes, *args: str) -> list[Obj]:
    """Replay ``data`` from a file called ``name`` through main(); the events written with --out."""
    log = write(tmp_path, name, data)
    out = tmp_path / (name + ".events")
    assert main(["replay", str(log), "--out", str(out), "--quiet", *args]) == EXIT_OK
    return parse_events(out.read_bytes())


SMALL_LOG = jsonl(INSTRUMENT, MAKER, b"", b"garbage", TAKER)
SMALL_EVENTS = [LISTED, MAKER_ACCEPTED, malformed(3, None, 4), *taker_events(4)]


def test_stdout_when_no_out(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    log = write(tmp_path, "log.jsonl", SMALL_LOG)
    assert main(["replay", str(log), "--quiet"]) == EXIT_OK
    captured = capsysbinary.readouterr()
    assert without_detail(parse_events(captured.out)) == SMALL_EVENTS
    assert captured.err == b""


def test_out_file_and_stdout_agree(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    log = write(tmp_path, "log.jsonl", SMALL_LOG)
    out = tmp_path / "events.jsonl"
    assert main(["replay", str(log), "--out", str(out), "--quiet"]) == EXIT_OK
    to_file = capsysbinary.readouterr()
    assert to_file.out == b""
    assert main(["replay", str(log), "--quiet"]) == EXIT_OK
    assert capsysbinary.readouterr().out == out.read_bytes()


def test_out_file_is_replaced(tmp_path: Path) -> None:
    out = write(tmp_path, "events.jsonl", b"old content\n" * 1000)
    log = write(tmp_path, "log.jsonl", SMALL_LOG)
    assert main(["replay", str(log), "--out", str(out), "--quiet"]) == EXIT_OK
    assert without_detail(parse_events(out.read_bytes())) == SMALL_EVENTS


def test_stdin_dash_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    log = write(tmp_path, "log.jsonl", SMALL_LOG)
    with open(log, encoding="utf-8") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert main(["replay", "-", "--quiet"]) == EXIT_OK
    assert without_detail(parse_events(capsysbinary.readouterr().out)) == SMALL_EVENTS


def test_stdin_dash_msgpack_redirected_file_is_sniffed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    log = write(tmp_path, "log", b"".join(msgspec.msgpack.encode(msgspec.json.decode(line))
                                          for line in (INSTRUMENT, MAKER, TAKER)))
    with open(log, encoding="utf-8") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert main(["replay", "-", "--quiet"]) == EXIT_OK
    assert parse_events(capsysbinary.readouterr().out) == [LISTED, MAKER_ACCEPTED, *taker_events(3)]


def _subprocess(args: list[str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "carbonbook", *args], input=stdin,
                          capture_output=True, cwd=ROOT, check=False)


def test_stdin_pipe_subprocess() -> None:
    proc = _subprocess(["replay", "-"], SMALL_LOG)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert without_detail(parse_events(proc.stdout)) == SMALL_EVENTS
    assert b"replayed 5 records into 5 events" in proc.stderr


def test_a_byte_order_mark_is_skipped_in_a_file_and_on_stdin(tmp_path: Path) -> None:
    """A log saved with a UTF-8 BOM replays as without it: line 1 is not rejected."""
    bom = write(tmp_path, "bom.jsonl", codec.BOM + SMALL_LOG)
    events = tmp_path / "ev.jsonl"
    assert main(["replay", str(bom), "--out", str(events), "--quiet"]) == EXIT_OK
    assert without_detail(parse_events(events.read_bytes())) == SMALL_EVENTS
    proc = _subprocess(["replay", "-", "--quiet"], codec.BOM + SMALL_LOG)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert proc.stdout == events.read_bytes()


@pytest.mark.parametrize("fmt", [[], ["--format", "msgpack"]], ids=["sniffed", "flag"])
def test_stdin_pipe_msgpack_subprocess(fmt: list[str]) -> None:
    stream = b"".join(msgspec.msgpack.encode(msgspec.json.decode(line)) for line in (INSTRUMENT, MAKER, TAKER))
    proc = _subprocess(["replay", "-", "--quiet", *fmt], stream)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert parse_events(proc.stdout) == [LISTED, MAKER_ACCEPTED, *taker_events(3)]
    assert proc.stderr == b""


def test_empty_stdin_subprocess() -> None:
    proc = _subprocess(["replay", "-", "--quiet"], b"")
    assert (proc.returncode, proc.stdout, proc.stderr) == (EXIT_OK, b"", b"")


SNAPSHOT_LOG = jsonl(
    INSTRUMENT,
    enc({"type": "instrument", "symbol": "CER-CP1", "unit": "CER", "lot": 100}),
    enc({"type": "instrument", "symbol": "JCR-2010", "unit": "JCR"}),
    enc({"type": "new", "id": 10, "account": "a", "symbol": SYM, "side": "buy", "price": 1490, "qty": 5}),
    enc({"type": "new", "id": 11, "account": "b", "symbol": SYM, "side": "buy", "price": 1495, "qty": 6}),
    enc({"type": "new", "id": 12, "account": "c", "symbol": SYM, "side": "buy", "price": 1490, "qty": 7}),
    enc({"type": "new", "id": 13, "account": "d", "symbol": SYM, "side": "buy", "price": 1490, "qty": 8}),
    enc({"type": "new", "id": 20, "account": "e", "symbol": SYM, "side": "sell", "price": 1510, "qty": 9}),
    enc({"type": "new", "id": 21, "account": "f", "symbol": SYM, "side": "sell", "price": 1505, "qty": 3}),
    enc({"type": "new", "id": 22, "account": "g", "symbol": SYM, "side": "sell", "price": 1505, "qty": 4}),
    enc({"type": "modify", "id": 10, "qty": 9}),  # more qty: to the back of 1490
    enc({"type": "modify", "id": 21, "qty": 1}),  # less qty: keeps its place at 1505
    enc({"type": "new", "id": 30, "account": "h", "symbol": "CER-CP1", "side": "sell", "price": 1570,
         "qty": 300}),
    enc({"type": "new", "id": 31, "account": "i", "symbol": "CER-CP1", "side": "buy", "price": 1570,
         "qty": 100}),  # leaves 200 of 30
    b"not json",
)


def test_snapshot(tmp_path: Path) -> None:
    log = write(tmp_path, "log.jsonl", SNAPSHOT_LOG)
    snap = tmp_path / "book.json"
    assert main(["replay", str(log), "--out", str(tmp_path / "ev.jsonl"), "--snapshot", str(snap),
                 "--quiet"]) == EXIT_OK
    assert snap.read_bytes() == (
        b'{"JPA-2010":{"bids":[[1495,11,6],[1490,12,7],[1490,13,8],[1490,10,9]],'
        b'"asks":[[1505,21,1],[1505,22,4],[1510,20,9]]},'
        b'"CER-CP1":{"bids":[],"asks":[[1570,30,200]]},'
        b'"JCR-2010":{"bids":[],"asks":[]}}\n'
    )


def test_snapshot_of_empty_log(tmp_path: Path) -> None:
    log = write(tmp_path, "log.jsonl", b"")
    snap = tmp_path / "book.json"
    assert main(["replay", str(log), "--snapshot", str(snap), "--quiet"]) == EXIT_OK
    assert snap.read_bytes() == b"{}\n"


def test_summary_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write(tmp_path, "log.jsonl", SMALL_LOG)
    assert main(["replay", str(log), "--out", str(tmp_path / "ev.jsonl")]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert err[0].startswith("replayed 5 records into 5 events in ")
    assert err[0].endswith(" records/s)")
    assert err[1:] == [
        "  accepted 2, instrument_listed 1, rejected 1, trade 1",
        "  rejections: malformed 1",
        "  JPA-2010       1 trades, 4 t, vwap 1,500, last 1,500; bid - / ask 1500",
    ]


def test_quiet_silences_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write(tmp_path, "log.jsonl", SMALL_LOG)
    assert main(["replay", str(log), "--out", str(tmp_path / "ev.jsonl"), "--quiet"]) == EXIT_OK
    assert capsys.readouterr() == ("", "")


def test_exit_0_when_everything_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write(tmp_path, "log.jsonl", b"x\n[]\n" + TAKER + b"\n")
    assert main(["replay", str(log), "--out", str(tmp_path / "ev.jsonl")]) == EXIT_OK
    assert "rejections: malformed 2, unknown_symbol 1" in capsys.readouterr().err


def test_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-log.jsonl"
    out = tmp_path / "ev.jsonl"
    assert main(["replay", str(missing), "--out", str(out)]) == EXIT_IO
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("carbonbook: ")
    assert "no-such-log.jsonl" in captured.err
    assert not out.exists()


def test_input_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path), "--quiet"]) == EXIT_IO
    assert capsys.readouterr().err.startswith("carbonbook: ")


def test_a_registry_in_use_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A registry another writer holds: replay, journal and recover each say so in one line, exit 1,
    and write nothing into it."""
    db = tmp_path / "r.db"
    url = f"sqlite:///{db}"
    holder = SQLiteRegistry(db)
    holder.claim_writer()
    for args in (["replay", str(EXAMPLE), "--registry", url, "--quiet"],
                 ["journal", str(EXAMPLE), str(tmp_path / "j"), "--registry", url],
                 ["recover", str(tmp_path / "j"), "--registry", url]):
        assert main(args) == EXIT_IO
        assert capsys.readouterr().err == (f"carbonbook: registry {url}: {db} is in use by another writer, "
                                           "and a registry takes one writer at a time: wait until that one is "
                                           "done (or stop it), then run again\n")
    assert not list(holder.journal())  # nothing went into it
    holder.close()
    assert main(["replay", str(EXAMPLE), "--registry", url, "--out", str(tmp_path / "ev.jsonl"),
                 "--quiet"]) == EXIT_OK


def test_unwritable_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write(tmp_path, "log.jsonl", SMALL_LOG)
    out = tmp_path / "no-such-dir" / "ev.jsonl"
    assert main(["replay", str(log), "--out", str(out)]) == EXIT_IO
    assert "no-such-dir" in capsys.readouterr().err


def test_unwritable_snapshot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write(tmp_path, "log.jsonl", SMALL_LOG)
    snap = tmp_path / "no-such-dir" / "book.json"
    assert main(["replay", str(log), "--out", str(tmp_path / "ev.jsonl"), "--snapshot", str(snap)]) == EXIT_IO
    assert "no-such-dir" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["replay"],
        ["play", "log.jsonl"],
        ["replay", "log.jsonl", "--format", "xml"],
        ["replay", "log.jsonl", "--bogus"],
        ["replay", "log.jsonl", "--out"],
        ["replay", "a.jsonl", "b.jsonl"],
    ],
    ids=["nothing", "no-log", "unknown-command", "bad-format", "unknown-option", "out-without-value",
         "two-logs"],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage:" in captured.err


@pytest.mark.parametrize("argv", [["--help"], ["replay", "--help"]])
def test_help_exits_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_OK
    assert "usage:" in capsys.readouterr().out


def test_exit_codes_through_python_m(tmp_path: Path) -> None:
    assert _subprocess(["replay", str(tmp_path / "missing.jsonl")], b"").returncode == EXIT_IO
    assert _subprocess(["replay", "--format", "xml", "-"], b"").returncode == EXIT_USAGE
    assert _subprocess([], b"").returncode == EXIT_USAGE


# --------------------------------------------------------------------------- determinism


def test_example_replay_is_deterministic(tmp_path: Path) -> None:
    outs = []
    for n in (1, 2):
        out, snap = tmp_path / f"ev{n}.jsonl", tmp_path / f"book{n}.json"
        assert main(["replay", str(EXAMPLE), "--out", str(out), "--snapshot", str(snap), "--quiet"]) == EXIT_OK
        outs.append((out.read_bytes(), snap.read_bytes()))
    assert outs[0] == outs[1]
    events = parse_events(outs[0][0])
    # every line decodes as an Event, and encodes back to the same bytes
    decoded = [EVENT_DECODER.decode(line) for line in outs[0][0].splitlines()]
    assert msgspec.json.Encoder().encode_lines(decoded) == outs[0][0]
    # the counts the example's README gives for a replay without a registry
    assert len(events) == 5700
    assert Counter(e["type"] for e in events) == {
        "accepted": 2609, "trade": 1493, "cancelled": 873, "modified": 468, "rejected": 253,
        "instrument_listed": 4,
    }


def test_example_replay_same_in_process_and_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "ev.jsonl"
    assert main(["replay", str(EXAMPLE), "--out", str(out), "--quiet"]) == EXIT_OK
    proc = _subprocess(["replay", "-", "--quiet"], EXAMPLE.read_bytes())
    assert proc.returncode == EXIT_OK
    assert proc.stdout == out.read_bytes()


def test_example_malformed_rejections_have_lines() -> None:
    data = EXAMPLE.read_bytes()
    lines = data.split(b"\n")
    for e in run(data):
        if "line" in e:
            assert e["type"] == "rejected" and e["reason"] == "malformed"
            record = lines[e["line"] - 1]
            assert record.strip()
            with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
                json_decoder.decode(record)


def test_example_snapshot_is_in_priority_order(tmp_path: Path) -> None:
    snap = tmp_path / "book.json"
    assert main(["replay", str(EXAMPLE), "--out", str(tmp_path / "ev.jsonl"), "--snapshot", str(snap),
                 "--quiet"]) == EXIT_OK
    books: dict[str, dict[str, list[list[int]]]] = msgspec.json.decode(snap.read_bytes())
    assert list(books) == ["JPA-2010", "CER-CP1", "JVER-FOREST", "JCR-2010"]
    for sides in books.values():
        bids, asks = sides["bids"], sides["asks"]
        assert [p for p, _, _ in bids] == sorted((p for p, _, _ in bids), reverse=True)
        assert [p for p, _, _ in asks] == sorted(p for p, _, _ in asks)
        assert all(qty > 0 for _, _, qty in bids + asks)
        if bids and asks:
            assert bids[0][0] < asks[0][0]
        ids = [oid for _, oid, _ in bids + asks]
        assert len(ids) == len(set(ids))
