"""The decoding boundary: record framing, format sniffing, the decoders and fault descriptions.

``jsonl_records`` must give every line of a JSON Lines stream exactly once and in order,
however the stream is cut into reads; ``msgpack_records`` must cut a concatenated
MessagePack stream into exactly its objects for every type family of the format
(including encodings msgspec never writes itself, such as str32 with a short string).
"""

from __future__ import annotations

import io
import struct
from collections import Counter
from typing import Any, get_args

import msgspec
import pytest

from carbonbook import Engine, codec
from carbonbook._types import INT64_MAX, NAME_MAX, OrderType, Side, TimeInForce, UnitType
from carbonbook.codec import (
    DecodeFailure,
    describe_fault,
    is_msgpack,
    json_decoder,
    jsonl_records,
    msgpack_decoder,
    msgpack_records,
)
from carbonbook.commands import (
    Allocate,
    CancelOrder,
    Command,
    ListInstrument,
    ModifyOrder,
    NewOrder,
    RecordEmissions,
    Undecodable,
)

# --------------------------------------------------------------------------- JSON Lines framing


class TrickleStream(io.BytesIO):
    """A stream whose reads return at most ``step`` bytes, whatever was asked (like a slow pipe)."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__(data)
        self._step = step

    def read(self, size: int | None = -1, /) -> bytes:
        return super().read(self._step if size is None or size < 0 else min(size, self._step))


def _expected_lines(data: bytes) -> list[bytes]:
    """Every line of ``data``: blank lines included, a final unterminated line kept."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def _flatten(batches: list[list[bytes]]) -> list[bytes]:
    return [line for batch in batches for line in batch]


JSONL_SAMPLES = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\n", id="one-blank-line"),
    pytest.param(b"\n\n\n", id="three-blank-lines"),
    pytest.param(b"a", id="one-line-no-newline"),
    pytest.param(b"a\n", id="one-line"),
    pytest.param(b"a\nbb\n\nccc\n \n\tdddd", id="blanks-and-unterminated-tail"),
    pytest.param(b"a\r\nbb\r\n\r\nccc\r\n", id="crlf"),
    pytest.param(b'{"type":"cancel","id":1}\n' * 50 + b'{"type":"cancel","id":2}', id="many"),
    pytest.param(b"x" * 1000 + b"\n" + b"y" * 3 + b"\n" + b"z" * 777, id="long-lines"),
    pytest.param("日本語\nü\n".encode(), id="multibyte-utf8"),
]


@pytest.mark.parametrize("data", JSONL_SAMPLES)
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, 1 << 22])
def test_jsonl_records_keep_every_line_once_in_order(
    monkeypatch: pytest.MonkeyPatch, data: bytes, chunk: int
) -> None:
    monkeypatch.setattr(codec, "_CHUNK", chunk)
    assert _flatten(list(jsonl_records(io.BytesIO(data)))) == _expected_lines(data)


@pytest.mark.parametrize("data", JSONL_SAMPLES)
@pytest.mark.parametrize("step", [1, 4, 9])
def test_jsonl_records_survive_short_reads(data: bytes, step: int) -> None:
    assert _flatten(list(jsonl_records(TrickleStream(data, step)))) == _expected_lines(data)


def test_jsonl_records_line_longer_than_many_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_CHUNK", 16)
    long = b'{"type":"cancel","id":3,"pad":"' + b"p" * 1000 + b'"}'
    data = b"a\n" + long + b"\n\nb"
    assert _flatten(list(jsonl_records(io.BytesIO(data)))) == [b"a", long, b"", b"b"]


def test_jsonl_records_batches_follow_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_CHUNK", 4)
    # chunks: "ab\nc" "d\n\ne" "f" -> a batch per chunk, then the unterminated tail
    assert list(jsonl_records(io.BytesIO(b"ab\ncd\n\nef"))) == [[b"ab"], [b"cd", b""], [], [b"ef"]]


def test_jsonl_records_empty_stream_gives_nothing() -> None:
    assert list(jsonl_records(io.BytesIO(b""))) == []


