"""Many writers on one SQL registry: serializable registry transactions with bounded retries.

An SQL registry (:mod:`carbonbook.registry._sql`) applies its rules to a cache of the database
and, at commit, writes what changed in one database transaction that first locks the
``version`` row (PostgreSQL ``SELECT ... FOR UPDATE``, SQLite ``BEGIN IMMEDIATE``) and refuses
(:class:`~carbonbook.errors.ConcurrentModification`) if another writer committed since the cache
was loaded. Every committed registry transaction therefore ran its rules on exactly the state
the database held when it committed: the registry's transactions are serializable, in commit
order, with no lost update and no double spend, whatever the number of writers.

:func:`retrying` makes that usable by many processes at once (settlement consumers,
administrators, ...): it runs ``work`` in one registry transaction and, when another writer got
in first, loads the database again and runs ``work`` again from the start, up to ``attempts``
times, with a short random back-off; then :class:`~carbonbook.errors.RetriesExhausted`. Before
each attempt it reads the stored version (one small query) and reloads when it moved, so a
refusal (``insufficient_units``, ...) is decided on the database's latest committed state, never on
a stale cache. On PostgreSQL each attempt runs inside ``PostgresRegistry.writing()``, which takes
the ``version`` row lock first: writers wait their turn (up to its ``lock_timeout``) rather than
losing at commit, so none starves under contention (optimistic retries alone ran out of 20
attempts with four processes on the same accounts). Costs: a writer that finds the registry
changed reloads all of it (every table read again): many writers on one registry suit
low-rate work (administration, settlement in batches), not a venue's every order.

A writer whose work cannot run again (a venue: its engine has moved on) takes the turn first
with :func:`take_turn` (PostgreSQL): nobody commits while it holds the ``version`` row lock, so
its transaction cannot conflict, and the registry it works on was loaded again if another
writer committed since it last wrote.

A writer of many takes :meth:`~carbonbook.registry.base.Registry.share_writer` (a shared lock)
rather than :meth:`~carbonbook.registry.base.Registry.claim_writer` (exclusive: a venue that
keeps the registry to itself, the default, refuses to start while others write).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from typing import TypeVar

from carbonbook.errors import ConcurrentModification, RetriesExhausted
from carbonbook.registry.base import Registry

__all__ = ["retrying", "take_turn"]

T = TypeVar("T")


def retrying(registry: Registry, work: Callable[[], T], attempts: int = 20) -> T:
    """``work()`` in one transaction of ``registry`` as one of many writers (see the module
    docstring); its refusals (:class:`~carbonbook.errors.RegistryError`) propagate as they are,
    having changed nothing. ``work`` must change nothing but the registry: it may run again."""
    reload = getattr(registry, "reload", None)
    stale = getattr(registry, "stale", None)
    writing = getattr(registry, "writing", nullcontext)
    for attempt in range(attempts):
        try:
            with writing():
                if reload is not None and stale is not None and stale():
                    reload()
                with registry.transaction():
                    return work()
        except ConcurrentModification:
            if reload is None:
                raise
            reload()
            _back_off(attempt)
    raise _exhausted(attempts)


def take_turn(registry: Registry, stack: ExitStack, attempts: int = 20) -> None:
    """Enter ``registry.writing()`` (a registry that queues its writers, PostgreSQL: its
    ``version`` row lock, the registry loaded again if another writer committed since) on
    ``stack``, which leaves it (committing what was written in it). A wait longer than the
    registry's ``lock_timeout`` is tried again, up to ``attempts`` times, then
    :class:`~carbonbook.errors.RetriesExhausted`; either way nothing was written."""
    for attempt in range(attempts):
        try:
            stack.enter_context(registry.writing())  # type: ignore[attr-defined]
            return
        except ConcurrentModification:
            _back_off(attempt)
    raise _exhausted(attempts)


def _back_off(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.001 * 2 ** attempt, 0.05)))


def _exhausted(attempts: int) -> RetriesExhausted:
    return RetriesExhausted(f"other writers changed the registry under each of {attempts} attempts; "
                            "try again later, or with fewer writers on the same accounts")
