"""The registry contract against the in-memory backend."""

from __future__ import annotations

import pytest

from carbonbook.registry import MemoryRegistry
from registry_contract import Factory, RegistryContract


class TestMemoryRegistry(RegistryContract):
    @pytest.fixture
    def make_registry(self) -> Factory:
        return MemoryRegistry