# --------------------------------------------------------------------------- MessagePack framing


def _hdr(tag: int, n: int, width: int) -> bytes:
    return bytes([tag]) + n.to_bytes(width, "big")


# One valid object per MessagePack type family and width, many in encodings msgspec does
# not choose itself (non-minimal but valid), so the framer cannot rely on msgspec's habits.
# Payload bytes include 0xc1 and map/array headers, which the framer must skip, not read.
MSGPACK_OBJECTS: dict[str, bytes] = {
    "positive-fixint-0": b"\x00",
    "positive-fixint-127": b"\x7f",
    "negative-fixint--1": b"\xff",
    "negative-fixint--32": b"\xe0",
    "nil": b"\xc0",
    "false": b"\xc2",
    "true": b"\xc3",
    "uint8": b"\xcc\xff",
    "uint16": b"\xcd\xc1\xc1",
    "uint32": b"\xce\x81\x82\x83\x84",
    "uint64": b"\xcf" + (2**64 - 1).to_bytes(8, "big"),
    "int8": b"\xd0\x80",
    "int16": b"\xd1\xc1\x00",
    "int32": b"\xd2" + (-(2**31)).to_bytes(4, "big", signed=True),
    "int64": b"\xd3" + (-(2**63)).to_bytes(8, "big", signed=True),
    "float32": b"\xca" + struct.pack(">f", 1.5),
    "float64": b"\xcb" + struct.pack(">d", -1500.25),
    "fixstr-empty": b"\xa0",
    "fixstr-31": b"\xbf" + b"s" * 31,
    "str8": _hdr(0xD9, 3, 1) + b"abc",
    "str8-255": _hdr(0xD9, 255, 1) + b"t" * 255,
    "str16": _hdr(0xDA, 4, 2) + "日".encode() + b"x",
    "str16-300": _hdr(0xDA, 300, 2) + b"u" * 300,
    "str32": _hdr(0xDB, 2, 4) + b"ok",
    "bin8": _hdr(0xC4, 3, 1) + b"\xc1\x81\x9f",
    "bin8-empty": _hdr(0xC4, 0, 1),
    "bin16": _hdr(0xC5, 2, 2) + b"\xdc\xff",
    "bin16-256": _hdr(0xC5, 256, 2) + bytes(range(256)),
    "bin32": _hdr(0xC6, 1, 4) + b"\xc1",
    "fixext1": b"\xd4\x05\xc1",
    "fixext2": b"\xd5\x05\x81\x90",
    "fixext4": b"\xd6\x05" + b"\xc1" * 4,
    "fixext8": b"\xd7\x05" + b"\xde" * 8,
    "fixext16": b"\xd8\x05" + b"\xdf" * 16,
    "ext8": _hdr(0xC7, 3, 1) + b"\x05" + b"\xc1\xc1\xc1",
    "ext8-empty": _hdr(0xC7, 0, 1) + b"\x05",
    "ext16": _hdr(0xC8, 2, 2) + b"\x07" + b"\x92\x01",
    "ext32": _hdr(0xC9, 1, 4) + b"\x7f" + b"\xdd",
    "fixarray-empty": b"\x90",
    "fixarray-15": b"\x9f" + b"\x01" * 15,
    "fixarray-nested": b"\x92\x91\x90\x93\xc0\xc2\xc3",
    "array16": _hdr(0xDC, 2, 2) + b"\x01\xa1z",
    "array16-20": msgspec.msgpack.encode(list(range(20))),
    "array32": _hdr(0xDD, 3, 4) + b"\xc0" + _hdr(0xC4, 1, 1) + b"\xc1" + b"\x90",
    "fixmap-empty": b"\x80",
    "fixmap": msgspec.msgpack.encode({"type": "cancel", "id": 7}),
    "fixmap-15": b"\x8f" + b"".join(bytes([0xA1, 0x61 + i, i]) for i in range(15)),
    "map16": _hdr(0xDE, 1, 2) + b"\xa1k" + b"\x80",
    "map16-20": msgspec.msgpack.encode({f"k{i}": i for i in range(20)}),
    "map32": _hdr(0xDF, 2, 4) + b"\xa1a" + b"\x91\x01" + b"\xa1b" + _hdr(0xD9, 1, 1) + b"v",
    "command-new": msgspec.msgpack.encode(
        {"type": "new", "id": 2**63 - 1, "account": "東京", "symbol": "JPA-2010", "side": "buy",
         "price": 1500, "qty": 10, "ts": 1285891209018301388}
    ),
}
# Containers holding every object above, as array and as map values (nesting and counts).
MSGPACK_OBJECTS["array16-of-everything"] = _hdr(0xDC, len(MSGPACK_OBJECTS), 2) + b"".join(
    MSGPACK_OBJECTS.values()
)
MSGPACK_OBJECTS["map32-of-everything"] = _hdr(0xDF, len(MSGPACK_OBJECTS), 4) + b"".join(
    msgspec.msgpack.encode(name) + obj for name, obj in MSGPACK_OBJECTS.items()
)


