"""The registry's rules over an in-memory state, shared by every backend (see ``_store``)."""

from __future__ import annotations

from carbonbook.registry._allocation import AllocationRules
from carbonbook.registry._cash import CashRules
from carbonbook.registry._compliance import ComplianceRules
from carbonbook.registry._transfers import TransferRules


class StateRegistry(AllocationRules, TransferRules, CashRules, ComplianceRules):
    """The registry facade: every rule family over one state and undo log; backends add
    persistence."""
