"""Carbon registries: accounts, serial blocks, cash, compliance and settlement.

:class:`Registry` is the contract (see :mod:`carbonbook.registry.base`);
:class:`MemoryRegistry`, :class:`SQLiteRegistry` (the embedded default) and
``carbonbook.registry.postgres.PostgresRegistry`` (needs the ``postgres`` extra) implement it.
"""

from carbonbook._types import OffsetLimit
from carbonbook.registry.base import (
    ALLOCATION_METHODS,
    EXPIRING_UNITS,
    PROJECT_UNITS,
    Account,
    AccountKind,
    AccountStatus,
    Allocation,
    Block,
    BlockState,
    Compliance,
    ComplianceStatus,
    Entry,
    Final,
    Registry,
    Scheme,
    Serials,
    Settled,
    SettlementFailed,
    SettlementRecord,
)
from carbonbook.registry.memory import MemoryRegistry
from carbonbook.registry.sqlite import SQLiteRegistry


def open_registry(url: str) -> Registry:
    """The registry a URL names: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``
    (created if missing), ``postgresql://user@host:port/database`` (the ``postgres`` extra),
    or ``memory:`` (nothing kept). ValueError for anything else.

    >>> open_registry("memory:").last_txid
    0
    """
    if url == "memory:":
        return MemoryRegistry()
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return SQLiteRegistry(url[len("sqlite:///"):])
    if url.startswith(("postgresql://", "postgres://")):
        from carbonbook.registry.postgres import PostgresRegistry

        return PostgresRegistry(url)
    raise ValueError(f"not a registry URL: {url!r} (sqlite:///PATH, postgresql://..., memory:)")

__all__ = [
    "ALLOCATION_METHODS",
    "EXPIRING_UNITS",
    "PROJECT_UNITS",
    "Account",
    "AccountKind",
    "AccountStatus",
    "Allocation",
    "Block",
    "BlockState",
    "Compliance",
    "ComplianceStatus",
    "Entry",
    "Final",
    "MemoryRegistry",
    "OffsetLimit",
    "Registry",
    "SQLiteRegistry",
    "Scheme",
    "Serials",
    "Settled",
    "SettlementFailed",
    "SettlementRecord",
    "open_registry",
]
