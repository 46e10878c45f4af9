"""Order-log encoding: msgspec decoders for commands, encoders for events, record framing.

One Decoder and one Encoder per format are built once and reused (msgspec's own
advice). :func:`command_batches` turns a log into batches of commands; a record that
cannot be decoded becomes an ``Undecodable``, which the engine answers with a
``rejected`` event with reason ``malformed``, so a replay never stops.
"""

from __future__ import annotations

import io
import re
import types
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from typing import Any, BinaryIO, Union, get_args

import msgspec

from carbonbook._types import INT64_MAX
from carbonbook.commands import Command, Undecodable, names_fault

_LENIENT: dict[type, type] = {cls: types.new_class(cls.__name__, (cls,), {"forbid_unknown_fields": False})
                              for cls in get_args(Command)}
"""Each command class's twin that skips unknown fields (the commands themselves forbid them)."""
_LenientCommand = Union[tuple(_LENIENT.values())]  # type: ignore[valid-type]  # noqa: UP007
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `([^`]*)`$")


def _unknown_field(exc: Exception) -> str | None:
    """The field a record's decoding stopped at because its command has no such field (a
    top-level one only), or None for any other fault."""
    m = _UNKNOWN_FIELD.match(str(exc)) if isinstance(exc, msgspec.ValidationError) else None
    return None if m is None else m.group(1)


class CommandDecoder:
    """Decodes one order-log record into a command, as the order log does: types and bounds
    validated, fields it does not name ignored (``decode``). ``strict`` (a msgspec Decoder) raises
    on an unknown field instead, at no extra cost per record; ``relaxed`` decodes such a record
    again with the fields skipped (its ``ignored``: the first unknown field's name)."""

    def __init__(self, strict: msgspec.json.Decoder[Any] | msgspec.msgpack.Decoder[Any],
                 lenient: msgspec.json.Decoder[Any] | msgspec.msgpack.Decoder[Any]) -> None:
        self.strict = strict
        self._lenient = lenient

    def relaxed(self, record: bytes) -> Command:
        """``record`` decoded with unknown fields skipped (DecodeFailure as any record)."""
        twin = self._lenient.decode(record)
        cls = twin.__class__.__mro__[1]
        return cls(**{f: getattr(twin, f) for f in cls.__struct_fields__})  # type: ignore[no-any-return]

    def decode(self, record: bytes) -> Command:
        """``record`` as a command, unknown fields skipped; DecodeFailure if it is not one."""
        try:
            return self.strict.decode(record)  # type: ignore[no-any-return]
        except msgspec.ValidationError as exc:
            if _unknown_field(exc) is None:
                raise
        return self.relaxed(record)


json_decoder = CommandDecoder(msgspec.json.Decoder(Command), msgspec.json.Decoder(_LenientCommand))
"""Decodes one JSON order-log line into a command (types and bounds validated)."""
msgpack_decoder = CommandDecoder(msgspec.msgpack.Decoder(Command), msgspec.msgpack.Decoder(_LenientCommand))
"""Decodes one MessagePack object into a command."""
json_encoder = msgspec.json.Encoder()
"""Encodes events; ``json_encoder.encode_lines(events)`` gives JSON Lines."""

DecodeFailure = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)
"""The exceptions a decoder raises for a bad record (msgspec raises UnicodeDecodeError for
invalid UTF-8 in a string it reads, RecursionError for very deeply nested input)."""

BOM = b"\xef\xbb\xbf"
"""The UTF-8 byte-order mark, skipped at the start of a JSON Lines log or events file."""
_CHUNK = 1 << 22
_MSGPACK_BATCH = 16384  # MessagePack records per batch


Batch = tuple[list[Command | Undecodable], int, int, Counter[str]]
"""A decoded batch of an order log (:func:`command_batches`)."""


def command_batches(source: BinaryIO, msgpack: bool) -> Iterator[Batch]:
    """Decode an order log a batch at a time: ``(commands, records, size, ignored)`` per batch.

    A batch is a 4 MiB chunk of JSON Lines or 16,384 MessagePack objects; ``records``
    counts its records (blank JSON lines included, though they give no command) and
    ``size`` its input bytes (a byte-order mark left out). A record that does not decode,
    or whose names break the rule of names (:func:`~carbonbook._types.name_fault`), becomes an
    :class:`~carbonbook.commands.Undecodable` with its 1-based line, in its place. A record with
    fields its command does not have is decoded without them (the order log ignores them) and
    counted in ``ignored`` under the first such field's name; only such records pay for it.
    """
    line = 0
    blocks: Iterator[_Block]
    if msgpack:
        decoder = msgpack_decoder
        objects = msgpack_records(source.read())
        blocks = ((batch, b"", sum(map(len, batch)))
                  for batch in iter(lambda: list(islice(objects, _MSGPACK_BATCH)), []))
    else:
        decoder = json_decoder
        blocks = _jsonl_blocks(source)
    for batch, block, size in blocks:
        ignored: Counter[str] = Counter()
        # JSON lines keep their newline (msgspec reads it as trailing whitespace): a record
        # that fails is looked at again without it (_decode_record)
        if msgpack:
            commands = _decode_valid_utf8(batch, decoder, line, msgpack, ignored)
            for i, command in enumerate(commands):  # one per record: names are checked here
                if command.__class__ is not Undecodable:
                    commands[i] = _named(command, line + i + 1)  # type: ignore[arg-type]
            line += len(batch)
        elif block.isascii() and b"\\" not in block and b"\x7f" not in block:
            # no record can hold invalid UTF-8, and none a control character in a name: in ASCII
            # JSON that takes an escape (a backslash) or DEL
            commands = _decode_valid_utf8(batch, decoder, line, msgpack, ignored)
            line += len(batch)
        else:
            commands = []
            for record in batch:
                line += 1
                _decode_record(record, decoder, line, commands, ignored)
        if not msgpack and batch and batch[-1][-1:] != b"\n":
            size += 1  # a last line without a newline is counted as if it had one
        yield commands, len(batch), size, ignored


def _decode_valid_utf8(
    batch: list[bytes], decoder: CommandDecoder, line: int, msgpack: bool, ignored: Counter[str],
) -> list[Command | Undecodable]:
    """Decode a batch whose records need no UTF-8 check (``line``: the line before its first)."""
    commands: list[Command | Undecodable] = []
    records = iter(batch)
    decode = decoder.strict.decode
    done = 0  # records consumed
    while True:
        start = len(commands)
        try:
            # A run of good records decodes with no Python code per record; on a bad one,
            # list.extend has kept the commands decoded before it (so they tell its position).
            commands.extend(map(decode, records))
            return commands
        except DecodeFailure:
            done += len(commands) - start
            done += 1
            _decode_record(batch[done - 1], decoder, line + done, commands, ignored, msgpack)


def _decode_record(
    record: bytes, decoder: CommandDecoder, line: int, commands: list[Command | Undecodable],
    ignored: Counter[str], msgpack: bool = False,
) -> None:
    """Append the command of ``record`` (line ``line``; a JSON line's newline is dropped), its
    Undecodable, or nothing for a blank JSON line; count it in ``ignored`` when it had fields
    its command has not."""
    if not msgpack and record[-1:] == b"\n":
        record = record[:-1]
    try:
        if not msgpack and not record.isascii():
            record.decode()  # msgspec skips unknown fields unread: invalid UTF-8 is malformed
        try:
            commands.append(_named(decoder.strict.decode(record), line))
        except msgspec.ValidationError as exc:
            field = _unknown_field(exc)
            if field is None:
                raise
            commands.append(_named(decoder.relaxed(record), line))
            ignored[field] += 1
    except DecodeFailure as exc:
        if msgpack or record.strip():
            oid, detail = describe_fault(record, exc, msgpack)
            commands.append(Undecodable(line, detail, oid))


def _named(command: Command, line: int) -> Command | Undecodable:
    """``command`` (decoded from line ``line``), or its Undecodable if a name breaks the rule."""
    fault = names_fault(command)
    return command if fault is None else Undecodable(line, fault, getattr(command, "id", None))


_Block = tuple[list[bytes], bytes, int]


def _jsonl_blocks(stream: BinaryIO) -> Iterator[_Block]:
    """Split a JSON Lines stream into lists of lines, each with its newline, read in chunks of
    4 MiB (BytesIO finds the newlines with memchr, several times cheaper than ``bytes.split``).
    Each list comes with the bytes it was split from (which may run on into the first line of
    the next list: a test of every byte of it holds for every line of the list) and the size of
    its lines.

    Every line of the input appears once, in order, blank lines included, so the caller's
    running count is the 1-based line number. A final line without a newline is kept. A UTF-8
    byte-order mark at the start (as some editors write) is dropped.
    """
    tail = b""
    chunk = stream.read(_CHUNK)
    while len(chunk) < len(BOM) and (more := stream.read(_CHUNK)):  # a pipe may give less than asked
        chunk += more
    chunk = chunk.removeprefix(BOM) or stream.read(_CHUNK)
    while chunk:
        block = tail + chunk
        lines = io.BytesIO(block).readlines()
        tail = lines.pop() if lines[-1][-1:] != b"\n" else b""
        yield lines, block, len(block) - len(tail)
        chunk = stream.read(_CHUNK)
    if tail:
        yield [tail], tail, len(tail)


def jsonl_records(stream: BinaryIO) -> Iterator[list[bytes]]:
    """The lines of :func:`_jsonl_blocks`, without their newlines."""
    for lines, _, _ in _jsonl_blocks(stream):
        yield [line[:-1] if line[-1:] == b"\n" else line for line in lines]


def msgpack_records(data: bytes) -> Iterator[bytes]:
    """Split a stream of concatenated MessagePack objects into one buffer per object.

    An invalid byte (0xc1) becomes a one-byte record; a truncated last object becomes
    one record holding the rest. Both then fail to decode and are reported.
    """
    pos, end = 0, len(data)
    while pos < end:
        try:
            stop = _msgpack_end(data, pos)
        except ValueError as exc:
            stop = pos + 1 if str(exc) == "invalid" else end
        yield data[pos:stop]
        pos = stop


def wants_msgpack(fmt: str, path: str, source: io.BufferedReader) -> bool:
    """Is the log MessagePack? ``fmt`` is ``auto``, ``jsonl`` or ``msgpack``; ``auto`` looks at
    the extension, then the first bytes (peeked: standard input may be a pipe)."""
    if fmt != "auto":
        return fmt == "msgpack"
    if path.endswith((".msgpack", ".mpk")):
        return True
    if path.endswith((".jsonl", ".json", ".ndjson")):
        return False
    return is_msgpack(source.peek(64)[:64])


def is_msgpack(head: bytes) -> bool:
    """Guess the format from the first bytes: a MessagePack map header, not JSON text."""
    stripped = head.lstrip()
    return bool(stripped) and (0x80 <= stripped[0] <= 0x8F or stripped[0] in (0xDE, 0xDF))


def describe_fault(record: bytes, exc: Exception, msgpack: bool) -> tuple[int | None, str]:
    """The order id of a bad record, when it has a valid one, and a short reason."""
    try:
        obj = msgspec.msgpack.decode(record) if msgpack else msgspec.json.decode(record)
    except DecodeFailure:
        obj = None
    oid = obj.get("id") if isinstance(obj, dict) else None
    if not (oid.__class__ is int and 0 <= oid <= INT64_MAX):
        oid = None
    return oid, str(exc)


# MessagePack framing: bytes that follow a type byte, and how many objects follow it.
_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
          0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
# type byte -> (width of its length field, extra bytes after it, objects per unit of length)
_SIZED = {0xC4: (1, 0, 0), 0xC5: (2, 0, 0), 0xC6: (4, 0, 0), 0xC7: (1, 1, 0), 0xC8: (2, 1, 0),
          0xC9: (4, 1, 0), 0xD9: (1, 0, 0), 0xDA: (2, 0, 0), 0xDB: (4, 0, 0),
          0xDC: (2, 0, 1), 0xDD: (4, 0, 1), 0xDE: (2, 0, 2), 0xDF: (4, 0, 2)}


def _msgpack_end(buf: bytes, pos: int) -> int:
    """The offset just past the MessagePack object at ``pos``.

    Raises ValueError("invalid") on the never-used byte 0xc1 and ValueError("truncated")
    when the buffer ends inside the object.
    """
    end = len(buf)
    pending = 1
    while pending:
        if pos >= end:
            raise ValueError("truncated")
        b = buf[pos]
        pos += 1
        pending -= 1
        if b <= 0x7F or b >= 0xE0:
            continue
        if b <= 0x8F:
            pending += 2 * (b & 0x0F)
        elif b <= 0x9F:
            pending += b & 0x0F
        elif b <= 0xBF:
            pos += b & 0x1F
        elif b in _FIXED:
            pos += _FIXED[b]
        elif b in _SIZED:
            width, extra, objects = _SIZED[b]
            if pos + width > end:
                raise ValueError("truncated")
            length = int.from_bytes(buf[pos:pos + width], "big")
            pos += width
            if objects:
                pending += objects * length
            else:
                pos += extra + length
        else:
            raise ValueError("invalid")
    if pos > end:
        raise ValueError("truncated")
    return pos