def test_msgpack_fixture_objects_are_valid_msgpack() -> None:
    """The hand-made objects are real MessagePack (so the framing tests mean something)."""
    for name, obj in MSGPACK_OBJECTS.items():
        msgspec.msgpack.decode(obj)  # raises if not exactly one valid object
        assert codec._msgpack_end(obj, 0) == len(obj), name


@pytest.mark.parametrize("name", list(MSGPACK_OBJECTS))
def test_msgpack_records_single_object(name: str) -> None:
    obj = MSGPACK_OBJECTS[name]
    assert [bytes(r) for r in msgpack_records(obj)] == [obj]


def test_msgpack_records_split_a_stream_into_its_objects() -> None:
    objects = list(MSGPACK_OBJECTS.values())
    stream = b"".join(objects)
    assert [bytes(r) for r in msgpack_records(stream)] == objects


def test_msgpack_records_split_msgspec_encoded_values() -> None:
    values: list[Any] = [
        0, 1, -1, 127, 128, -32, -33, 255, 256, 2**16, 2**32, 2**63 - 1, 2**64 - 1, -(2**63),
        0.0, 1.5, -1e300, None, True, False, "", "a" * 31, "b" * 32, "c" * 256, "d" * 70000,
        b"", b"\xc1" * 300, b"\x00" * 70000, [], list(range(16)), list(range(70000)), {},
        {str(i): i for i in range(16)}, {"nested": [{"a": [1, {"b": None}]}, b"\xc1"]},
        msgspec.msgpack.Ext(1, b"x"), msgspec.msgpack.Ext(2, b"xy" * 100), msgspec.msgpack.Ext(-5, b""),
    ]
    encoded = [msgspec.msgpack.encode(v) for v in values]
    records = list(msgpack_records(b"".join(encoded)))
    assert [bytes(r) for r in records] == encoded
    assert [msgspec.msgpack.decode(r) for r in records] == values


def test_msgpack_records_are_bytes() -> None:
    assert list(msgpack_records(b"\x80\x90")) == [b"\x80", b"\x90"]


def test_msgpack_records_empty_stream() -> None:
    assert list(msgpack_records(b"")) == []


def test_msgpack_records_invalid_byte_is_one_byte_record() -> None:
    a, b = MSGPACK_OBJECTS["fixmap"], MSGPACK_OBJECTS["str8"]
    assert [bytes(r) for r in msgpack_records(a + b"\xc1" + b + b"\xc1\xc1")] == [
        a, b"\xc1", b, b"\xc1", b"\xc1",
    ]


