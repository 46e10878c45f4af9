"""The registry's rules over an in-memory state, shared by every backend (see ``_store``)."""

from __future__ import annotations

from importlib.util import find_spec

from carbonbook import core
from carbonbook.registry._allocation import AllocationRules
from carbonbook.registry._cash import CashRules
from carbonbook.registry._compliance import ComplianceRules
from carbonbook.registry._controls import ControlRules
from carbonbook.registry._ledger import Ledger
from carbonbook.registry._linking import LinkRules
from carbonbook.registry._projects import ProjectRules
from carbonbook.registry._transfers import TransferRules

LEDGER: type[Ledger] = Ledger
"""The registries' hot path (holds and settlement): the compiled :mod:`carbonbook._cvenue` when
the compiled core runs (:mod:`carbonbook.core`) and it was built, else its reference
:class:`~carbonbook.registry._ledger.Ledger`."""
if core.NAME == "compiled" and find_spec("carbonbook._cvenue") is not None:
    from carbonbook import _cvenue

    LEDGER = _cvenue.Ledger


class StateRegistry(AllocationRules, TransferRules, CashRules, ComplianceRules, ControlRules, ProjectRules,
                    LinkRules):
    """The registry facade: every rule family over one state and undo log; backends add
    persistence."""

    _ledger_type = LEDGER
