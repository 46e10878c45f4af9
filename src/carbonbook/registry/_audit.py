"""The audit trail: who held which serials and when, read back from the journal.

The journal names, for every transaction, who acted (``actor``), who approved
(``approver``) and on which business day (``day``). Which serials moved is kept beside it,
per transaction, in the ``moves`` table: the issued range, the pieces a transfer, retirement,
cancellation or surrender took (oldest blocks first, or its picks), the serials it named, or
the blocks an expiry ended. A venue's trade settlement (the fast path, ``CashRules``) writes
no such row, to keep its cost: it always takes the seller's oldest blocks (lowest block id
first), so :func:`serial_history` replays the journal over a model of the blocks and works
those out as the registry did. The model's result is the registry's own blocks (the tests
check it against ``blocks()`` after random operations). Cost: O(journal rows + blocks
touched) per query, nothing on any registry operation but the few non-settlement moves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from carbonbook.errors import OperationRefused
from carbonbook.registry.base import BlockState, Entry, Holding

_STATE = {"transfer": BlockState.ACTIVE, "settle": BlockState.ACTIVE, "retire": BlockState.RETIRED,
          "cancel": BlockState.CANCELLED, "surrender": BlockState.SURRENDERED,
          "external_out": BlockState.EXPORTED, "true_up": BlockState.ACTIVE,
          "allocation_return": BlockState.ACTIVE}
"""The state units take in a journal row's kind of move."""
_MOVERS = frozenset(("issue", "allocate", "expire", "external_in", "external_compensated",
                     *_STATE)) - {"settle"}
"""The journal kinds that move serials and have a ``moves`` row (a settlement's are worked out)."""