@pytest.mark.parametrize(
    "truncated",
    [
        pytest.param(b"\x81", id="fixmap-no-entries"),
        pytest.param(b"\x82\xa1a\x01\xa1b", id="fixmap-missing-value"),
        pytest.param(b"\x92\x01", id="fixarray-short"),
        pytest.param(b"\xa5abc", id="fixstr-short"),
        pytest.param(b"\xd9", id="str8-no-length"),
        pytest.param(b"\xda\x00", id="str16-half-length"),
        pytest.param(b"\xdb\x00\x00\x00\x09abc", id="str32-short"),
        pytest.param(b"\xc6\xff\xff\xff\xff", id="bin32-huge-length"),
        pytest.param(b"\xc7\x05", id="ext8-no-type"),
        pytest.param(b"\xcf\x00\x01", id="uint64-short"),
        pytest.param(b"\xcb\x3f", id="float64-short"),
        pytest.param(b"\xd8\x05\x00", id="fixext16-short"),
        pytest.param(b"\xdd\xff\xff\xff\xff\xc0", id="array32-huge-count"),
        pytest.param(b"\xdf\x00\x00\x00\x01\xa1k", id="map32-missing-value"),
    ],
)
def test_msgpack_records_truncated_last_object_is_the_rest(truncated: bytes) -> None:
    good = MSGPACK_OBJECTS["command-new"]
    records = [bytes(r) for r in msgpack_records(good + good + truncated)]
    assert records == [good, good, truncated]
    with pytest.raises(DecodeFailure):
        msgpack_decoder.decode(records[-1])


# --------------------------------------------------------------------------- format sniffing


@pytest.mark.parametrize("first", [*range(0x80, 0x90), 0xDE, 0xDF])
def test_is_msgpack_map_headers(first: int) -> None:
    assert is_msgpack(bytes([first]) + b"\xa4type")


@pytest.mark.parametrize(
    "head",
    [b"", b"   \n\r\n", b"{", b'{"type":"new"}', b"  \n\t{", b"[", b"\x90", b"\xdc\x00\x01",
     b"\xc1", b"\x00", b"garbage", "\ufeff{".encode()],
)
def test_is_msgpack_rejects_json_and_non_maps(head: bytes) -> None:
    assert not is_msgpack(head)


def test_is_msgpack_skips_leading_whitespace() -> None:
    assert is_msgpack(b"\n \t\x81\xa4type\xa6cancel")


def test_is_msgpack_on_real_encodings() -> None:
    cmd = {"type": "instrument", "symbol": "JPA-2010", "unit": "JPA"}
    assert is_msgpack(msgspec.msgpack.encode(cmd))
    assert not is_msgpack(msgspec.json.encode(cmd))


# --------------------------------------------------------------------------- decoders


COMMANDS: list[tuple[dict[str, Any], object]] = [
    ({"type": "instrument", "symbol": "JPA-2010", "unit": "JPA"},
     ListInstrument("JPA-2010", UnitType.JPA)),
    ({"type": "instrument", "symbol": "CER-CP1", "unit": "CER", "tick": 5, "lot": 100, "ts": 1},
     ListInstrument("CER-CP1", UnitType.CER, 5, 100, 1)),
    ({"type": "new", "id": 0, "account": "a", "symbol": "S", "side": "sell", "price": 1500, "qty": 3},
     NewOrder(0, "a", "S", Side.SELL, 3, price=1500)),
    ({"type": "new", "id": INT64_MAX, "account": "a", "symbol": "S", "side": "buy", "qty": 3,
      "order_type": "market", "tif": "ioc", "extra": {"ignored": [1, 2.5]}},
     NewOrder(INT64_MAX, "a", "S", Side.BUY, 3, order_type=OrderType.MARKET, tif=TimeInForce.IOC)),
    ({"type": "new", "id": 1, "account": "a", "symbol": "S", "side": "buy", "price": -(2**63),
      "qty": 2**63 - 1, "tif": "fok"},
     NewOrder(1, "a", "S", Side.BUY, 2**63 - 1, price=-(2**63), tif=TimeInForce.FOK)),
    ({"type": "cancel", "id": 9}, CancelOrder(9)),
    ({"type": "modify", "id": 9, "qty": 4}, ModifyOrder(9, qty=4)),
    ({"type": "modify", "id": 9, "price": 1499, "ts": 7}, ModifyOrder(9, price=1499, ts=7)),
]


@pytest.mark.parametrize(("obj", "command"), COMMANDS)
def test_json_and_msgpack_decoders_agree(obj: dict[str, Any], command: object) -> None:
    assert json_decoder.decode(msgspec.json.encode(obj)) == command
    assert msgpack_decoder.decode(msgspec.msgpack.encode(obj)) == command


