"""The in-memory registry: the rules of :mod:`carbonbook.registry.base` over dicts, no persistence.

>>> from carbonbook import UnitType
>>> from carbonbook.registry import AccountKind, MemoryRegistry, Scheme
>>> reg = MemoryRegistry()
>>> _ = reg.create_scheme(Scheme("JVETS", frozenset({UnitType.JPA})))
>>> _ = reg.set_cap("JVETS", 2010, 1000)
>>> for name in ("tepco", "marubeni"):
...     _ = reg.open_account(name, scheme="JVETS")
>>> reg.issue("tepco", UnitType.JPA, 500, scheme="JVETS", period=2010).end
500
>>> _ = reg.deposit("marubeni", "JPY", 1_000_000)
>>> reg.settle(7, seller="tepco", buyer="marubeni", unit=UnitType.JPA, qty=200,
...            currency="JPY", amount=290_000).txid
7
>>> reg.holding("marubeni", UnitType.JPA), reg.balance("tepco", "JPY")
(200, 290000)
>>> reg.check()
"""

from __future__ import annotations

from carbonbook.registry._state import StateRegistry


class MemoryRegistry(StateRegistry):
    """A registry held in process memory; everything is lost when it is dropped."""
