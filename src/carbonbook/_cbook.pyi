"""The compiled core has the interface of the pure one (see _cbook.pyx and carbonbook.core)."""

from carbonbook.book import BookSide as BookSide
from carbonbook.book import Order as Order
from carbonbook.book import OrderBook as Book
from carbonbook.book import OrderBook as OrderBook
from carbonbook.book import PriceLevel as PriceLevel
from carbonbook.book import route as route

__all__ = ["Book", "BookSide", "Order", "OrderBook", "PriceLevel", "route"]