def test_json_decoder_accepts_crlf_and_surrounding_whitespace() -> None:
    assert json_decoder.decode(b' \t{"type":"cancel","id":9}\r') == CancelOrder(9)


BAD_JSON_RECORDS = {
    "empty": b"",
    "spaces": b"   ",
    "cr": b"\r",
    "garbage": b"garbage",
    "invalid-utf8": b"\xff\xfe",
    "array": b"[1]",
    "number": b"1",
    "string": b'"new"',
    "null": b"null",
    "empty-object": b"{}",
    "unknown-type": b'{"type":"nope","id":1}',
    "missing-id": b'{"type":"cancel"}',
    "negative-id": b'{"type":"cancel","id":-1}',
    "id-2**63": b'{"type":"cancel","id":9223372036854775808}',
    "bool-id": b'{"type":"cancel","id":true}',
    "float-id": b'{"type":"cancel","id":1.0}',
    "string-id": b'{"type":"cancel","id":"1"}',
    "invalid-utf8-account": b'{"type":"new","id":1,"account":"\xff","symbol":"S","side":"buy",'
                            b'"price":1,"qty":1}',
    "deep-junk": b'{"type":"cancel","id":1,"junk":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("record", BAD_JSON_RECORDS.values(), ids=BAD_JSON_RECORDS.keys())
def test_bad_json_records_raise_only_decode_failures(record: bytes) -> None:
    with pytest.raises(DecodeFailure):
        json_decoder.decode(record)


BAD_MSGPACK_RECORDS = {
    "invalid-byte": b"\xc1",
    "array": b"\x91\x01",
    "int": b"\x01",
    "nil": b"\xc0",
    "empty-map": b"\x80",
    "unknown-type": b"\x81\xa4type\xa4nope",
    "bool-id": b"\x82\xa4type\xa6cancel\xa2id\xc3",
    "invalid-utf8-id": b"\x82\xa4type\xa6cancel\xa2id\xa1\xff",
    "deep-id": b"\x82\xa4type\xa6cancel\xa2id" + b"\x91" * 100_000 + b"\x90",
    "truncated": b"\x82\xa4type\xa6cancel",
}


@pytest.mark.parametrize("record", BAD_MSGPACK_RECORDS.values(), ids=BAD_MSGPACK_RECORDS.keys())
def test_bad_msgpack_records_raise_only_decode_failures(record: bytes) -> None:
    with pytest.raises(DecodeFailure):
        msgpack_decoder.decode(record)


# --------------------------------------------------------------------------- describe_fault


def _fault(record: bytes, msgpack: bool = False) -> tuple[int | None, str]:
    decoder = msgpack_decoder if msgpack else json_decoder
    try:
        decoder.decode(record)
    except DecodeFailure as exc:
        return describe_fault(record, exc, msgpack)
    raise AssertionError(f"{record!r} decoded")


@pytest.mark.parametrize(
    ("obj", "oid"),
    [
        ({"type": "new", "id": 7}, 7),
        ({"type": "cancel", "id": 0, "ts": 1.5}, 0),
        ({"type": "cancel", "id": INT64_MAX, "ts": "x"}, INT64_MAX),
        ({"type": "nope", "id": 5}, 5),
        ({"id": 5}, 5),
        ({"type": "cancel", "id": INT64_MAX + 1}, None),
        ({"type": "cancel", "id": -1}, None),
        ({"type": "cancel", "id": True}, None),
        ({"type": "cancel", "id": 7.0}, None),
        ({"type": "cancel", "id": "7"}, None),
        ({"type": "cancel", "id": None}, None),
        ({"type": "cancel", "id": [7]}, None),
        ({"type": "cancel"}, None),
    ],
)
@pytest.mark.parametrize("msgpack", [False, True], ids=["json", "msgpack"])
def test_describe_fault_reports_a_valid_id_only(obj: dict[str, Any], oid: int | None, msgpack: bool) -> None:
    record = msgspec.msgpack.encode(obj) if msgpack else msgspec.json.encode(obj)
    found, detail = _fault(record, msgpack)
    assert found == oid
    assert isinstance(detail, str) and detail


@pytest.mark.parametrize(
    "record",
    [b"garbage", b"[7]", b"7", b"null", b'{"type":"cancel","id":7', b'{"type":"cancel","id":7}{"id":8}'],
)
def test_describe_fault_without_an_object_has_no_id(record: bytes) -> None:
    found, detail = _fault(record)
    assert found is None
    assert detail


def test_describe_fault_detail_is_the_exception_text() -> None:
    record = b'{"type":"new","id":7,"account":"a","symbol":"S","side":"buy","price":1500.0,"qty":1}'
    try:
        json_decoder.decode(record)
    except DecodeFailure as exc:
        assert describe_fault(record, exc, False) == (7, str(exc))
        assert "price" in str(exc)
    else:
        raise AssertionError("a float price decoded")


def test_describe_fault_accepts_a_memoryview() -> None:
    data = b"\x00" + msgspec.msgpack.encode({"type": "cancel", "id": 11, "ts": 0.5})
    record = memoryview(data)[1:]
    found, _ = _fault(bytes(record), msgpack=True)
    assert found == 11
    assert describe_fault(record, ValueError("x"), True) == (11, "x")


# --------------------------------------------------------------------------- decoded commands

_DECODED_LOG = b"""\
{"type":"instrument","symbol":"A","unit":"EUA"}
{"type":"instrument","symbol":"T","unit":"JPA","tick":5,"lot":10}
{"type":"new","id":1,"account":"s","symbol":"A","side":"sell","qty":10,"price":100}
{"type":"new","id":2,"account":"s","symbol":"A","side":"sell","qty":10,"price":101,"post_only":true}
{"type":"new","id":3,"account":"b","symbol":"A","side":"buy","qty":5,"price":101,"post_only":true}
{"type":"new","id":4,"account":"b","symbol":"A","side":"buy","qty":30,"order_type":"market","cap":1505}
{"type":"new","id":5,"account":"b","symbol":"A","side":"buy","qty":5,"price":99,"tif":"ioc"}
{"type":"new","id":6,"account":"b","symbol":"A","side":"buy","qty":50,"price":101,"tif":"fok"}
{"type":"new","id":7,"account":"s","symbol":"A","side":"buy","qty":5,"price":101,"stp":"cancel_resting"}
{"type":"new","id":8,"account":"b","symbol":"A","side":"buy","qty":5,"price":100,"order_type":"market"}
{"type":"new","id":9,"account":"b","symbol":"A","side":"buy","qty":5,"order_type":"limit"}
{"type":"new","id":10,"account":"b","symbol":"A","side":"sell","qty":5,"order_type":"market","cap":5}
{"type":"new","id":11,"account":"b","symbol":"A","side":"buy","qty":5,"order_type":"market","cap":0}
{"type":"new","id":12,"account":"b","symbol":"A","side":"buy","qty":5,"price":100,"tif":"ioc","post_only":true}
{"type":"new","id":13,"account":"b","symbol":"T","side":"buy","qty":10,"price":1003}
{"type":"new","id":14,"account":"b","symbol":"T","side":"buy","qty":15,"price":1005}
{"type":"new","id":1,"account":"b","symbol":"T","side":"buy","qty":10,"price":0}
{"type":"new","id":1,"account":"b","symbol":"T","side":"buy","qty":0,"price":1005}
{"type":"new","id":1,"account":"b","symbol":"T","side":"buy","qty":10,"price":1005}
{"type":"new","id":15,"account":"b","symbol":"NOPE","side":"buy","qty":10,"price":1005}
{"type":"new","id":16,"account":"b","symbol":"A","side":"buy","qty":-5,"price":-1}
"""


@pytest.mark.parametrize("msgpack", [False, True])
def test_decoded_commands_give_the_events_of_the_checked_path(msgpack: bool) -> None:
    """``apply_all(decoded=True)`` skips the type tests that decoding made, nothing else."""
    lines = _DECODED_LOG.splitlines()
    if msgpack:
        lines = [msgspec.msgpack.encode(msgspec.json.decode(line)) for line in lines]
    decode = msgpack_decoder.decode if msgpack else json_decoder.decode
    commands = [decode(line) for line in lines]
    checked = Engine()
    expected = [event for command in commands for event in checked.apply(command)]
    decoded = Engine()
    assert decoded.apply_all(commands, decoded=True) == expected
    assert decoded.state_hash() == checked.state_hash()
    reasons = {getattr(event, "reason", None) for event in expected}
    assert reasons >= {"malformed", "bad_price", "bad_qty", "duplicate_id", "post_only",
                       "unknown_symbol", "ioc", "fok", "market", "self_trade"}


# --------------------------------------------------------------------------- command_batches

_FAULTY_LOG = (
    b'{"type":"cancel","id":1}\n\n{"type":"cancel","id":"x\n   \n{"type":"cancel","id":2}\r\n'
    b'{"type":"cancel","id":-3}\n"abc\n{"type":"cancel","id":4} x\n{"type":"cancel","id":5}\n{"type":"cancel"'
)


def _one_at_a_time(data: bytes) -> list[object]:
    """What command_batches must give: each line (without its newline) decoded on its own."""
    out: list[object] = []
    for line, record in enumerate(data.split(b"\n"), 1):
        try:
            if not record.isascii():
                record.decode()
            out.append(json_decoder.decode(record))
        except DecodeFailure as exc:
            if record.strip():
                oid, detail = describe_fault(record, exc, False)
                out.append(Undecodable(line, detail, oid))
    return out


@pytest.mark.parametrize("data", [_FAULTY_LOG, _FAULTY_LOG.replace(b'"x\n', '"é\n'.encode()),
                                  _FAULTY_LOG.replace(b'"x\n', b'"\xff\n')], ids=["ascii", "utf8", "bad-utf8"])
@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 22])
def test_command_batches_decode_every_line_in_place(
    monkeypatch: pytest.MonkeyPatch, data: bytes, chunk: int
) -> None:
    monkeypatch.setattr(codec, "_CHUNK", chunk)
    batches = list(codec.command_batches(io.BytesIO(data), False))
    assert [c for commands, _, _, _ in batches for c in commands] == _one_at_a_time(data)
    assert sum(n for _, n, _, _ in batches) == data.count(b"\n") + 1
    assert sum(size for _, _, size, _ in batches) == len(data) + 1  # the last line counted with a newline


