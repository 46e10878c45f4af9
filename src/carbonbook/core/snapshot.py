"""Engine state as data: export, restore, a state hash, and snapshot files.

State
    :class:`EngineState` is the whole logical state of an :class:`~carbonbook.core.engine.Engine`:
    the next event ``seq``; every book in listing order (:class:`BookState`: instrument
    definition, phase class, ``phase``, ``call_only``, ``band``, ``reference``, the
    ``pending`` call flag, each side's levels best first with their live orders in time
    priority, the market orders of a call, and the call's bookkeeping: arrival order,
    its clock, and the orders that expire at the uncross, in their order); and the id
    index in insertion order, each id with its status (``open``, ``filled``,
    ``cancelled``, or ``bid`` for a primary-auction bid); and the primary auctions in
    opening order (:class:`~carbonbook.core.primary.AuctionState`: terms, closed flag, the open
    auction's bids in arrival order). Open orders are stored once, on their level; the
    index only names them.

    Dead entries (cancelled orders not yet popped from a level's deque) are an internal
    detail with no effect on any event, so they are not part of the state: a restored
    book holds live orders only, as if every level had just been compacted.

State hash
    :func:`state_hash` is the SHA-256 of the MessagePack encoding of :class:`EngineState`
    (msgspec encodes Struct fields in declaration order and lists in order, and every
    collection above is listed in an order the engine itself determines), so two engines
    that applied the same commands, or one and its restored copy, hash the same.

Snapshot files
    ``MAGIC`` (8 bytes), then ``<I crc32><Q length>`` (little-endian) and ``length`` bytes
    of MessagePack :class:`SnapshotFile` (the state plus the journal position it
    corresponds to: the number of commands journaled and the byte offset just past the
    last of them). The CRC-32 covers the MessagePack bytes. Other kinds of snapshot (a
    venue's, see :mod:`carbonbook.operations.journal`) use the same frame with their own
    magic. Files are written to a temporary name, fsynced and renamed, so a reader sees a
    whole snapshot or none.
"""

from __future__ import annotations

import os
import struct
import zlib
from itertools import count
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

import msgspec

from carbonbook._types import CancelReason, Phase, SelfTradePrevention, Side, UnitType
from carbonbook.core import book as pure
from carbonbook.core import phases
from carbonbook.core.book import CANCELLED, FILLED, BookSide, Index, Order, OrderBook
from carbonbook.core.primary import BID, Auctions, AuctionState, export_auctions
from carbonbook.errors import SnapshotError

if TYPE_CHECKING:  # pathlib (with urllib.parse and ipaddress) costs replay's start-up ~3 ms
    from pathlib import Path

STATE_VERSION = 1
MAGIC = b"CBSNAP01"
_HEAD = struct.Struct("<IQ")
S = TypeVar("S")

OPEN = "open"
"""Index status of an order that rests (its details are on its book)."""

_STATUSES = frozenset((OPEN, FILLED, CANCELLED, BID))


class OrderRecord(msgspec.Struct, array_like=True, frozen=True):
    """A live order: its symbol is its book's; ``price`` is 0 for a market order of a call."""

    id: int
    account: str
    side: Side
    price: int
    qty: int
    post_only: bool
    stp: SelfTradePrevention


class LevelState(msgspec.Struct, array_like=True, frozen=True):
    """One price level: its live orders in time priority."""

    price: int
    orders: list[OrderRecord]


class BookState(msgspec.Struct, frozen=True):
    """Everything one book holds (see the module docstring)."""

    symbol: str
    unit: UnitType
    tick: int
    lot: int
    kind: str
    phase: Phase
    call_only: bool
    band: int | None
    reference: int | None
    pending: bool
    bids: list[LevelState]
    asks: list[LevelState]
    market_bids: list[OrderRecord]
    market_asks: list[OrderRecord]
    arrival: list[tuple[int, int]]
    clock: int
    expiring: list[tuple[int, CancelReason]]
    currency: str | None = None


