"""Replay an order log through an :class:`~carbonbook.engine.Engine`, writing its events.

Every record gives events: a decodable command is applied, an undecodable one is a
``rejected`` event with reason ``malformed`` and its 1-based ``line`` (blank JSON
lines are counted but give nothing). Events are written as JSON Lines in batches.
Nothing here reads the clock, so the same log always gives the same bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from carbonbook._types import RejectReason
from carbonbook.codec import (
    DecodeFailure,
    describe_fault,
    json_decoder,
    json_encoder,
    jsonl_records,
    msgpack_decoder,
    msgpack_records,
)
from carbonbook.engine import Engine
from carbonbook.events import Event, Rejected, Trade

_FLUSH = 8192  # events per write


@dataclass
class SymbolTally:
    """Trading figures of one instrument over a replay."""

    trades: int = 0
    volume: int = 0
    notional: int = 0
    last: int | None = None

    @property
    def vwap(self) -> int | None:
        """Volume-weighted average price, rounded down to an integer."""
        return self.notional // self.volume if self.volume else None


@dataclass
class ReplayTally:
    """What a replay read and wrote."""

    records: int = 0
    events: Counter[str] = field(default_factory=Counter)
    """Events written, by ``type``."""
    rejections: Counter[str] = field(default_factory=Counter)
    symbols: dict[str, SymbolTally] = field(default_factory=dict)

    def add(self, events: list[Event]) -> None:
        """Count a batch of events."""
        for cls, n in Counter(map(type, events)).items():
            self.events[cls.__struct_config__.tag] += n  # type: ignore[attr-defined]
        for e in events:
            cls = e.__class__
            if cls is Trade:
                tally = self.symbols.get(e.symbol)  # type: ignore[union-attr]
                if tally is None:
                    tally = self.symbols[e.symbol] = SymbolTally()  # type: ignore[union-attr]
                tally.trades += 1
                tally.volume += e.qty  # type: ignore[union-attr]
                tally.notional += e.qty * e.price  # type: ignore[union-attr]
                tally.last = e.price  # type: ignore[union-attr]
            elif cls is Rejected:
                self.rejections[e.reason] += 1  # type: ignore[union-attr]


def replay(
    source: BinaryIO,
    engine: Engine,
    write: Callable[[bytes], object],
    msgpack: bool = False,
) -> ReplayTally:
    """Apply every record of ``source`` to ``engine``; pass the events' JSON Lines to ``write``."""
    tally = ReplayTally()
    out: list[Event] = []
    apply = engine.apply

    def flush() -> None:
        tally.add(out)
        write(json_encoder.encode_lines(out))
        out.clear()

    def malformed(record: bytes | memoryview, exc: Exception, line: int) -> None:
        oid, detail = describe_fault(record, exc, msgpack)
        out.extend(engine.reject(RejectReason.MALFORMED, detail, oid, line))

    line = 0
    if msgpack:
        decode = msgpack_decoder.decode
        for record in msgpack_records(source.read()):
            line += 1
            try:
                out += apply(decode(record))
            except DecodeFailure as exc:
                malformed(record, exc, line)
            if len(out) >= _FLUSH:
                flush()
    else:
        decode = json_decoder.decode
        for lines in jsonl_records(source):
            for record in lines:
                line += 1
                try:
                    out += apply(decode(record))
                except DecodeFailure as exc:
                    if record.strip():
                        malformed(record, exc, line)
            if len(out) >= _FLUSH:
                flush()
    flush()
    tally.records = line
    return tally
