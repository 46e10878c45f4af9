"""carbonbook: a double-auction trading engine for carbon markets.

An :class:`Engine` holds one order book per instrument, applies order-log commands
(msgspec Structs) and answers with events that share one gapless sequence:

>>> from carbonbook import CancelOrder, Engine, ListInstrument, NewOrder, Side, UnitType
>>> engine = Engine()
>>> engine.apply(ListInstrument("JPA-2010", UnitType.JPA))[0].seq
1
>>> engine.apply(NewOrder(1, "tepco-01", "JPA-2010", Side.SELL, 500, price=1450))
[Accepted(seq=2, id=1, symbol='JPA-2010')]
>>> trade = engine.apply(NewOrder(2, "marubeni", "JPA-2010", Side.BUY, 200, price=1460))[1]
>>> (trade.price, trade.qty, trade.buy_account, trade.sell_account)
(1450, 200, 'marubeni', 'tepco-01')
>>> engine.apply(CancelOrder(1))
[Cancelled(seq=5, id=1, qty=300, reason=<CancelReason.USER: 'user'>)]
>>> engine.snapshot()
{'JPA-2010': {'bids': [], 'asks': []}}
"""

from carbonbook._types import (
    CancelReason,
    OrderType,
    Phase,
    RejectReason,
    SelfTradePrevention,
    Side,
    TimeInForce,
    UnitType,
)
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
from carbonbook.core.book import OrderBook
from carbonbook.core.engine import Depth, Engine, Level, OrderState
from carbonbook.errors import BookIntegrityError, CarbonbookError
from carbonbook.events import (
    Accepted,
    AuctionCleared,
    AuctionOpened,
    Cancelled,
    Event,
    Indicative,
    InstrumentListed,
    Modified,
    PhaseChanged,
    Rejected,
    Trade,
    Uncrossed,
)

__all__ = [
    "Accepted",
    "AuctionCleared",
    "AuctionOpened",
    "BookIntegrityError",
    "CancelOrder",
    "CancelReason",
    "Cancelled",
    "CarbonbookError",
    "CloseAuction",
    "Command",
    "Depth",
    "Engine",
    "Event",
    "Indicative",
    "InstrumentListed",
    "Level",
    "ListInstrument",
    "Modified",
    "ModifyOrder",
    "NewOrder",
    "OpenAuction",
    "OrderBook",
    "OrderState",
    "OrderType",
    "Phase",
    "PhaseChanged",
    "PlaceBid",
    "RejectReason",
    "Rejected",
    "SelfTradePrevention",
    "SetPhase",
    "Side",
    "TimeInForce",
    "Trade",
    "Uncrossed",
    "Undecodable",
    "UnitType",
]
