"""The compiled ledger has the interface of the pure one (see _cvenue.pyx and carbonbook.registry._ledger);
the gate that of a venue's hold gate and stage."""

from collections.abc import Callable, Sequence

from carbonbook.commands import Command, NewOrder, Undecodable
from carbonbook.core.engine import Stage
from carbonbook.events import Event
from carbonbook.registry._ledger import Ledger as Ledger
from carbonbook.venue.holds import HoldGate
from carbonbook.venue.settler import Settler

class Gate:
    def __init__(self, ledger: object, holds: HoldGate, settler: Settler, venue: object,
                 stage: Stage) -> None: ...
    def admit(self, book: object, cmd: NewOrder) -> tuple[str, str] | None: ...
    def amend(self, book: object, order: object, price: int, qty: int) -> tuple[str, str] | None: ...
    @property
    def quiet(self) -> tuple[type, ...]: ...
    def __call__(self, command: Command | Undecodable, events: list[Event], start: int) -> None: ...

def fold_fields(digest: int, commands: Sequence[Command | Undecodable],
                encode: Callable[[Command | Undecodable], bytes]) -> int: ...
