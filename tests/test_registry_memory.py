"""The registry contract against the in-memory backend."""

from __future__ import annotations

import pytest

from carbonbook.registry import MemoryRegistry
from registry_contract import Factory, RegistryContract


class TestMemoryRegistry(RegistryContract):
    @pytest.fixture
    def make_registry(self) -> Factory:
        return MemoryRegistry


def test_the_registry_runs_the_compiled_ledger_with_the_compiled_core() -> None:
    """The registries' hot path is the compiled ledger exactly when the compiled core runs
    (CARBONBOOK_PURE=1 runs this suite on the reference ledger)."""
    from importlib.util import find_spec

    from carbonbook import core
    from carbonbook.registry._ledger import Ledger

    ledger = type(MemoryRegistry()._ledger)
    compiled = core.NAME == "compiled" and find_spec("carbonbook._cvenue") is not None
    assert (ledger.__module__ == "carbonbook._cvenue") is compiled
    assert (ledger is Ledger) is not compiled
