"""carbonbook: a double-auction trading engine for carbon markets.

>>> from carbonbook import Engine, ListInstrument, NewOrder, Side, UnitType
>>> eng = Engine()
>>> [e.type for e in []]
[]
"""

from carbonbook._types import (
    CancelReason,
    OrderType,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
    UnitType,
)
from carbonbook.book import OrderBook
from carbonbook.commands import CancelOrder, Command, ListInstrument, ModifyOrder, NewOrder, Undecodable
from carbonbook.engine import Depth, Engine, Level, OrderState
from carbonbook.errors import BookIntegrityError, CarbonbookError
from carbonbook.events import (
    Accepted,
    Cancelled,
    Event,
    InstrumentListed,
    Modified,
    Rejected,
    Trade,
)

__all__ = [
    "Accepted",
    "BookIntegrityError",
    "CancelOrder",
    "CancelReason",
    "Cancelled",
    "CarbonbookError",
    "Command",
    "Depth",
    "Engine",
    "Event",
    "InstrumentListed",
    "Level",
    "ListInstrument",
    "Modified",
    "ModifyOrder",
    "NewOrder",
    "OrderBook",
    "OrderState",
    "OrderType",
    "RejectReason",
    "Rejected",
    "SelfTradePrevention",
    "Side",
    "TimeInForce",
    "Trade",
    "Undecodable",
    "UnitType",
]
