"""The order-book cores, and which one runs.

A core is a module with the classes ``Order``, ``PriceLevel``, ``BookSide`` and ``OrderBook``,
``new_index()`` (an empty id index, see :class:`carbonbook.core.book.Index`) and a way to route
commands to its books: the pure core's function ``route``, the compiled
core's ``Router`` (bound once per engine) and ``Out`` (events as Structs, or JSON Lines written
by the core). Two exist, with the same rules, events and snapshots (the test suite runs
against both):

- ``compiled``: :mod:`carbonbook.core._cbook`, Cython, built at install where a C compiler exists;
- ``pure``: :mod:`carbonbook.core.book`, plain Python, the reference and the fallback.

:data:`NAME` is the one an :class:`~carbonbook.core.engine.Engine` uses unless told otherwise: the
compiled core when it was built, unless the environment sets ``CARBONBOOK_PURE=1``.

>>> NAME in ("compiled", "pure") and get(NAME) is DEFAULT
True
>>> get("pure").__name__
'carbonbook.core.book'
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from types import ModuleType

from carbonbook.core import book as pure

CORES: dict[str, ModuleType] = {"pure": pure}
"""The cores this installation has, by name."""

WHY_PURE: str | None = None
"""Why the compiled core does not run (None when it does)."""

if find_spec("carbonbook.core._cbook") is None:
    WHY_PURE = "the compiled core was not built: no C compiler at install"
else:
    try:
        from carbonbook.core import _cbook
    except ImportError as exc:  # built for another Python, say
        WHY_PURE = f"the compiled core does not load: {exc}"
    else:
        CORES["compiled"] = _cbook

if os.environ.get("CARBONBOOK_PURE", "") not in ("", "0"):
    WHY_PURE = "CARBONBOOK_PURE is set"

NAME = "pure" if WHY_PURE is not None else "compiled"
"""The name of the default core."""

DEFAULT = CORES[NAME]
"""The default core's module."""


def get(name: str | None = None) -> ModuleType:
    """The core called ``name`` (None: the default); ValueError for a core this installation lacks."""
    if name is None:
        return DEFAULT
    try:
        return CORES[name]
    except KeyError:
        raise ValueError(f"no {name!r} core here (cores: {', '.join(sorted(CORES))})") from None


def describe() -> str:
    """One line saying which core runs and, for the pure one, why."""
    return NAME if WHY_PURE is None else f"{NAME} ({WHY_PURE})"