class EngineState(msgspec.Struct, frozen=True):
    """The whole state of an engine: ``seq`` is the number its next event will take."""

    seq: int
    books: list[BookState]
    index: list[tuple[int, str]]
    version: int = STATE_VERSION
    auctions: list[AuctionState] = []


class SnapshotFile(msgspec.Struct, frozen=True):
    """A snapshot: the engine state after the first ``records`` journaled commands, which
    end at byte ``offset`` of the journal."""

    records: int
    offset: int
    state: EngineState


_encoder = msgspec.msgpack.Encoder()
_file_decoder = msgspec.msgpack.Decoder(SnapshotFile)


# -- export ---------------------------------------------------------------------------


def peek(counter: count[int]) -> int:
    """The value ``next(counter)`` would give, without advancing it.

    Read from ``repr`` ("count(5)"): copying or pickling itertools objects is deprecated
    since Python 3.12 and gone in 3.14.
    """
    return int(repr(counter)[6:-1])


def _record(order: Order) -> OrderRecord:
    return OrderRecord(order.id, order.account, order.side, order.price, order.qty,
                       order.post_only, order.stp)


def _side_state(side: BookSide) -> list[LevelState]:
    return [LevelState(level.price, [_record(o) for o in level.live()]) for level in side.in_priority()]


def export_book(book: OrderBook) -> BookState:
    """The state of one book. O(orders)."""
    return BookState(
        symbol=book.symbol,
        unit=book.unit,
        tick=book.tick,
        lot=book.lot,
        kind=book.__class__.__name__,
        phase=book.phase,
        call_only=book.call_only,
        band=book.band,
        reference=book.reference,
        currency=book.currency,
        pending=book.pending,
        bids=_side_state(book.bids),
        asks=_side_state(book.asks),
        market_bids=[_record(o) for o in book.market_bids if o.qty],
        market_asks=[_record(o) for o in book.market_asks if o.qty],
        arrival=list(book._arrival.items()),
        clock=peek(book._clock),
        expiring=list(book._expiring.items()),
    )


def export_state(seq: count[int], books: dict[str, OrderBook], index: Index,
                 auctions: Auctions | None = None) -> EngineState:
    """The state of an engine's parts: its sequence, its books, its id index and its primary
    auctions. O(orders + ids + bids)."""
    return EngineState(
        seq=peek(seq),
        books=[export_book(book) for book in books.values()],
        index=[(oid, entry if isinstance(entry, str) else OPEN) for oid, entry in index.items()],
        auctions=export_auctions(auctions or {}),
    )


def state_hash(state: EngineState) -> str:
    """The SHA-256 (hex) of the canonical MessagePack encoding of ``state``."""
    import hashlib  # here: loading OpenSSL costs every engine's start-up ~2 ms

    return hashlib.sha256(_encoder.encode(state)).hexdigest()


# -- restore --------------------------------------------------------------------------


def _order(core: ModuleType, rec: OrderRecord, symbol: str) -> Order:
    return core.Order(rec.id, rec.account, symbol, rec.side, rec.price,  # type: ignore[no-any-return]
                      rec.qty, rec.post_only, rec.stp)


def _restore_side(book: OrderBook, is_buy: bool, levels: list[LevelState], orders: dict[int, Order]) -> None:
    side = book.bids if is_buy else book.asks
    for lvl in reversed(levels):  # worst first: each level is then worse than those rested
        key = side.sign * lvl.price
        if key in side.levels or (side.keys and side.keys[-1] >= key):
            raise SnapshotError(f"{book.symbol}: levels out of priority order at price {lvl.price}")
        for rec in lvl.orders:
            if (rec.side == Side.BUY) != is_buy:
                raise SnapshotError(f"{book.symbol}: order {rec.id} rests on the wrong side")
            orders[rec.id] = book._rest(rec.id, rec.account, rec.side, lvl.price, rec.qty, rec.post_only,
                                        rec.stp, is_buy)