_EXTRA = [
    {"type": "instrument", "symbol": "A", "unit": "JPA", "production": 5},
    {"type": "new", "id": 1, "account": "a", "symbol": "A", "side": "buy", "qty": 1, "price": 1,
     "purpose": "x"},
    {"type": "new", "purpose": "x", "id": 2, "account": "a", "symbol": "A", "side": "buy", "qty": 1,
     "price": "1"},
    {"type": "cancel", "id": 1},
    {"type": "allocate", "account": "op", "period": 2010, "method": "benchmark", "activity": 5, "intensity": 3,
     "beneficiary": "b"},
    {"type": "emissions", "account": "op", "period": 2010, "tonnes": 5, "beneficiary": "b", "purpose": "p"},
]


@pytest.mark.parametrize("msgpack", [False, True])
@pytest.mark.parametrize("chunk", [1, 1 << 22])
def test_records_with_fields_the_log_ignores_are_decoded_without_them_and_counted(
        monkeypatch: pytest.MonkeyPatch, msgpack: bool, chunk: int) -> None:
    """ORDER-LOG.md: fields the contract does not name are ignored; the decoder says how many
    records carried some, by the first such field's name (a record that is malformed anyway is
    malformed, as before, and not counted)."""
    monkeypatch.setattr(codec, "_CHUNK", chunk)
    enc = msgspec.msgpack.encode if msgpack else lambda r: msgspec.json.encode(r) + b"\n"
    batches = list(codec.command_batches(io.BytesIO(b"".join(enc(r) for r in _EXTRA)), msgpack))
    commands = [c for cmds, _, _, _ in batches for c in cmds]
    ignored = sum((i for _, _, _, i in batches), Counter())
    assert ignored == {"production": 1, "purpose": 1, "intensity": 1, "beneficiary": 1}
    assert commands[0] == ListInstrument("A", UnitType.JPA)
    assert commands[1] == NewOrder(1, "a", "A", Side.BUY, 1, 1)
    assert isinstance(commands[2], Undecodable) and "$.price" in commands[2].detail
    assert commands[4] == Allocate(account="op", period=2010, method="benchmark", activity=5)
    assert commands[5] == RecordEmissions(account="op", period=2010, tonnes=5)
    assert all(type(c) in get_args(Command) for c in commands if type(c) is not Undecodable)


