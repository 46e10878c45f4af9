"""The compiled ledger has the interface of the pure one (see _cvenue.pyx and carbonbook.registry._ledger)."""

from carbonbook.registry._ledger import Ledger as Ledger
