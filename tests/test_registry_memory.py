"""The registry contract against the in-memory backend, on each ledger this installation has
(the reference and, when it was built, the compiled twin), whichever runs by default."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

import pytest

from carbonbook.registry import MemoryRegistry
from carbonbook.registry._ledger import Ledger
from registry_contract import Factory, RegistryContract

LEDGERS: dict[str, Any] = {"reference": Ledger}
if find_spec("carbonbook._cvenue") is not None:
    from carbonbook import _cvenue

    LEDGERS["compiled"] = _cvenue.Ledger


class TestMemoryRegistry(RegistryContract):
    @pytest.fixture(params=sorted(LEDGERS))
    def make_registry(self, request: pytest.FixtureRequest) -> Factory:
        return type("MemoryRegistry", (MemoryRegistry,), {"_ledger_type": LEDGERS[request.param]})


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
