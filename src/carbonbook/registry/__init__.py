"""Carbon registries: accounts, serial blocks, cash, compliance and settlement.

:class:`Registry` is the contract (see :mod:`carbonbook.registry.base`);
:class:`MemoryRegistry`, :class:`SQLiteRegistry` (the embedded default) and
``carbonbook.registry.postgres.PostgresRegistry`` (needs the ``postgres`` extra) implement it.
"""

from carbonbook.registry.base import (
    EXPIRING_UNITS,
    PROJECT_UNITS,
    Account,
    AccountKind,
    AccountStatus,
    Block,
    BlockState,
    Compliance,
    ComplianceStatus,
    Entry,
    Outcome,
    Registry,
    Scheme,
    Serials,
    Settled,
    SettlementFailed,
    SettlementRecord,
)
from carbonbook.registry.memory import MemoryRegistry
from carbonbook.registry.sqlite import SQLiteRegistry

__all__ = [
    "EXPIRING_UNITS",
    "PROJECT_UNITS",
    "Account",
    "AccountKind",
    "AccountStatus",
    "Block",
    "BlockState",
    "Compliance",
    "ComplianceStatus",
    "Entry",
    "MemoryRegistry",
    "Outcome",
    "Registry",
    "SQLiteRegistry",
    "Scheme",
    "Serials",
    "Settled",
    "SettlementFailed",
    "SettlementRecord",
]
