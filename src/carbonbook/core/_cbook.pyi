"""The compiled core has the interface of the pure one (see _cbook.pyx and carbonbook.core),
plus the JSON event path."""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from carbonbook.core.book import BookSide as BookSide
from carbonbook.core.book import Index
from carbonbook.core.book import Order as Order
from carbonbook.core.book import OrderBook as Book
from carbonbook.core.book import OrderBook as OrderBook
from carbonbook.core.book import PriceLevel as PriceLevel
from carbonbook.core.book import new_index as new_index
from carbonbook.core.book import open_order as open_order
from carbonbook.events import Event

COMPILED: bool
JSON_OK: bool
JSON_WHY: str | None

class IdIndex:
    def get(self, oid: int, /) -> Order | str | None: ...
    def __contains__(self, oid: object, /) -> bool: ...
    def __getitem__(self, oid: int, /) -> Order | str: ...
    def __setitem__(self, oid: int, entry: Order | str, /) -> None: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[int]: ...
    def keys(self) -> list[int]: ...
    def items(self) -> list[tuple[int, Order | str]]: ...
    def values(self) -> list[Order | str]: ...

class SymbolTrades:
    trades: int
    volume: int
    notional: int
    last: int | None
    last_seq: int | None

class Out:
    json: bool
    def __init__(self, events: list[Event] | None = None) -> None: ...
    def take(self) -> bytes: ...
    def tally(self) -> tuple[dict[str, int], dict[str, SymbolTrades], list[Event]]: ...

class Router:
    def __init__(self, books: dict[str, OrderBook], index: Index,
                 dispatch: Callable[[Any, list[Event], bool], None]) -> None: ...
    def one(self, command: object) -> list[Event]: ...
    def batch(self, commands: Iterable[object], events: list[Event], decoded: bool = False,
              stage: Callable[[Any, list[Event], int], None] | None = None,
              quiet: tuple[type, ...] = ()) -> None: ...
    def json(self, commands: Iterable[object], out: Out, decoded: bool = False) -> None: ...

Row = tuple[int, int, int]

def choose(book: OrderBook, start: Row, /) -> tuple[tuple[int | None, int, int], Row]: ...

__all__ = ["COMPILED", "JSON_OK", "JSON_WHY", "Book", "BookSide", "IdIndex", "Order", "OrderBook", "Out",
           "PriceLevel", "Router", "SymbolTrades", "choose", "new_index", "open_order"]
