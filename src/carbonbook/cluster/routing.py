"""Which shard a command goes to: the stable rule of a sharded venue.

A venue of ``N`` shards splits the market by instrument. The rule, the same for every
client and every process:

- a command that names an instrument (``instrument``, ``new``, ``phase``) goes to shard
  ``crc32(symbol as UTF-8) % N``; one that names a primary auction (``auction``, ``bid``,
  ``auction_close``) to ``crc32(auction name) % N``. CRC-32 (:func:`zlib.crc32`) never
  changes between runs, machines or Python versions (Python's ``hash`` of a string does);
- ``cancel`` and ``modify`` name only an order id: they go to the shard the router sent that
  id's ``new`` (or ``bid``) to, and an id this router never saw to shard ``id % N``, where it is
  refused ``unknown_order`` unless that shard knows it;
- registry commands (accounts, issuance, cash, compliance, ``business_day``) and records that
  do not decode go to shard 0, the **registry shard**.

So each shard keeps its own id space and its own ``seq``; one instrument's orders are all
on one shard. Costs: one CRC-32 of the name and one dict lookup per command; the router
remembers one int per order id it routed.

>>> from carbonbook import NewOrder, Side, CancelOrder
>>> router = Router(4)
>>> router.route(NewOrder(7, "a", "JPA-2010", Side.BUY, 1, price=1)), shard_of("JPA-2010", 4)
(3, 3)
>>> router.route(CancelOrder(7)), router.route(CancelOrder(9))
(3, 1)
"""

from __future__ import annotations

import zlib

from carbonbook.commands import (
    CancelOrder,
    CloseAuction,
    Command,
    ListInstrument,
    ModifyOrder,
    NewOrder,
    OpenAuction,
    PlaceBid,
    SetPhase,
    Undecodable,
)

__all__ = ["REGISTRY_SHARD", "Router", "parse_shard", "shard_of"]

REGISTRY_SHARD = 0
"""The shard registry commands and undecodable records go to."""


def shard_of(name: str, shards: int) -> int:
    """The shard of an instrument (or auction) ``name`` among ``shards``: CRC-32 of its UTF-8 bytes
    modulo ``shards``."""
    return zlib.crc32(name.encode()) % shards


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as ``(K, N)``, with ``0 <= K < N``; ValueError otherwise."""
    k, sep, n = text.partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not 0 <= int(k) < int(n):
        raise ValueError(f"a shard is K/N with 0 <= K < N (e.g. 0/1 or 1/2), not {text!r}")
    return int(k), int(n)


class Router:
    """Routes the commands of one client (one publishing session) to ``shards`` shards by the rule
    of the module docstring; it remembers the shard of each order id it routed."""

    def __init__(self, shards: int) -> None:
        if shards < 1:
            raise ValueError(f"a venue has at least one shard, not {shards}")
        self.shards = shards
        self._orders: dict[int, int] = {}

    def route(self, command: Command | Undecodable) -> int:
        """The shard ``command`` goes to."""
        if isinstance(command, NewOrder | ListInstrument | SetPhase):
            shard = shard_of(command.symbol, self.shards)
            if isinstance(command, NewOrder):
                self._orders[command.id] = shard
            return shard
        if isinstance(command, CancelOrder | ModifyOrder):
            return self._orders.get(command.id, command.id % self.shards)
        if isinstance(command, OpenAuction | PlaceBid | CloseAuction):
            shard = shard_of(command.auction, self.shards)
            if isinstance(command, PlaceBid):
                self._orders[command.id] = shard
            return shard
        return REGISTRY_SHARD