class _Model:
    """The blocks as the registry keeps them: ids in creation order, a holder's oldest first."""

    def __init__(self) -> None:
        self.blocks: dict[int, list[Any]] = {}  # id -> [origin, unit, start, end, holder, state]
        self.queues: dict[tuple[str, str], list[int]] = {}  # (holder, unit) -> active block ids, ascending
        self.next = 0
        self.history: list[Holding] = []
        self.row: Entry | None = None

    def place(self, origin: str, unit: str, start: int, end: int, holder: str, state: BlockState) -> None:
        self.next += 1
        self.blocks[self.next] = [origin, unit, start, end, holder, state]
        if state is BlockState.ACTIVE:
            self.queues.setdefault((holder, unit), []).append(self.next)
        e = self.row
        assert e is not None
        self.history.append(Holding(origin, start, end, unit, holder, state, e.txid, e.day, e.kind, e.actor,
                                    e.approver))

    def drop(self, bid: int) -> list[Any]:
        b = self.blocks.pop(bid)
        if b[5] is BlockState.ACTIVE:
            self.queues[b[4], b[1]].remove(bid)
        return b

    def head(self, bid: int, qty: int, receiver: str, state: BlockState) -> None:
        """Move the first ``qty`` serials of block ``bid`` (all of it, or split off its head)."""
        b = self.blocks[bid]
        n = b[3] - b[2] + 1
        if qty >= n:
            self.drop(bid)
            self.place(b[0], b[1], b[2], b[3], receiver, state)
        else:
            b[2] += qty
            self.place(b[0], b[1], b[2] - qty, b[2] - 1, receiver, state)

    def oldest(self, sender: str, unit: str, qty: int, receiver: str, state: BlockState) -> None:
        queue = self.queues[sender, unit]
        while qty:
            b = self.blocks[queue[0]]
            n = min(qty, b[3] - b[2] + 1)
            self.head(queue[0], n, receiver, state)
            qty -= n

    def find(self, holder: str, unit: str, origin: str, start: int) -> int:
        for bid in self.queues.get((holder, unit), ()):
            b = self.blocks[bid]
            if b[0] == origin and b[2] == start:
                return bid
        raise LookupError(f"no block of {holder} starts at {origin} {start}")

    def named(self, sender: str, unit: str, origin: str, start: int, end: int, receiver: str,
              state: BlockState) -> None:
        """As ``Store._take_serials``: each block the range touches is replaced by its parts."""
        cover = sorted((bid for bid in self.queues.get((sender, unit), ())
                        if self.blocks[bid][0] == origin and self.blocks[bid][2] <= end
                        and self.blocks[bid][3] >= start), key=lambda bid: self.blocks[bid][2])
        for bid in cover:
            b = self.drop(bid)
            lo, hi = max(b[2], start), min(b[3], end)
            if b[2] < lo:
                self.place(origin, unit, b[2], lo - 1, sender, BlockState.ACTIVE)
            self.place(origin, unit, lo, hi, receiver, state)
            if hi < b[3]:
                self.place(origin, unit, hi + 1, b[3], sender, BlockState.ACTIVE)

    def arrive(self, origin: str, unit: str, start: int, end: int, holder: str) -> None:
        """As ``LinkRules._arrive``: revive exported blocks, place the serials never here."""
        cover = sorted((bid for bid, b in self.blocks.items()
                        if b[0] == origin and b[2] <= end and b[3] >= start),
                       key=lambda bid: self.blocks[bid][2])
        pos = start
        for bid in cover:
            b = self.blocks.pop(bid)
            if pos < b[2]:
                self.place(origin, unit, pos, b[2] - 1, holder, BlockState.ACTIVE)
            lo, hi = max(b[2], pos), min(b[3], end)
            if b[2] < lo:
                self.place(origin, unit, b[2], lo - 1, b[4], BlockState.EXPORTED)
            self.place(origin, unit, lo, hi, holder, BlockState.ACTIVE)
            if hi < b[3]:
                self.place(origin, unit, hi + 1, b[3], b[4], BlockState.EXPORTED)
            pos = hi + 1
        if pos <= end:
            self.place(origin, unit, pos, end, holder, BlockState.ACTIVE)

    def apply(self, e: Entry, move: tuple[str, str] | None) -> None:
        self.row = e
        unit = str(e.unit)
        if e.kind == "settle":
            self.oldest(e.account, unit, e.qty, str(e.counterparty), BlockState.ACTIVE)
            return
        if move is None:
            if e.kind in _MOVERS:
                raise OperationRefused(f"the journal's transaction {e.txid} ({e.kind}) names no serials: the "
                                       "registry was written before carbonbook recorded them, so its serials "
                                       "cannot be traced")
            return
        how, text = move
        ranges = [tuple(r) for r in msgspec.json.decode(text)]
        if how == "issue":
            for origin, start, end in ranges:
                self.place(origin, unit, start, end, e.account, BlockState.ACTIVE)
        elif how == "expire":
            for origin, start, end in ranges:
                bid = next(i for i, b in self.blocks.items()
                           if b[0] == origin and b[2] == start and b[5] is BlockState.ACTIVE)
                b = self.drop(bid)
                self.blocks[bid] = [origin, b[1], start, end, b[4], BlockState.EXPIRED]
                self.history.append(Holding(origin, start, end, b[1], b[4], BlockState.EXPIRED, e.txid, e.day,
                                            e.kind, e.actor, e.approver))
        elif how == "serials":  # an export's units stay with their account, exported
            receiver = e.account if e.kind == "external_out" else str(e.counterparty)
            for origin, start, end in ranges:
                self.named(e.account, unit, origin, start, end, receiver, _STATE[e.kind])
        elif how == "import":
            for origin, start, end in ranges:
                self.arrive(origin, unit, start, end, e.account)
        else:  # "take": the pieces moved, in order: whole blocks or their heads
            for origin, start, end in ranges:
                self.head(self.find(e.account, unit, origin, start), end - start + 1, str(e.counterparty),
                          _STATE[e.kind])


def replay(entries: Iterable[Entry], moves: dict[int, tuple[str, str]]) -> _Model:
    """The block model after every journal row of ``entries`` (in txid order) with its ``moves``."""
    model = _Model()
    for e in entries:
        model.apply(e, moves.get(e.txid))
    return model


def serial_history(entries: Iterable[Entry], moves: dict[int, tuple[str, str]], origin: str, start: int,
                   end: int) -> list[Holding]:
    """Every holding of serials ``start``..``end`` of ``origin``, clipped to them, in the order the
    registry made them: who held which of them, from which transaction and day."""
    return [msgspec.structs.replace(h, start=max(h.start, start), end=min(h.end, end))
            for h in replay(entries, moves).history if h.origin == origin and h.start <= end and h.end >= start]


def active_blocks(entries: Iterable[Entry], moves: dict[int, tuple[str, str]]) -> list[tuple[Any, ...]]:
    """``(origin, start, end, holder, state)`` of every block the model ends with, by origin and
    first serial: what ``Registry.blocks()`` holds, rebuilt from the journal."""
    model = replay(entries, moves)
    return sorted((b[0], b[2], b[3], b[4], b[5]) for b in model.blocks.values())
