"""Linked registries: a transaction log that checks every transfer between them (Kyoto's ITL).

:class:`TransactionLog` links registries by name (each a party's or a scheme's registry, on
any backend). It checks, in real time as the ITL did (DOMAIN.md 1, "ITL checks"):

- **issuance** in any linked registry: no serial issued twice anywhere (``duplicate_serial``),
  including serials that only passed through another registry;
- every **external transfer**, before either side commits: the units are active and held
  by the sending account (``insufficient_units``, ``terminal_units``); none of their serials is
  active or terminal in any other registry: a unit is in one registry at a time and a
  surrendered, retired, cancelled or expired unit never moves again (``duplicate_serial``,
  ``terminal_units``: the recycled CERs of 2010, DOMAIN.md 6); the sending registry keeps its
  **commitment period reserve** of the units named for it (``commitment_period_reserve``); and
  the receiving registry accepts them (``not_accepted``: a scheme there takes the unit type and
  the link mirrors the issuing scheme; the account may hold it).

A transfer is proposed (written down as ``proposed`` on both sides), checked, then completed
on the sending side (its blocks become ``exported``) and on the receiving side (imported, or
revived if they once left it); a refusal is written down as ``rejected`` on both sides and
moves nothing. The two registries are two databases with no shared transaction, so the
steps are ordered to be undone: if the receiving side fails after the sending side completed,
the sending side takes its units back (``compensated``), and a crash between the steps is
finished by :meth:`TransactionLog.recover` from the states written down.

The log keeps no state of its own: it reads the registries (O(blocks of the serials' origin)
per check, O(issuances) per issuance check). One process drives a log and its registries.
"""

from __future__ import annotations

from carbonbook._types import UnitType
from carbonbook.errors import (
    DuplicateSerial,
    NotAccepted,
    OperationRefused,
    RegistryError,
    ReserveBreached,
    TerminalUnits,
)
from carbonbook.registry._state import StateRegistry
from carbonbook.registry.base import Block, BlockState, ExternalTransfer, Serials

__all__ = ["TransactionLog"]

_ACTIVE = BlockState.ACTIVE
_EXPORTED = BlockState.EXPORTED