# --------------------------------------------------------------------------- byte-order mark, names


@pytest.mark.parametrize("data", [_FAULTY_LOG, _DECODED_LOG, b"", b"\n"])
@pytest.mark.parametrize("step", [1, 2, 5, 1 << 22])
def test_a_byte_order_mark_at_the_start_is_skipped(data: bytes, step: int) -> None:
    """A UTF-8 BOM before line 1 (files and pipes, however the reads are cut) changes nothing;
    anywhere else it is part of its line."""
    plain = [c for commands, _, _, _ in codec.command_batches(io.BytesIO(data), False) for c in commands]
    with_bom = TrickleStream(codec.BOM + data, step)
    assert [c for commands, _, _, _ in codec.command_batches(with_bom, False) for c in commands] == plain
    later = b'{"type":"cancel","id":1}\n' + codec.BOM + b'{"type":"cancel","id":2}\n'
    second = [c for commands, _, _, _ in codec.command_batches(io.BytesIO(later), False) for c in commands][1]
    assert isinstance(second, Undecodable) and second.line == 2


def _new(account: str, oid: int = 1) -> dict[str, Any]:
    return {"type": "new", "id": oid, "account": account, "symbol": "A", "side": "buy", "qty": 1, "price": 1}


NAMES = [
    pytest.param("x" * NAME_MAX, None, id="at-the-limit"),
    pytest.param("東京電力\u00a0株式会社", None, id="unicode-and-nbsp"),
    pytest.param("x" * (NAME_MAX + 1), f"<= {NAME_MAX}", id="too-long"),
    pytest.param("x" * 10_000_000, f"<= {NAME_MAX}", id="10-MB"),
    pytest.param("a\u0000b", "U+0000", id="nul"),
    pytest.param("a\nb", "U+000A", id="newline"),
    pytest.param("a\x7fb", "U+007F", id="del"),
    pytest.param("a\u0085b", "U+0085", id="c1"),
]