def restore_book(state: BookState, index: Index, seq: count[int], orders: dict[int, Order],
                 core: ModuleType = pure) -> OrderBook:
    """A book of ``core`` equal to the one ``state`` was exported from, sharing ``index`` and
    ``seq``; its open orders are added to ``orders`` by id (the caller fills the index)."""
    cls = phases.FAMILIES[core.OrderBook].get(state.kind)
    if cls is None:
        raise SnapshotError(f"{state.symbol}: unknown book kind {state.kind!r}")
    book: OrderBook = core.OrderBook(state.symbol, state.unit, state.tick, state.lot, index, seq)
    book.phase = state.phase
    book.call_only = state.call_only
    book.band = state.band
    book.reference = state.reference
    book.currency = state.currency
    book.pending = state.pending
    _restore_side(book, True, state.bids, orders)
    _restore_side(book, False, state.asks, orders)
    for queue, recs in ((book.market_bids, state.market_bids), (book.market_asks, state.market_asks)):
        for rec in recs:
            order = _order(core, rec, state.symbol)
            queue.append(order)
            orders[rec.id] = order
    book._arrival = dict(state.arrival)
    book._clock = count(state.clock)
    book._expiring = dict(state.expiring)
    book.__class__ = cls
    return book


def restore_parts(state: EngineState, core: ModuleType = pure
                  ) -> tuple[count[int], dict[str, OrderBook], Index]:
    """The sequence, books (of ``core``) and id index of an engine equal to the one ``state`` came from."""
    if state.version != STATE_VERSION:
        raise SnapshotError(f"state version {state.version} is not {STATE_VERSION}")
    seq = count(state.seq)
    index: Index = core.new_index()
    orders: dict[int, Order] = {}
    books: dict[str, OrderBook] = {}
    for book_state in state.books:
        books[book_state.symbol] = restore_book(book_state, index, seq, orders, core)
    for oid, status in state.index:
        if status not in _STATUSES:
            raise SnapshotError(f"order {oid}: unknown status {status!r}")
        if status == OPEN:
            order = orders.pop(oid, None)
            if order is None:
                raise SnapshotError(f"order {oid} is open in the index but rests in no book")
            index[oid] = order
        else:
            index[oid] = FILLED if status == FILLED else BID if status == BID else CANCELLED
    if orders:
        raise SnapshotError(f"{len(orders)} resting orders are not open in the index, e.g. {min(orders)}")
    return seq, books, index


# -- files ----------------------------------------------------------------------------


def encode_snapshot(snap: msgspec.Struct, magic: bytes = MAGIC) -> bytes:
    """The bytes of a snapshot file; ``magic`` (8 bytes) says what kind of snapshot it is."""
    body = _encoder.encode(snap)
    return magic + _HEAD.pack(zlib.crc32(body), len(body)) + body


def decode_snapshot(data: bytes, name: str = "snapshot") -> SnapshotFile:
    """Check and decode the bytes of an engine snapshot file; raise :class:`SnapshotError`."""
    return decode_file(data, name, MAGIC, _file_decoder)


def decode_file(data: bytes, name: str, magic: bytes, decoder: msgspec.msgpack.Decoder[S]) -> S:
    """Check the bytes of a snapshot file of the kind ``magic`` names and decode its body with
    ``decoder``; raise :class:`SnapshotError`."""
    n = len(magic) + _HEAD.size
    if len(data) < n or data[:len(magic)] != magic:
        raise SnapshotError(f"{name}: not a carbonbook snapshot (bad magic or too short)")
    crc, length = _HEAD.unpack_from(data, len(magic))
    body = data[n:]
    if len(body) != length:
        raise SnapshotError(f"{name}: {len(body)} bytes of state, header says {length}")
    if zlib.crc32(body) != crc:
        raise SnapshotError(f"{name}: checksum mismatch")
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"{name}: {exc}") from exc


def write_snapshot(path: Path, snap: msgspec.Struct, magic: bytes = MAGIC) -> None:
    """Write ``snap`` to ``path`` atomically: a temporary file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(encode_snapshot(snap, magic))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_snapshot(path: Path) -> SnapshotFile:
    """Read and check a snapshot file; raise :class:`SnapshotError` if it is not valid."""
    return decode_snapshot(path.read_bytes(), str(path))


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a new or renamed file) durable, where the OS allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)