class TransactionLog:
    """A transaction log linking ``registries`` (name: registry); see the module docstring."""

    def __init__(self, registries: dict[str, StateRegistry]) -> None:
        self.registries: dict[str, StateRegistry] = {}
        self.reserves: dict[str, tuple[frozenset[UnitType], int]] = {}
        for name, registry in registries.items():
            self.link(name, registry)

    def link(self, name: str, registry: StateRegistry) -> None:
        """Link ``registry`` as ``name`` (``duplicate_serial`` if a serial it ever issued or held was
        issued or held by a linked one): from now on its issuance is checked against every other."""
        if name in self.registries or any(r is registry for r in self.registries.values()):
            raise OperationRefused(f"{name!r} is linked already")
        for (origin, start), (end, *_rest) in (*registry._issuances.items(),
                                               *registry._ledgers.imports.items()):
            self._check_issuance(name, origin, start, end)  # its serials are nowhere else
        self.registries[name] = registry
        registry.linked = lambda origin, start, end: self._check_issuance(name, origin, start, end)

    def set_reserve(self, name: str, units: frozenset[UnitType], qty: int) -> None:
        """Registry ``name`` must keep at least ``qty`` active units of ``units`` in all (its
        commitment period reserve; the ITL's was the lower of 90 % of the assigned amount and 5x
        the latest inventory, which the caller works out)."""
        self._registry(name)
        if type(qty) is not int or qty < 0:
            raise OperationRefused(f"a reserve is a non-negative integer, got {qty!r}")
        self.reserves[name] = (frozenset(units), qty)

    def _registry(self, name: str) -> StateRegistry:
        registry = self.registries.get(name)
        if registry is None:
            raise OperationRefused(f"no registry {name!r} is linked")
        return registry

    # -- the checks --------------------------------------------------------------------

    def _check_issuance(self, name: str, origin: str, start: int, end: int) -> None:
        for other, registry in self.registries.items():
            if other != name and registry.issued_overlap(origin, start, end):
                raise DuplicateSerial(f"serials {origin} {start}..{end} were issued or held in registry "
                                      f"{other!r}: no serial is issued twice in linked registries")

    def _check(self, sender: str, receiver: str, account: str, unit: UnitType, qty: int,
               pieces: list[Block]) -> None:
        """The transaction log's checks of a proposed external transfer (see the module)."""
        for name, registry in self.registries.items():
            if name == sender:
                continue
            for p in pieces:
                states = registry.serial_states(p.origin, p.start, p.end)
                if _ACTIVE in states:
                    raise DuplicateSerial(f"serials {p.origin} {p.start}..{p.end} are active in registry "
                                          f"{name!r} too: a unit is in one registry at a time")
                done = [s for s in states if s is not _EXPORTED]
                if done:
                    raise TerminalUnits(f"serials {p.origin} {p.start}..{p.end} are {done[0]} in registry "
                                        f"{name!r}: they never move again")
        reserve = self.reserves.get(sender)
        if reserve is not None and unit in reserve[0]:
            units, floor = reserve
            reg = self.registries[sender]
            held = sum(b.qty for b in reg.blocks() if b.state is _ACTIVE and b.unit in units)
            if held - qty < floor:
                raise ReserveBreached(f"registry {sender!r} holds {held} of its reserve units; {qty} out would "
                                      f"leave {held - qty}, below its commitment period reserve {floor}")
        self.registries[receiver].external_acceptance(account, unit, {p.scheme for p in pieces})

    # -- transfers ---------------------------------------------------------------------

    def transfer(self, sender: str, account: str, receiver: str, other_account: str, unit: UnitType, qty: int,
                 serials: Serials | None = None) -> ExternalTransfer:
        """Transfer ``qty`` ``unit`` (the named serials, or the oldest) from ``account`` of registry
        ``sender`` to ``other_account`` of registry ``receiver``: propose, check, complete or reject
        on both sides. Returns the sending side's record (``completed``, ``rejected`` with its
        reason, or ``compensated``). A refusal before the proposal (an unknown registry, a bad
        quantity, units not held) raises its :class:`~carbonbook.errors.RegistryError` and writes
        nothing."""
        src, dst = self._registry(sender), self._registry(receiver)
        if sender == receiver:
            raise OperationRefused("an external transfer goes to another registry")
        pieces = src.external_pieces(account, unit, qty, serials)
        unit = pieces[0].unit
        ext = 1 + max((max(r._ledgers.external, default=0) for r in self.registries.values()), default=0)
        src.external_propose(ext, "out", account, receiver, other_account, unit, qty, pieces)
        dst.external_propose(ext, "in", other_account, sender, account, unit, qty, pieces)
        try:
            self._check(sender, receiver, other_account, unit, qty, pieces)
            src.export_complete(ext)
        except RegistryError as e:
            src.external_reject(ext, e.code)
            dst.external_reject(ext, e.code)
            return self._record(src, ext)
        self._arrive(src, dst, ext)
        return self._record(src, ext)

    def _arrive(self, src: StateRegistry, dst: StateRegistry, ext: int) -> None:
        """The receiving side of a completed export: import, or else compensate the sender."""
        try:
            dst.import_complete(ext)
        except RegistryError as e:
            src.export_compensate(ext, e.code)
            dst.external_reject(ext, e.code)

    @staticmethod
    def _record(registry: StateRegistry, ext: int) -> ExternalTransfer:
        record = registry.external(ext)
        assert record is not None
        return record

    def recover(self) -> list[int]:
        """Finish the external transfers a crash left part way, from the states written down: a
        proposal neither side completed is rejected (``interrupted``); an export whose import did
        not happen is imported now, or compensated. Returns the ids finished."""
        done = []
        for name, src in self.registries.items():
            for ext in sorted(src._ledgers.external):
                out = src.external(ext)
                if out is None or out.direction != "out":
                    continue
                dst = self._registry(out.registry)
                inn = dst.external(ext)
                if out.state == "proposed":
                    src.external_reject(ext, "interrupted")
                    if inn is not None and inn.state == "proposed":
                        dst.external_reject(ext, "interrupted")
                    done.append(ext)
                elif out.state == "completed" and inn is not None and inn.state == "proposed":
                    self._arrive(src, dst, ext)
                    done.append(ext)
                elif out.state == "completed" and inn is None:
                    raise NotAccepted(f"registry {out.registry!r} never heard of external transfer {ext} "
                                      f"of {name!r}")
        return done
