"""Commands: the input records of the order log, as tagged msgspec Structs.

Each Struct's tag is its ``type`` in the order log. Decoding with
:data:`carbonbook.codec` validates types and bounds; the engine checks the
rest (tick, lot, ids, book state) and answers with events, never exceptions.
"""

from __future__ import annotations

import msgspec

from carbonbook._types import (
    Int64,
    Name,
    OrderId,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
    UnitType,
)


class ListInstrument(msgspec.Struct, tag_field="type", tag="instrument", frozen=True, gc=False):
    """Open a book for ``symbol`` trading ``unit``; prices in multiples of ``tick``, quantities of ``lot``."""

    symbol: Name
    unit: UnitType
    tick: Int64 = 1
    lot: Int64 = 1
    ts: Int64 | None = None


class NewOrder(msgspec.Struct, tag_field="type", tag="new", frozen=True, gc=False):
    """Enter an order. ``price`` is required for a limit order and absent for a market order."""

    id: OrderId
    account: Name
    symbol: Name
    side: Side
    qty: Int64
    price: Int64 | None = None
    order_type: OrderType = OrderType.LIMIT
    tif: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_INCOMING
    ts: Int64 | None = None


class CancelOrder(msgspec.Struct, tag_field="type", tag="cancel", frozen=True, gc=False):
    """Cancel the open remainder of order ``id``."""

    id: OrderId
    ts: Int64 | None = None


class ModifyOrder(msgspec.Struct, tag_field="type", tag="modify", frozen=True, gc=False):
    """Change the price and/or the open quantity of order ``id``.

    A lower quantity at the same price keeps time priority; a new price or a higher
    quantity loses it, and a new price that crosses trades at once.
    """

    id: OrderId
    price: Int64 | None = None
    qty: Int64 | None = None
    ts: Int64 | None = None


Command = ListInstrument | NewOrder | CancelOrder | ModifyOrder
"""Any order-log command."""