@pytest.mark.parametrize(("account", "fault"), NAMES)
@pytest.mark.parametrize("msgpack", [False, True], ids=["json", "msgpack"])
def test_names_have_a_length_limit_and_no_control_characters(account: str, fault: str | None,
                                                            msgpack: bool) -> None:
    """A name over the limit or with a control character makes its line malformed, with the limit
    in the detail, whichever way it is written; lines around it are untouched."""
    good = _new("b", 2)
    objects = [good, _new(account), {"type": "account", "account": account}, good]
    encode = msgspec.msgpack.encode if msgpack else (lambda o: msgspec.json.encode(o) + b"\n")
    raw = [encode(o) for o in objects]
    if not msgpack and "\x7f" in account:
        assert b"\x7f" in raw[1]  # DEL is written as it is, not escaped
    batches = codec.command_batches(io.BytesIO(b"".join(raw)), msgpack)
    got = [c for commands, _, _, _ in batches for c in commands]
    assert got[0] == got[3] == NewOrder(2, "b", "A", Side.BUY, 1, 1)
    if fault is None:
        assert isinstance(got[1], NewOrder) and got[1].account == account
        return
    for line, oid, name in ((2, 1, "account"), (3, None, "account")):
        bad = got[line - 1]
        assert isinstance(bad, Undecodable) and (bad.line, bad.id) == (line, oid)
        assert fault in bad.detail and str(NAME_MAX) in bad.detail and name in bad.detail
