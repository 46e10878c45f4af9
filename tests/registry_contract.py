"""The registry contract: one abstract suite that every backend's test module subclasses.

A subclass provides the ``make_registry`` fixture: a factory of fresh, empty registries
(each call a new one), and may override ``reopen`` to load the same store again from
scratch (persistence). Every refusal test asserts the specific error, its reason, that
the registry's observable state is unchanged and that ``check()`` passes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonbook import UnitType
from carbonbook._types import NAME_MAX
from carbonbook.errors import (
    AccountBlocked,
    AccountClosed,
    BorrowingLimitExceeded,
    CapExceeded,
    DeadlinePassed,
    DuplicateAccount,
    DuplicateHold,
    DuplicateSerial,
    DuplicateTrade,
    InsufficientFunds,
    InsufficientUnits,
    InvalidQuantity,
    NotAuthorised,
    NotEligible,
    OffsetLimitExceeded,
    OperationRefused,
    RegistryError,
    SameAccount,
    TerminalUnits,
    UnitNotAllowed,
    UnknownAccount,
    UnknownHold,
    UnknownScheme,
    UnknownTransfer,
)
from carbonbook.registry import (
    ALLOCATION_METHODS,
    AccountKind,
    AccountStatus,
    BlockState,
    Certificate,
    ComplianceStatus,
    Controls,
    OffsetLimit,
    PendingTransfer,
    Registry,
    Scheme,
    Serials,
    Settled,
    SettlementFailed,
)
from carbonbook.registry._allocation import said
from carbonbook.registry._audit import active_blocks
from carbonbook.registry._sql import SqlRegistry
from carbonbook.registry._store import PAGE
from carbonbook.venue.checkpoint import Checkpoint, Outcome

JPA, JVER, EUA = UnitType.JPA, UnitType.JVER, UnitType.EUA
ACCOUNTS = ("iss", "a", "b", "c", "ret", "can", "blk", "cls", "jpa-only")
CURRENCIES = ("JPY", "EUR")
UNITS = (JPA, JVER, EUA)

Factory = Callable[[], Registry]


def world(reg: Registry) -> Registry:
    """Scheme JVETS (JPA; JVER credits up to 10 %; cap 100,000 for 2010 and 2011), accounts,
    1,000 JPA (serials 1..1000) and 500 JVER (serials 1001..1500) in ``a``, cash in ``b``."""
    reg.create_scheme(Scheme("JVETS", frozenset({JPA}), frozenset({JVER}), offset_percent=10))
    reg.create_scheme(Scheme("EUETS", frozenset({EUA}), banking=False))
    for period in (2010, 2011):
        reg.set_cap("JVETS", period, 100_000)
    reg.set_cap("EUETS", 2010, 1_000)
    reg.open_account("iss", AccountKind.ISSUANCE)
    for name in ("a", "b", "c"):
        reg.open_account(name, scheme="JVETS")
    reg.open_account("ret", AccountKind.RETIREMENT)
    reg.open_account("can", AccountKind.CANCELLATION)
    reg.open_account("blk")
    reg.set_status("blk", AccountStatus.BLOCKED)
    reg.open_account("cls")
    reg.set_status("cls", AccountStatus.CLOSED)
    reg.open_account("jpa-only", units=[JPA])
    reg.issue("a", JPA, 1000, scheme="JVETS", period=2010)
    reg.issue("a", JVER, 500, scheme="JVETS", period=2010, project="JV-001")
    reg.deposit("b", "JPY", 10_000_000)
    reg.deposit("a", "JPY", 1_000)
    reg.check()
    return reg


def fingerprint(reg: Registry) -> Any:
    """Everything observable about ``reg``."""
    return (
        [(b.origin, b.unit, b.start, b.end, b.holder, b.state, b.period) for b in reg.blocks()],
        list(reg.journal()),
        [(a, u, reg.holding(a, u), reg.available(a, u)) for a in ACCOUNTS for u in UNITS],
        [(a, c, reg.balance(a, c), reg.available_cash(a, c)) for a in ACCOUNTS for c in CURRENCIES],
        [reg.issued(u) for u in UNITS],
        [reg.compliance(a, p) for a in ("a", "b", "c") for p in (2010, 2011)],
        [reg.account(a) for a in ACCOUNTS],
        reg.allocations(),
    )


def stored_in_pages(reg: SqlRegistry, reopen: Callable[[Registry], Registry], arm: Callable[[int], None],
                    disarm: Callable[[], Any], exc: type[RegistryError]) -> None:
    """An SQL registry's blocks in pages (``_sql``): a row of ``block_pages`` per page of ids that
    holds a block (``PAGE``), none for a page whose blocks all went; a commit whose write of a page
    fails (``arm(page)`` makes the database refuse that page with ``exc``) changes neither the
    database nor the cache; once ``disarm()``ed, the same moves commit."""
    with reg.transaction():
        for _ in range(300):  # blocks 3..302
            reg.transfer("a", "b", JPA, 1)

    def pages() -> list[int]:
        return [p for (p,) in reg._read("SELECT page FROM block_pages ORDER BY page")]

    assert pages() == sorted({b.id >> PAGE for b in reg.blocks()}) and len(pages()) > 3
    reg.transfer("b", "c", JPA, 300)  # every block of b's pages moves to new ids
    assert pages() == sorted({b.id >> PAGE for b in reg.blocks()}) and (150 >> PAGE) not in pages()
    rows = "SELECT * FROM block_pages ORDER BY page"
    before, blocks, stored = fingerprint(reg), reg.blocks(), reg._read(rows)
    arm((max(b.id for b in blocks) >> PAGE) + 1)
    with pytest.raises(exc, match="boom"), reg.transaction():
        for _ in range(1 << PAGE):
            reg.transfer("a", "c", JPA, 1)
    assert (fingerprint(reg), reg.blocks()) == (before, blocks)
    assert reg._read(rows) == stored
    reg.check()
    disarm()
    for _ in range(1 << PAGE):
        reg.transfer("a", "c", JPA, 1)
    with closing(reopen(reg)) as again:  # type: ignore[type-var]
        assert again.blocks() == reg.blocks()


def refused(reg: Registry, exc: type[RegistryError], match: str, fn: Callable[..., Any],
            *args: Any, **kw: Any) -> None:
    """``fn(*args, **kw)`` raises ``exc`` matching ``match`` and changes nothing."""
    before = fingerprint(reg)
    with pytest.raises(exc, match=match):
        fn(*args, **kw)
    assert fingerprint(reg) == before
    reg.check()


BAD_QTYS = [0, -1, -(2**63), 1.5, 2.0, True, "5", None, 2**63, 10**30]


class RegistryContract:
    """Subclass with a ``make_registry`` fixture."""

    @pytest.fixture
    def make_registry(self) -> Factory:
        raise NotImplementedError

    @pytest.fixture
    def reopen(self) -> Callable[[Registry], Registry]:
        return lambda reg: reg

    @pytest.fixture
    def reg(self, make_registry: Factory) -> Registry:
        return world(make_registry())

    # -- issuance ----------------------------------------------------------------------

    def test_world(self, reg: Registry) -> None:
        assert reg.holding("a", JPA) == 1000 and reg.issued(JPA) == 1000
        assert [(b.start, b.end) for b in reg.blocks("a")] == [(1, 1000), (1001, 1500)]
        assert reg.balance("b", "JPY") == 10_000_000
        txids = [e.txid for e in reg.journal()]
        assert txids == sorted(set(txids)) and txids[0] == 1

    def test_issue_into_issuance_account_then_allocate(self, reg: Registry) -> None:
        block = reg.issue("iss", JPA, 300, scheme="JVETS", period=2011)
        assert (block.start, block.end) == (1501, 1800)
        reg.transfer("iss", "c", JPA, 300)
        assert reg.holding("c", JPA) == 300
        reg.check()

    @pytest.mark.parametrize("qty", BAD_QTYS)
    def test_issue_bad_qty(self, reg: Registry, qty: Any) -> None:
        refused(reg, InvalidQuantity, "positive integer", reg.issue, "a", JPA, qty, scheme="JVETS", period=2010)

    def test_issue_past_cap(self, reg: Registry) -> None:
        refused(reg, CapExceeded, "may issue 98500 more", reg.issue, "iss", JPA, 98_501,
                scheme="JVETS", period=2010)
        reg.issue("iss", JPA, 98_500, scheme="JVETS", period=2010)
        refused(reg, CapExceeded, "may issue 0 more", reg.issue, "iss", JPA, 1, scheme="JVETS", period=2010)

    def test_issue_without_cap(self, reg: Registry) -> None:
        refused(reg, CapExceeded, "may issue 0 more", reg.issue, "iss", JPA, 1, scheme="JVETS", period=2012)

    def test_cap_below_issued(self, reg: Registry) -> None:
        refused(reg, CapExceeded, "below", reg.set_cap, "JVETS", 2010, 999)

    @pytest.mark.parametrize("start", [1, 500, 1000, 1500])
    def test_double_issuance_of_a_serial(self, reg: Registry, start: int) -> None:
        refused(reg, DuplicateSerial, "overlap", reg.issue, "iss", JPA, 10, scheme="JVETS", period=2010,
                start=start)

    def test_issue_explicit_serials_elsewhere(self, reg: Registry) -> None:
        reg.issue("iss", JPA, 10, scheme="JVETS", period=2010, start=5000)
        refused(reg, DuplicateSerial, "overlap", reg.issue, "iss", JPA, 10, scheme="JVETS", period=2010,
                start=4995)
        reg.issue("iss", JPA, 10, scheme="JVETS", period=2010, origin="EU", start=5000)
        reg.issue("iss", JPA, 10, scheme="JVETS", period=2010, start=2000)  # a gap below the top serial
        refused(reg, DuplicateSerial, "overlap issued 5000..5009", reg.issue, "iss", JPA, 1, scheme="JVETS",
                period=2010, start=5009)  # the top serial itself
        reg.issue("iss", JPA, 10, scheme="JVETS", period=2010, start=5010)  # right past it
        assert reg.issue("iss", JPA, 1, scheme="JVETS", period=2010).start == 5020  # after the top
        reg.check()

    def test_issue_rules(self, reg: Registry) -> None:
        refused(reg, OperationRefused, "project id", reg.issue, "a", JVER, 5, scheme="JVETS", period=2010)
        refused(reg, UnitNotAllowed, "does not issue", reg.issue, "a", EUA, 5, scheme="JVETS", period=2010)
        refused(reg, UnitNotAllowed, "may not hold", reg.issue, "jpa-only", JVER, 5, scheme="JVETS",
                period=2010, project="P")
        refused(reg, UnitNotAllowed, "cannot issue into", reg.issue, "ret", JPA, 5, scheme="JVETS",
                period=2010)
        refused(reg, AccountBlocked, "blocked", reg.issue, "blk", JPA, 5, scheme="JVETS", period=2010)
        refused(reg, UnknownAccount, "does not exist", reg.issue, "zz", JPA, 5, scheme="JVETS", period=2010)

    # -- transfer ----------------------------------------------------------------------

    def test_partial_transfer_splits_block(self, reg: Registry) -> None:
        reg.transfer("a", "b", JPA, 300)
        reg.transfer("a", "c", JPA, 1)
        assert [(b.holder, b.start, b.end) for b in reg.blocks(unit=JPA)] == [
            ("b", 1, 300), ("c", 301, 301), ("a", 302, 1000)]
        assert reg.holding("a", JPA) == 699
        reg.check()

    def test_blocks_made_moved_and_gone_across_many_ids(self, reg: Registry,
                                                        reopen: Callable[[Registry], Registry]) -> None:
        """The SQL backends store blocks in pages of ids (``_sql``): blocks made in one transaction
        and in several (a page written again as it fills), by a settlement, moved from every other
        id (every page touched), all moved away from the old ids (their pages emptied), and made
        again at the ids of a transaction that failed, read back as they are; the failed one
        changes nothing."""

        def same() -> None:
            again = reopen(reg)
            assert again.blocks() == reg.blocks() and fingerprint(again) == fingerprint(reg)
            again.check()

        with reg.transaction():
            for i in range(300):
                reg.transfer("a", "bc"[i % 2], JPA, 1)
        for _ in range(3):
            reg.transfer("a", "b", JPA, 1)
        same()
        settled = reg.settle(7, seller="c", buyer="b", unit=JPA, qty=3, currency="JPY", amount=30)
        assert isinstance(settled, Settled)
        reg.retire("c", JPA, 147, to="ret")  # every other block of the 300
        same()
        reg.transfer("b", "c", JPA, 156)  # the rest of them
        same()
        before = fingerprint(reg), reg.blocks()
        with pytest.raises(InsufficientUnits), reg.transaction():
            reg.transfer("a", "b", JPA, 100)
            reg.transfer("c", "b", JPA, 10**6)
        assert (fingerprint(reg), reg.blocks()) == before
        reg.transfer("a", "c", JPA, 1)
        reg.transfer("a", "b", JPA, 1)
        same()

    def test_transfer_by_serials(self, reg: Registry) -> None:
        reg.transfer("a", "b", JPA, 11, serials=Serials("JP", 100, 110))
        assert [(b.holder, b.start, b.end) for b in reg.blocks(unit=JPA)] == [
            ("a", 1, 99), ("b", 100, 110), ("a", 111, 1000)]
        reg.transfer("b", "c", JPA, 5, serials=Serials("JP", 103, 107))
        reg.check()

    @pytest.mark.parametrize("qty", BAD_QTYS)
    def test_transfer_bad_qty(self, reg: Registry, qty: Any) -> None:
        refused(reg, InvalidQuantity, "positive integer", reg.transfer, "a", "b", JPA, qty)

    def test_transfer_not_held(self, reg: Registry) -> None:
        refused(reg, InsufficientUnits, "holds 1000 active JPA; 1001 needed", reg.transfer, "a", "b", JPA, 1001)
        refused(reg, InsufficientUnits, "holds 0 active JPA", reg.transfer, "b", "a", JPA, 1)
        refused(reg, InsufficientUnits, "not JPA held by 'b'", reg.transfer, "b", "a", JPA, 10,
                serials=Serials("JP", 1, 10))
        refused(reg, InsufficientUnits, "were not all issued", reg.transfer, "a", "b", JPA, 10,
                serials=Serials("JP", 1496, 1505))
        refused(reg, InvalidQuantity, "do not make", reg.transfer, "a", "b", JPA, 10,
                serials=Serials("JP", 1, 5))
        refused(reg, OperationRefused, "serials must be a Serials", reg.transfer, "a", "b", JPA, 10,
                serials=("JP", 1, 10))

    def test_transfer_reserved(self, reg: Registry) -> None:
        reg.reserve(1, "a", JPA, 950)
        refused(reg, InsufficientUnits, "950 are reserved", reg.transfer, "a", "b", JPA, 51)
        refused(reg, InsufficientUnits, "50 unreserved", reg.transfer, "a", "b", JPA, 51,
                serials=Serials("JP", 1, 51))
        reg.transfer("a", "b", JPA, 50)
        reg.release(1)
        reg.transfer("a", "b", JPA, 950)
        reg.check()

    @pytest.mark.parametrize("how", ["retired", "cancelled", "surrendered", "expired"])
    def test_transfer_terminal_units(self, reg: Registry, how: str) -> None:
        if how == "retired":
            reg.retire("a", JPA, 10, to="ret")
        elif how == "cancelled":
            reg.retire("a", JPA, 10, to="can")
        elif how == "surrendered":
            reg.surrender("a", 2010, JPA, 10, to="ret")
        else:
            reg.expire(JPA, 2010)
        refused(reg, TerminalUnits, f"are {how}", reg.transfer, "a", "b", JPA, 10,
                serials=Serials("JP", 1, 10))
        if how == "expired":
            refused(reg, InsufficientUnits, "holds 0 active", reg.transfer, "a", "b", JPA, 1)
        else:
            holder = "can" if how == "cancelled" else "ret"
            refused(reg, TerminalUnits, "never move again", reg.transfer, holder, "b", JPA, 10)
            refused(reg, TerminalUnits, "never move again", reg.retire, holder, JPA, 10, to="can")
            assert reg.holding("a", JPA) == 990

    @pytest.mark.parametrize(("dst", "exc", "match"), [
        ("zz", UnknownAccount, "'zz' does not exist"),
        ("cls", AccountClosed, "receiving account 'cls' is closed"),
        ("blk", AccountBlocked, "receiving account 'blk' is blocked"),
        ("a", SameAccount, "to itself"),
        ("ret", UnitNotAllowed, "cannot hold transferable units"),
        ("can", UnitNotAllowed, "cannot hold transferable units"),
    ])
    def test_transfer_bad_target(self, reg: Registry, dst: str, exc: type[RegistryError], match: str) -> None:
        refused(reg, exc, match, reg.transfer, "a", dst, JPA, 10)

    def test_transfer_unit_type_not_allowed(self, reg: Registry) -> None:
        refused(reg, UnitNotAllowed, "may not hold JVER", reg.transfer, "a", "jpa-only", JVER, 10)
        reg.transfer("a", "jpa-only", JPA, 10)
        refused(reg, UnitNotAllowed, "unknown unit type", reg.transfer, "a", "b", "XYZ", 10)

    def test_transfer_from_blocked_or_closed(self, reg: Registry) -> None:
        reg.transfer("a", "c", JPA, 10)
        reg.set_status("c", AccountStatus.BLOCKED)
        refused(reg, AccountBlocked, "sending account 'c' is blocked", reg.transfer, "c", "a", JPA, 1)
        reg.set_status("c", AccountStatus.OPEN)
        reg.set_status("c", AccountStatus.CLOSED)
        refused(reg, AccountClosed, "closed", reg.transfer, "c", "a", JPA, 1)
        refused(reg, AccountClosed, "closing is final", reg.set_status, "c", AccountStatus.OPEN)

    def test_duplicate_account(self, reg: Registry) -> None:
        refused(reg, DuplicateAccount, "already exists", reg.open_account, "a")

    @pytest.mark.parametrize("name", ["x" * (NAME_MAX + 1), "a\x00b", "", None])
    def test_account_names_keep_the_rule_of_names(self, reg: Registry, name: Any) -> None:
        refused(reg, OperationRefused, f"a name is 1 to {NAME_MAX} characters", reg.open_account, name)

    # -- holds and cash ------------------------------------------------------------

    def test_holds(self, reg: Registry) -> None:
        reg.reserve_cash(7, "b", "JPY", 9_000_000)
        assert reg.available_cash("b", "JPY") == 1_000_000
        refused(reg, DuplicateHold, "already exists", reg.reserve, 7, "a", JPA, 1)
        refused(reg, InsufficientFunds, "1000000 unreserved", reg.reserve_cash, 8, "b", "JPY", 1_000_001)
        refused(reg, InsufficientUnits, "1000 unreserved", reg.reserve, 9, "a", JPA, 1001)
        refused(reg, UnknownHold, "does not exist", reg.release, 99)
        reg.release(7)
        assert reg.available_cash("b", "JPY") == 10_000_000

    def test_partial_release(self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        reg.reserve(5, "a", JPA, 300)
        reg.release(5, 100)
        assert reg.hold(5) == 200 and reg.available("a", JPA) == 800
        refused(reg, OperationRefused, "cannot release 201", reg.release, 5, 201)
        refused(reg, InvalidQuantity, "amount must be", reg.release, 5, 0)
        reg = reopen(reg)
        assert reg.hold(5) == 200
        reg.release(5, 200)
        assert reg.hold(5) == 0 and reg.available("a", JPA) == 1000
        refused(reg, UnknownHold, "does not exist", reg.release, 5, 1)
        assert [e.kind for e in reg.journal()][-3:] == ["reserve", "release", "release"]

    def test_refused_hold_change_in_a_transaction_changes_nothing(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        with reg.transaction():
            reg.reserve(7, "a", JPA, 100)
            before = fingerprint(reg)
            for exc, fn, args in ((InsufficientUnits, reg.reserve, (8, "a", JPA, 901)),
                                  (DuplicateHold, reg.reserve, (7, "a", JPA, 1)),
                                  (AccountBlocked, reg.reserve, (8, "blk", JPA, 1)),
                                  (InvalidQuantity, reg.reserve, (8, "a", JPA, 0)),
                                  (InsufficientFunds, reg.reserve_cash, (8, "b", "JPY", 10_000_001)),
                                  (UnknownAccount, reg.reserve_cash, (8, "nobody", "JPY", 1)),
                                  (OperationRefused, reg.release, (7, 101)),
                                  (UnknownHold, reg.release, (9,))):
                with pytest.raises(exc):
                    fn(*args)
                assert fingerprint(reg) == before
            reg.release(7, 40)
        reg = reopen(reg)
        assert reg.hold(7) == 60 and reg.available("a", JPA) == 940
        assert [e.kind for e in reg.journal()][-2:] == ["reserve", "release"]
        reg.check()

    def test_hold_changes_roll_back_with_their_transaction(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        reg.reserve(5, "a", JPA, 300)
        reg.reserve_cash(6, "b", "JPY", 1_000)
        before = fingerprint(reg), [reg.hold(i) for i in range(5, 9)]
        with pytest.raises(RuntimeError, match="rolled back"), reg.transaction():
            reg.reserve(7, "a", JPA, 100)
            reg.reserve_cash(8, "b", "JPY", 500)
            reg.release(5, 100)
            reg.release(6)
            reg.release(7, 30)
            reg.release(8)
            reg.release(5)
            reg.reserve(5, "a", JPA, 900)
            raise RuntimeError("rolled back")
        assert (fingerprint(reg), [reg.hold(i) for i in range(5, 9)]) == before
        reg.check()
        again = reopen(reg)
        assert (fingerprint(again), [again.hold(i) for i in range(5, 9)]) == before
        again.check()

    def test_checkpoint_table(self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        """A venue's checkpoint lives in the registry's own table, in its transactions."""
        cp = Checkpoint(reg)
        assert cp.position == 0 and cp.outcome(3) is None and cp.settings() is None
        with reg.transaction():
            cp.record(3, Outcome(0, "insufficient_units", "short"))
            cp.record(4, Outcome(17))
            cp.digest = -(2**63)
            cp.advance(4, ("JPY", 5))
        reg = reopen(reg)
        cp = Checkpoint(reg)
        assert cp.position == cp.replayed == 4 and cp.position_digest == -(2**63)
        assert cp.settings() == ("JPY", 5)
        assert cp.outcome(3) == Outcome(0, "insufficient_units", "short") and cp.outcome(4) == Outcome(17)
        for seq in (4, 0, -1):
            with pytest.raises(OperationRefused, match="new positive"):
                cp.record(seq, Outcome(1))
        with pytest.raises(ValueError), reg.transaction():
            cp.record(9, Outcome(1))
            cp.advance(9, ("JPY", 5))
            raise ValueError
        assert cp.position == 4 and cp.outcome(9) is None

    @pytest.mark.parametrize("amount", BAD_QTYS)
    def test_deposit_bad_amount(self, reg: Registry, amount: Any) -> None:
        refused(reg, InvalidQuantity, "amount must be", reg.deposit, "a", "JPY", amount)

    def test_deposit_refusals(self, reg: Registry) -> None:
        refused(reg, AccountClosed, "closed", reg.deposit, "cls", "JPY", 5)
        refused(reg, UnknownAccount, "does not exist", reg.deposit, "zz", "JPY", 5)
        refused(reg, InvalidQuantity, "would pass", reg.deposit, "b", "JPY", 2**63 - 1)

    # -- settlement ----------------------------------------------------------------

    def test_settle_moves_both_legs(self, reg: Registry) -> None:
        rec = reg.settle(42, seller="a", buyer="b", unit=JPA, qty=100, currency="JPY", amount=150_000)
        assert isinstance(rec, Settled) and rec.trade_id == 42
        assert reg.holding("b", JPA) == 100 and reg.holding("a", JPA) == 900
        assert reg.balance("a", "JPY") == 151_000 and reg.balance("b", "JPY") == 9_850_000
        assert list(reg.journal())[-1].ref == 42
        reg.check()

    def test_settle_is_idempotent(self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        terms: dict[str, Any] = dict(seller="a", buyer="b", unit=JPA, qty=100, currency="JPY", amount=150_000)
        first = reg.settle(42, **terms)
        before = fingerprint(reg)
        assert reg.settle(42, **terms) == first
        assert fingerprint(reg) == before
        again = reopen(reg)
        assert again.settle(42, **terms) == first
        assert fingerprint(again) == before

    def test_duplicate_trade_id_other_terms(self, reg: Registry) -> None:
        reg.settle(42, seller="a", buyer="b", unit=JPA, qty=100, currency="JPY", amount=150_000)
        refused(reg, DuplicateTrade, "other terms", reg.settle, 42, seller="a", buyer="b", unit=JPA, qty=101,
                currency="JPY", amount=150_000)

    @pytest.mark.parametrize(("terms", "reason"), [
        (dict(seller="a", buyer="b", unit=JPA, qty=1001, amount=1), "insufficient_units"),
        (dict(seller="a", buyer="b", unit=JPA, qty=1, amount=10_000_001), "insufficient_funds"),
        (dict(seller="a", buyer="a", unit=JPA, qty=1, amount=1), "same_account"),
        (dict(seller="a", buyer="zz", unit=JPA, qty=1, amount=1), "unknown_account"),
        (dict(seller="a", buyer="blk", unit=JPA, qty=1, amount=1), "account_blocked"),
        (dict(seller="a", buyer="cls", unit=JPA, qty=1, amount=1), "account_closed"),
        (dict(seller="b", buyer="jpa-only", unit=JVER, qty=1, amount=1), "unit_not_allowed"),
        (dict(seller="ret", buyer="b", unit=JPA, qty=1, amount=1), "terminal_units"),
    ])
    def test_settlement_failure_is_recorded(self, reg: Registry, terms: dict[str, Any], reason: str) -> None:
        before = fingerprint(reg)
        rec = reg.settle(9, currency="JPY", **terms)
        assert isinstance(rec, SettlementFailed) and rec.reason == reason and rec.detail
        assert fingerprint(reg) == before
        assert reg.settlement(9) == rec
        assert reg.settle(9, currency="JPY", **terms) == rec  # final: no retry under the same id
        reg.check()

    @pytest.mark.parametrize("qty", BAD_QTYS)
    def test_settle_bad_qty(self, reg: Registry, qty: Any) -> None:
        refused(reg, InvalidQuantity, "positive integer", reg.settle, 9, seller="a", buyer="b", unit=JPA,
                qty=qty, currency="JPY", amount=100)
        refused(reg, InvalidQuantity, "positive integer", reg.settle, 9, seller="a", buyer="b", unit=JPA,
                qty=1, currency="JPY", amount=qty)
        refused(reg, InvalidQuantity, "trade id", reg.settle, -1 if qty == 0 else qty, seller="a", buyer="b",
                unit=JPA, qty=1, currency="JPY", amount=100)
        assert reg.settlement(9) is None

    def test_settle_consumes_holds(self, reg: Registry) -> None:
        reg.reserve(1, "a", JPA, 100)
        reg.reserve_cash(2, "b", "JPY", 200_000)
        reg.settle(5, seller="a", buyer="b", unit=JPA, qty=60, currency="JPY", amount=90_000,
                   unit_hold=1, cash_hold=2)
        assert reg.available("a", JPA) == 900 and reg.holding("a", JPA) == 940
        assert reg.available_cash("b", "JPY") == 10_000_000 - 90_000 - 110_000
        reg.check()

    def test_exception_between_legs_applies_nothing(self, reg: Registry, reopen: Callable[[Registry], Registry],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
        before = fingerprint(reg)
        calls = []

        def boom() -> None:
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("killed between the legs")

        monkeypatch.setattr(reg, "_between_legs", boom)
        with pytest.raises(RuntimeError, match="killed"), reg.transaction():
            for tid in range(1, 5):
                reg.settle(tid, seller="a", buyer="b", unit=JPA, qty=10, currency="JPY", amount=100)
        assert len(calls) == 3
        assert fingerprint(reg) == before
        assert reg.settlement(1) is None
        reg.check()
        again = reopen(reg)
        assert fingerprint(again) == before
        again.check()
        monkeypatch.undo()
        with pytest.raises(RuntimeError, match="killed"):
            monkeypatch.setattr(again, "_between_legs", lambda: (_ for _ in ()).throw(RuntimeError("killed")))
            again.settle(1, seller="a", buyer="b", unit=JPA, qty=10, currency="JPY", amount=100)
        assert fingerprint(again) == before

    def test_refused_operation_in_transaction_rolls_back_all(self, reg: Registry) -> None:
        before = fingerprint(reg)
        with pytest.raises(InsufficientUnits), reg.transaction():
            reg.transfer("a", "b", JPA, 10)
            reg.deposit("c", "JPY", 5)
            reg.transfer("a", "b", JPA, 10_000)
        assert fingerprint(reg) == before
        reg.check()

    def test_persistence(self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        reg.transfer("a", "b", JPA, 123)
        reg.reserve(3, "a", JPA, 5)
        reg.record_emissions("a", 2010, 400)
        before = fingerprint(reg)
        again = reopen(reg)
        assert fingerprint(again) == before
        again.transfer("b", "c", JPA, 3)
        again.check()

    # -- terminal operations and compliance ----------------------------------------

    def test_compliance_status_and_shortfall(self, reg: Registry) -> None:
        assert reg.compliance("a", 2010).status is ComplianceStatus.C
        reg.record_emissions("a", 2010, 600)
        reg.surrender("a", 2010, JPA, 500, to="ret")
        c = reg.compliance("a", 2010)
        assert (c.status, c.obligation, c.surrendered, c.shortfall) == (ComplianceStatus.B, 600, 500, 100)
        reg.record_emissions("a", 2011, 300)
        c = reg.compliance("a", 2011)
        assert (c.obligation, c.status) == (400, ComplianceStatus.B)  # 300 + 100 carried
        reg.surrender("a", 2011, JPA, 400, to="ret")
        assert reg.compliance("a", 2011).status is ComplianceStatus.A
        refused(reg, OperationRefused, "already recorded", reg.record_emissions, "a", 2011, 5)
        assert reg.holding("a", JPA) == 100
        assert all(b.state is BlockState.SURRENDERED for b in reg.blocks("ret"))
        reg.check()

    def test_offset_limit(self, reg: Registry) -> None:
        reg.record_emissions("a", 2010, 1000)
        refused(reg, OffsetLimitExceeded, "allows 100 credits", reg.surrender, "a", 2010, JVER, 101, to="ret")
        reg.surrender("a", 2010, JVER, 100, to="ret")
        refused(reg, OffsetLimitExceeded, "100 used", reg.surrender, "a", 2010, JVER, 1, to="ret")
        assert reg.compliance("a", 2010).offsets == 100

    def test_surrender_refusals(self, reg: Registry) -> None:
        refused(reg, UnitNotAllowed, "not retirement", reg.surrender, "a", 2010, JPA, 1, to="can")
        refused(reg, UnitNotAllowed, "not retirement", reg.surrender, "a", 2010, JPA, 1, to="b")
        refused(reg, OperationRefused, "no compliance scheme", reg.surrender, "jpa-only", 2010, JPA, 1,
                to="ret")
        refused(reg, InsufficientUnits, "needed", reg.surrender, "a", 2010, JPA, 1001, to="ret")

    def test_voluntary_cancellation_by_serial(self, reg: Registry) -> None:
        reg.retire("a", JVER, 10, to="can", serials=Serials("JP", 1001, 1010))
        assert [b.state for b in reg.blocks("can")] == [BlockState.CANCELLED]
        assert reg.holding("a", JVER) == 490 and reg.issued(JVER) == 500
        refused(reg, TerminalUnits, "are cancelled", reg.retire, "a", JVER, 10, to="can",
                serials=Serials("JP", 1001, 1010))
        refused(reg, UnitNotAllowed, "not retirement/cancellation", reg.retire, "a", JVER, 1, to="b")

    def test_carry_over_and_expiry(self, reg: Registry) -> None:
        reg.transfer("a", "b", JPA, 400)
        assert reg.carry_over("b", JPA, 2010) == 400
        assert reg.expire(JPA, 2010) == 600
        assert reg.holding("a", JPA) == 0 and reg.holding("b", JPA) == 400
        assert reg.issued(JPA) == 1000
        refused(reg, InsufficientUnits, "holds 0 active", reg.transfer, "a", "c", JPA, 1)
        assert reg.expire(JPA, 2011) == 400
        reg.check()

    def test_carry_over_refused(self, reg: Registry) -> None:
        reg.set_cap("EUETS", 2010, 1000)
        reg.issue("c", EUA, 10, scheme="EUETS", period=2010, origin="EU")
        refused(reg, OperationRefused, "does not allow banking", reg.carry_over, "c", EUA, 2010)
        refused(reg, OperationRefused, "cannot be carried over", reg.carry_over, "c", UnitType.TCER, 2010)

    def test_expiry_before_the_period(self, reg: Registry) -> None:
        """A unit with an expiry lives until its expiry, even past its period (a tCER issued for
        2008 lives until the end of the next commitment period)."""
        reg.create_scheme(Scheme("CDM", frozenset({UnitType.CER}), frozenset({UnitType.TCER})))
        reg.set_cap("CDM", 2008, 1000)
        refused(reg, OperationRefused, "expiry 2007 is before the units' period 2008", reg.issue, "c",
                UnitType.TCER, 100, scheme="CDM", period=2008, project="AR-1", expiry=2007)
        reg.issue("c", UnitType.TCER, 100, scheme="CDM", period=2008, project="AR-1", expiry=2012)
        assert reg.expire(UnitType.TCER, 2010) == 0
        assert reg.holding("c", UnitType.TCER) == 100
        assert reg.expire(UnitType.TCER, 2012) == 100
        assert reg.holding("c", UnitType.TCER) == 0 and reg.issued(UnitType.TCER) == 100
        reg.check()

    def test_expiry_shrinks_uncovered_holds(self, reg: Registry) -> None:
        reg.reserve(1, "a", JPA, 700)
        reg.transfer("a", "b", JPA, 300)
        reg.carry_over("a", JPA, 2010)
        assert reg.expire(JPA, 2010) == 300
        assert reg.available("a", JPA) == 0
        reg.check()

    # -- compliance calendar: deadlines, finality, penalties (issue 14, item 3) ---------

    def _eu(self, reg: Registry) -> None:
        """Scheme EU (EUA, banking) with a deadline for 2008 (day 10, EUR 100/t) and one for
        2009 (day 20, no penalty); operators ``eu1`` (150 t in 2008, 100 EUA of 2008) and
        ``eu2`` (no emissions)."""
        reg.create_scheme(Scheme("EU", frozenset({EUA})))
        for period in (2008, 2009):
            reg.set_cap("EU", period, 10_000)
        reg.open_account("eu1", scheme="EU")
        reg.open_account("eu2", scheme="EU")
        reg.issue("eu1", EUA, 100, scheme="EU", period=2008, origin="EU")
        reg.record_emissions("eu1", 2008, 150)
        reg.set_deadline("EU", 2008, 10, penalty=10_000, currency="EUR")
        reg.set_deadline("EU", 2009, 20)

    def test_deadline_makes_the_status_final_and_records_the_penalty(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        self._eu(reg)
        reg.surrender("eu1", 2008, EUA, 100, to="ret")
        assert reg.pass_days(0, 10) == []  # day 10 is the deadline itself: still open
        assert not reg.compliance("eu1", 2008).final
        finals = reg.pass_days(10, 11)
        assert [(f.account, f.period, f.day, f.status, f.obligation, f.surrendered, f.shortfall, f.penalty,
                 f.currency) for f in finals] == [
            ("eu1", 2008, 10, ComplianceStatus.B, 150, 100, 50, 500_000, "EUR"),
            ("eu2", 2008, 10, ComplianceStatus.C, 0, 0, 0, 0, "EUR")]
        reg = reopen(reg)
        assert reg.pass_days(10, 11) == finals  # asked again (a replay): the same finals
        assert reg.pass_days(11, 12) == []
        c = reg.compliance("eu1", 2008)
        assert (c.status, c.shortfall, c.final, c.penalty) == (ComplianceStatus.B, 50, True, 500_000)
        last = list(reg.journal())[-2:]
        assert [(e.kind, e.account, e.qty, e.currency, e.amount, e.ref) for e in last] == [
            ("compliance_final", "eu1", 50, "EUR", 500_000, 2008),
            ("compliance_final", "eu2", 0, "EUR", 0, 2008)]
        # a late surrender or late emissions for 2008: refused, nothing moves
        reg.issue("eu1", EUA, 80, scheme="EU", period=2009, origin="EU")
        refused(reg, DeadlinePassed, "deadline of 'EU' 2008 \\(day 10\\) has passed", reg.surrender,
                "eu1", 2008, EUA, 50, to="ret")
        refused(reg, DeadlinePassed, "emissions of 'eu2' for 2008", reg.record_emissions, "eu2", 2008, 5)
        # the shortfall is surrendered against 2009, whose obligation carries it; 2008 stays B
        reg.record_emissions("eu1", 2009, 30)
        reg.surrender("eu1", 2009, EUA, 80, to="ret")
        c9 = reg.compliance("eu1", 2009)
        assert (c9.obligation, c9.surrendered, c9.status, c9.final) == (80, 80, ComplianceStatus.A, False)
        assert reg.compliance("eu1", 2008).status is ComplianceStatus.B
        assert reg.holding("eu1", EUA) == 0
        assert sum(b.qty for b in reg.blocks("ret", EUA)) == 180
        assert reg.balance("eu1", "EUR") == 0  # the penalty is assessed, not debited
        finals = reg.pass_days(12, 21)
        assert [(f.account, f.status, f.shortfall, f.penalty, f.currency) for f in finals] == [
            ("eu1", ComplianceStatus.A, 0, 0, None), ("eu2", ComplianceStatus.C, 0, 0, None)]
        reg.check()

    def test_without_a_deadline_a_late_surrender_still_counts(self, reg: Registry) -> None:
        """A scheme that sets no deadline keeps the old rules: nothing is ever final."""
        reg.record_emissions("a", 2010, 50)
        assert reg.pass_days(0, 1000) == []
        reg.surrender("a", 2010, JPA, 50, to="ret")
        c = reg.compliance("a", 2010)
        assert (c.status, c.final, c.penalty) == (ComplianceStatus.A, False, 0)

    def test_two_deadlines_passed_on_one_day_in_order(self, reg: Registry) -> None:
        self._eu(reg)
        reg.record_emissions("eu1", 2009, 10)
        finals = reg.pass_days(0, 25)
        assert [(f.account, f.period, f.obligation, f.shortfall, f.penalty) for f in finals] == [
            ("eu1", 2008, 150, 150, 1_500_000), ("eu2", 2008, 0, 0, 0),
            ("eu1", 2009, 160, 160, 0), ("eu2", 2009, 0, 0, 0)]
        reg.check()

    def test_emissions_corrected_before_the_deadline_keep_both_figures(self, reg: Registry) -> None:
        self._eu(reg)
        reg.surrender("eu1", 2008, EUA, 100, to="ret")
        reg.correct_emissions("eu1", 2008, 90)
        c = reg.compliance("eu1", 2008)
        assert (c.verified, c.obligation, c.status, c.shortfall) == (90, 90, ComplianceStatus.A, 0)
        assert [(e.kind, e.qty, e.detail) for e in reg.journal() if e.account == "eu1"
                and e.kind.startswith("emissions")] == [
            ("emissions", 150, ""), ("emissions_correction", 90, "corrected from 150 to 90")]
        reg.pass_days(0, 11)
        assert reg.compliance("eu1", 2008).final
        refused(reg, DeadlinePassed, "emissions correction of 'eu1' for 2008", reg.correct_emissions,
                "eu1", 2008, 100)
        reg.check()

    @pytest.mark.parametrize(("args", "exc", "match"), [
        (("eu2", 2008, 10), OperationRefused, "not recorded: nothing to correct"),
        (("eu1", 2008, 150), OperationRefused, "already 150"),
        (("eu1", 2008, -1), InvalidQuantity, "non-negative"),
        (("eu1", 2008, 1.5), InvalidQuantity, "non-negative"),
        (("eu1", 2008, 2**63), InvalidQuantity, "non-negative"),
        (("eu1", -3, 10), OperationRefused, "period"),
        (("nobody", 2008, 10), UnknownAccount, "nobody"),
        (("ret", 2008, 10), OperationRefused, "no compliance scheme"),
    ])
    def test_bad_emissions_correction(self, reg: Registry, args: tuple[Any, ...], exc: type[RegistryError],
                                      match: str) -> None:
        self._eu(reg)
        refused(reg, exc, match, reg.correct_emissions, *args)

    def test_removals_are_negative_emissions_where_the_scheme_allows_them(self, reg: Registry) -> None:
        """NZ forestry: a scheme with removals takes negative verified emissions; they lower the
        obligation (and the shortfall carried into it) but never below zero."""
        nzu = UnitType.NZU
        reg.create_scheme(Scheme("NZ", frozenset({nzu}), removals=True))
        reg.set_cap("NZ", 2008, 1_000)
        reg.open_account("forest", scheme="NZ")
        reg.issue("forest", nzu, 30, scheme="NZ", period=2008, origin="NZ")
        reg.set_deadline("NZ", 2008, 3)
        reg.record_emissions("forest", 2008, 40)
        reg.surrender("forest", 2008, nzu, 30, to="ret")
        reg.pass_days(0, 4)
        reg.record_emissions("forest", 2009, -25)
        c = reg.compliance("forest", 2009)
        assert (c.verified, c.obligation, c.shortfall, c.status) == (-25, 0, 0, ComplianceStatus.A)
        reg.correct_emissions("forest", 2009, -4)
        c = reg.compliance("forest", 2009)
        assert (c.verified, c.obligation, c.shortfall, c.status) == (-4, 6, 6, ComplianceStatus.B)
        reg.record_emissions("forest", 2010, 3)
        assert reg.compliance("forest", 2010).obligation == 9
        refused(reg, InvalidQuantity, "counts no removals", reg.record_emissions, "b", 2010, -5)
        refused(reg, InvalidQuantity, "negative: net removals", reg.record_emissions, "forest", 2011, -(2**63))
        refused(reg, OperationRefused, "removals must be true or false", reg.create_scheme,
                Scheme("NZ2", frozenset({nzu}), removals=1))  # type: ignore[arg-type]
        reg.check()

    def test_finals_of_huge_obligations_stay_within_64_bits(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        big = 2**63 - 1
        self._eu(reg)
        reg.correct_emissions("eu1", 2008, big)
        reg.record_emissions("eu1", 2009, big)
        finals = reg.pass_days(0, 30)
        mine = [(f.period, f.obligation, f.shortfall, f.penalty, f.carried) for f in finals
                if f.account == "eu1"]
        assert mine == [(2008, big, big, big, big), (2009, big, big, 0, big)]
        reg = reopen(reg)
        assert reg.compliance("eu1", 2009).obligation == big
        reg.check()

    def test_rggi_style_deadline_carries_a_multiple_of_the_shortfall(self, reg: Registry) -> None:
        """A deadline with multiple 3 adds three times the final shortfall to the next period's
        obligation (RGGI's excess-emissions deduction); no penalty in cash."""
        reg.create_scheme(Scheme("RGGI", frozenset({UnitType.RGA})))
        reg.set_cap("RGGI", 2009, 1_000)
        reg.open_account("plant", scheme="RGGI")
        reg.issue("plant", UnitType.RGA, 70, scheme="RGGI", period=2009, origin="US")
        reg.set_deadline("RGGI", 2009, 5, multiple=3)
        reg.record_emissions("plant", 2009, 100)
        reg.surrender("plant", 2009, UnitType.RGA, 70, to="ret")
        [f] = reg.pass_days(0, 6)
        assert (f.status, f.shortfall, f.carried, f.penalty) == (ComplianceStatus.B, 30, 90, 0)
        reg.record_emissions("plant", 2010, 40)
        c = reg.compliance("plant", 2010)
        assert (c.obligation, c.shortfall, c.status) == (130, 130, ComplianceStatus.B)
        assert reg.compliance("plant", 2009).shortfall == 30
        reg.check()

    @pytest.mark.parametrize(("args", "kw", "exc", "match"), [
        (("EU", 2010, 10), {"multiple": 0}, InvalidQuantity, "multiple"),
        (("EU", 2010, 10), {"multiple": 101}, InvalidQuantity, "multiple"),
        (("EU", 2010, 10), {"multiple": 2.0}, InvalidQuantity, "multiple"),
        (("NOPE", 2008, 10), {}, UnknownScheme, "NOPE"),
        (("EU", -1, 10), {}, OperationRefused, "period"),
        (("EU", 2008, -1), {}, OperationRefused, "deadline day"),
        (("EU", 2008, 1.5), {}, OperationRefused, "deadline day"),
        (("EU", 2008, 10), {"penalty": -1, "currency": "EUR"}, InvalidQuantity, "penalty"),
        (("EU", 2008, 10), {"penalty": True, "currency": "EUR"}, InvalidQuantity, "penalty"),
        (("EU", 2008, 10), {"penalty": 100}, OperationRefused, "needs its currency"),
        (("EU", 2008, 10), {"penalty": 100, "currency": "a\x00b"}, OperationRefused, "currency"),
        (("EU", 2008, 30), {}, OperationRefused, "already set"),
        (("EU", 2010, 4), {}, OperationRefused, "before the current business day 5"),
    ])
    def test_bad_deadline(self, reg: Registry, args: tuple[Any, ...], kw: dict[str, Any],
                          exc: type[RegistryError], match: str) -> None:
        self._eu(reg)
        reg.set_cap("EU", 2010, 1)
        reg.pass_days(0, 5)
        refused(reg, exc, match, reg.set_deadline, *args, **kw)

    def _reporting(self, reg: Registry) -> None:
        """Scheme EU (EUA) with a reporting deadline on day 5 and a surrender deadline on day 10
        (EUR 100/t) for 2008; operators ``op1`` (100 t reported, 100 EUA), ``op2`` and ``op3``
        (nothing reported, 50 EUA)."""
        reg.create_scheme(Scheme("EU", frozenset({EUA})))
        reg.set_cap("EU", 2008, 10_000)
        for name in ("op1", "op2", "op3"):
            reg.open_account(name, scheme="EU")
        reg.issue("op1", EUA, 100, scheme="EU", period=2008, origin="EU")
        reg.issue("op3", EUA, 50, scheme="EU", period=2008, origin="EU")
        reg.record_emissions("op1", 2008, 100)
        reg.set_deadline("EU", 2008, 10, penalty=10_000, currency="EUR", report=5)

    def test_reporting_deadline_records_status_c_and_a_late_report_still_counts(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        """EU: emissions of X verified by 31 March X+1, surrender by 30 April (DOMAIN.md 2). An
        account without emissions when the reporting deadline passes gets status C recorded; a
        late report (or an estimate) entered before the surrender deadline counts."""
        self._reporting(reg)
        assert list(reg.journal())[-1].detail == "report by day 5, day 10"
        assert reg.pass_days(0, 5) == []  # day 5 is the reporting deadline itself: still open
        missed = reg.pass_days(5, 6)
        assert [(m.account, m.period, m.day, m.deadline) for m in missed] == [("op2", 2008, 5, 10),
                                                                              ("op3", 2008, 5, 10)]
        assert [(e.txid, e.kind, e.account, e.ref, e.detail) for e in list(reg.journal())[-2:]] == [
            (missed[0].txid, "report_missed", "op2", 2008, "status C, no verified emissions at the reporting "
                                                           "deadline, day 5"),
            (missed[1].txid, "report_missed", "op3", 2008, "status C, no verified emissions at the reporting "
                                                           "deadline, day 5")]
        reg = reopen(reg)
        assert reg.pass_days(5, 6) == missed  # asked again (a replay): the same records
        c = reg.compliance("op3", 2008)
        assert (c.status, c.verified, c.report_missed, c.final) == (ComplianceStatus.C, None, 5, False)
        assert reg.compliance("op1", 2008).report_missed is None
        reg.record_emissions("op3", 2008, 60)  # a late report is allowed up to the surrender deadline
        reg.surrender("op3", 2008, EUA, 50, to="ret")
        reg.surrender("op1", 2008, EUA, 100, to="ret")
        c = reg.compliance("op3", 2008)
        assert (c.status, c.obligation, c.shortfall, c.report_missed) == (ComplianceStatus.B, 60, 10, 5)
        finals = reg.pass_days(6, 11)
        assert [(f.account, f.status, f.shortfall, f.penalty) for f in finals] == [
            ("op1", ComplianceStatus.A, 0, 0), ("op2", ComplianceStatus.C, 0, 0),
            ("op3", ComplianceStatus.B, 10, 100_000)]
        assert reg.pass_days(0, 11) == [*missed, *finals]  # reporting records first, by day
        c = reg.compliance("op2", 2008)
        assert (c.status, c.final, c.report_missed) == (ComplianceStatus.C, True, 5)
        refused(reg, DeadlinePassed, "emissions of 'op2' for 2008", reg.record_emissions, "op2", 2008, 5)
        reg.check()

    def test_reporting_and_surrender_deadlines_passed_on_one_day_in_order(self, reg: Registry) -> None:
        """Two schemes: one business day passes A's surrender deadline (day 3) and B's reporting
        deadline (day 3): B's report records come first, then A's finals, each by account."""
        reg.create_scheme(Scheme("A", frozenset({EUA})))
        reg.create_scheme(Scheme("B", frozenset({UnitType.UKA})))
        reg.open_account("a1", scheme="A")
        reg.open_account("b1", scheme="B")
        reg.open_account("b2", scheme="B")
        reg.set_deadline("A", 2010, 3, report=1)
        reg.set_deadline("B", 2010, 8, report=3)
        reg.record_emissions("b2", 2010, 7)
        out = reg.pass_days(0, 4)
        assert [(type(r).__name__, r.account, r.day) for r in out] == [
            ("ReportMissed", "a1", 1), ("ReportMissed", "b1", 3), ("Final", "a1", 3)]
        assert [e.txid for e in reg.journal() if e.kind in ("report_missed", "compliance_final")] == [
            r.txid for r in out]
        reg.check()

    @pytest.mark.parametrize(("report", "match"), [
        (11, "got 11"), (4, "got 4"), (-1, "got -1"), (6.0, "got 6.0"), (True, "got True"),
        ("6", "got .6.")])
    def test_bad_reporting_deadline(self, reg: Registry, report: Any, match: str) -> None:
        reg.create_scheme(Scheme("EU", frozenset({EUA})))
        reg.pass_days(0, 5)
        refused(reg, OperationRefused, "reporting deadline must be a business day .*" + match, reg.set_deadline,
                "EU", 2008, 10, report=report)

    def test_control_period_obligation_is_the_sum_of_its_years(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        """RGGI-style control periods 2009-2011 and 2012-2014: emissions per year, one obligation,
        surrender, deadline and status per control period, named by its last year; a year inside
        one shows the control period's compliance, never a status of its own."""
        rga = UnitType.RGA
        reg.create_scheme(Scheme("RGGI", frozenset({rga}), banking=False,
                                 control_periods=((2012, 2014), (2009, 2011))))
        for period in (2009, 2010, 2011, 2012):
            reg.set_cap("RGGI", period, 1_000)
            reg.issue("c", rga, 100 if period < 2012 else 50, scheme="RGGI", period=period, origin="US")
        reg.open_account("plant", scheme="RGGI")
        reg.transfer("c", "plant", rga, 350)
        reg.record_emissions("plant", 2009, 90)
        reg.record_emissions("plant", 2010, 100)
        c = reg.compliance("plant", 2009)
        assert (c.period, c.first, c.verified, c.obligation, c.status) == (2011, 2009, 190, 190,
                                                                            ComplianceStatus.C)  # 2011 to come
        reg.surrender("plant", 2010, rga, 150, to="ret")  # for the control period: 2009's vintage first
        reg.record_emissions("plant", 2011, 110)
        c = reg.compliance("plant", 2011)
        assert (c.verified, c.obligation, c.surrendered, c.shortfall, c.status) == (
            300, 300, 150, 150, ComplianceStatus.B)
        assert reg.compliance("plant", 2010) == c
        # every vintage of the control period counts for it (no banking needed); 2012's does not
        refused(reg, NotEligible, "holds 150 RGA that count for 'RGGI' 2011, 200 needed; not eligible: 50 RGA "
                "of vintage 2012", reg.surrender, "plant", 2011, rga, 200, to="ret")
        reg.surrender("plant", 2011, rga, 130, to="ret")
        assert sorted((b.period, b.qty) for b in reg.blocks("ret")) == [(2009, 100), (2010, 50), (2010, 50),
                                                                        (2011, 80)]
        reg.set_deadline("RGGI", 2009, 5, multiple=3)  # the control period's deadline
        refused(reg, OperationRefused, "deadline of 'RGGI' 2011 is already set", reg.set_deadline, "RGGI",
                2011, 6)
        [f] = reg.pass_days(0, 6)
        assert (f.account, f.period, f.status, f.obligation, f.shortfall, f.carried) == (
            "plant", 2011, ComplianceStatus.B, 300, 20, 60)
        refused(reg, DeadlinePassed, "emissions correction of 'plant' for 2009: the surrender deadline of "
                "'RGGI' 2011", reg.correct_emissions, "plant", 2009, 95)
        reg = reopen(reg)
        c = reg.compliance("plant", 2012)  # the next control period carries 3 x 20, nothing reported yet
        assert (c.period, c.first, c.verified, c.obligation, c.status) == (2014, 2012, None, 60,
                                                                            ComplianceStatus.C)
        reg.record_emissions("plant", 2012, 40)
        reg.record_emissions("plant", 2013, 30)
        reg.record_emissions("plant", 2014, 20)
        c = reg.compliance("plant", 2013)
        assert (c.period, c.verified, c.obligation, c.shortfall, c.status) == (2014, 90, 150, 150,
                                                                                ComplianceStatus.B)
        c = reg.compliance("plant", 2015)  # outside every control period: a year of its own
        assert (c.period, c.first, c.obligation) == (2015, None, 150)
        reg.check()

    @pytest.mark.parametrize(("spans", "match"), [
        (((2009, 2011), (2011, 2013)), "control periods overlap in 2011"),
        (((2009, 2009),), "from its first to a later last period, got 2009..2009"),
        (((2011, 2009),), "got 2011..2009"),
        (((2009, 2010, 2011),), "a control period is \\(first, last\\)"),
        ((2009,), "a control period is \\(first, last\\)"),
        (((-1, 2010),), "period must be"),
        (((2009, 1.5),), "period must be"),
        ("2009-2011", "control_periods must be a list"),
    ])
    def test_bad_control_periods_refused(self, reg: Registry, spans: Any, match: str) -> None:
        refused(reg, OperationRefused, match, reg.create_scheme, Scheme("NEW", frozenset({UnitType.RGA}),
                                                                        control_periods=spans))

    # -- eligibility of units for a surrender (issue 14, item 1) ------------------------

    def test_no_banking_refuses_an_earlier_vintage(self, reg: Registry) -> None:
        """EUETS has banking false: its 2010 EUAs never count for 2012, even the oldest; its
        2012 EUAs do, and 2010 ones still count for 2010."""
        reg.set_cap("EUETS", 2012, 1_000)
        reg.open_account("eu-op", scheme="EUETS")
        reg.issue("eu-op", EUA, 100, scheme="EUETS", period=2010, origin="EU")
        reg.record_emissions("eu-op", 2012, 50)
        refused(reg, NotEligible, "100 EUA of vintage 2010 of scheme 'EUETS', which does not allow banking "
                "into 2012", reg.surrender, "eu-op", 2012, EUA, 50, to="ret")
        assert reg.compliance("eu-op", 2012).status is ComplianceStatus.B
        reg.issue("eu-op", EUA, 60, scheme="EUETS", period=2012, origin="EU")
        refused(reg, NotEligible, "holds 60 EUA that count for 'EUETS' 2012, 61 needed", reg.surrender,
                "eu-op", 2012, EUA, 61, to="ret")
        reg.surrender("eu-op", 2012, EUA, 50, to="ret")
        c = reg.compliance("eu-op", 2012)
        assert (c.status, c.obligation, c.surrendered, c.shortfall) == (ComplianceStatus.A, 50, 50, 0)
        assert [(b.period, b.qty) for b in reg.blocks("ret")] == [(2012, 50)]
        assert reg.holding("eu-op", EUA) == 110
        reg.surrender("eu-op", 2010, EUA, 100, to="ret")
        assert reg.holding("eu-op", EUA) == 10 and reg.compliance("eu-op", 2010).surrendered == 100
        reg.check()

    def test_allowances_count_only_for_their_scheme(self, reg: Registry) -> None:
        """JPA issued under TRIAL never counts for a JVETS obligation; the JVETS JPA do, even
        though the TRIAL block is older."""
        reg.create_scheme(Scheme("TRIAL", frozenset({JPA})))
        reg.set_cap("TRIAL", 2010, 1_000)
        reg.issue("b", JPA, 100, scheme="TRIAL", period=2010, origin="TR")
        reg.record_emissions("b", 2010, 50)
        refused(reg, NotEligible, "holds 0 JPA that count for 'JVETS' 2010, 50 needed; not eligible: 100 JPA "
                "of scheme 'TRIAL', whose allowances 'JVETS' does not accept", reg.surrender, "b", 2010, JPA,
                50, to="ret")
        reg.transfer("a", "b", JPA, 30)
        refused(reg, NotEligible, "holds 30 JPA", reg.surrender, "b", 2010, JPA, 50, to="ret")
        reg.surrender("b", 2010, JPA, 30, to="ret")
        c = reg.compliance("b", 2010)
        assert (c.status, c.surrendered, c.shortfall) == (ComplianceStatus.B, 30, 20)
        assert [(b.origin, b.qty) for b in reg.blocks("ret")] == [("JP", 30)]
        assert reg.holding("b", JPA) == 100 and reg.holding("a", JPA) == 970
        reg.check()

    def test_a_later_vintage_is_borrowing_and_refused(self, reg: Registry) -> None:
        reg.issue("c", JPA, 100, scheme="JVETS", period=2011)
        reg.record_emissions("c", 2010, 40)
        refused(reg, NotEligible, "100 JPA of vintage 2011, later than 2010 \\(scheme 'JVETS' does not lend "
                "it\\)", reg.surrender, "c", 2010, JPA, 40, to="ret")
        reg.surrender("c", 2011, JPA, 40, to="ret")
        assert reg.compliance("c", 2011).surrendered == 40 and reg.compliance("c", 2010).surrendered == 0

    def test_oldest_eligible_vintage_first_unless_one_is_named(self, reg: Registry) -> None:
        reg.issue("a", JPA, 200, scheme="JVETS", period=2011)
        reg.surrender("a", 2011, JPA, 150, to="ret", vintage=2011)
        assert [(b.period, b.qty) for b in reg.blocks("ret")] == [(2011, 150)]
        reg.surrender("a", 2011, JPA, 100, to="ret")  # JVETS banks: the 2010 JPA go first
        assert sorted((b.period, b.qty) for b in reg.blocks("ret")) == [(2010, 100), (2011, 150)]
        refused(reg, NotEligible, "holds 50 JPA .* 900 JPA of vintage 2010, not the named vintage 2011",
                reg.surrender, "a", 2011, JPA, 51, to="ret", vintage=2011)
        assert reg.holding("a", JPA) == 950 and reg.compliance("a", 2011).surrendered == 250
        reg.check()

    def test_surrender_by_serials(self, reg: Registry) -> None:
        reg.create_scheme(Scheme("TRIAL", frozenset({JPA})))
        reg.set_cap("TRIAL", 2010, 1_000)
        reg.issue("a", JPA, 10, scheme="TRIAL", period=2010, origin="TR")
        reg.surrender("a", 2010, JPA, 10, to="ret", serials=Serials("JP", 501, 510))
        assert [(b.start, b.end, b.state) for b in reg.blocks("ret")] == [(501, 510, BlockState.SURRENDERED)]
        refused(reg, NotEligible, "serials TR 1..10 \\(JPA\\) do not count for 'JVETS' 2010: scheme 'TRIAL'",
                reg.surrender, "a", 2010, JPA, 10, to="ret", serials=Serials("TR", 1, 10))
        refused(reg, TerminalUnits, "surrendered", reg.surrender, "a", 2010, JPA, 10, to="ret",
                serials=Serials("JP", 501, 510))
        assert reg.holding("a", JPA) == 1000 and reg.compliance("a", 2010).surrendered == 10
        reg.check()

    def test_surplus_is_spent_not_carried(self, reg: Registry) -> None:
        """50 against an obligation of 10 is status A (EU code A: surrendered >= verified); the
        40 above it do not count for the next period."""
        reg.record_emissions("a", 2010, 10)
        reg.surrender("a", 2010, JPA, 50, to="ret")
        c = reg.compliance("a", 2010)
        assert (c.status, c.obligation, c.surrendered, c.shortfall) == (ComplianceStatus.A, 10, 50, 0)
        reg.record_emissions("a", 2011, 20)
        c = reg.compliance("a", 2011)
        assert (c.status, c.obligation, c.surrendered) == (ComplianceStatus.B, 20, 0)

    def test_banking_between_phases(self, reg: Registry) -> None:
        """EU phase 1 (2005-07) units never count in phase 2 (2008-12); within phase 2 they bank."""
        reg.create_scheme(Scheme("EU2", frozenset({UnitType.UKA}), phases=frozenset({2005, 2008}),
                                 phase_banking=False))
        for period in (2007, 2008, 2009):
            reg.set_cap("EU2", period, 1_000)
        reg.open_account("op", scheme="EU2")
        reg.issue("op", UnitType.UKA, 100, scheme="EU2", period=2007, origin="EU")
        reg.issue("op", UnitType.UKA, 100, scheme="EU2", period=2008, origin="EU")
        refused(reg, NotEligible, "100 UKA of vintage 2007 of scheme 'EU2', which does not allow banking into "
                "2009", reg.surrender, "op", 2009, UnitType.UKA, 101, to="ret")
        refused(reg, OperationRefused, "does not allow banking into 2008", reg.carry_over, "op", UnitType.UKA,
                2007)
        reg.surrender("op", 2009, UnitType.UKA, 60, to="ret")  # the 2008 units bank within phase 2
        reg.surrender("op", 2007, UnitType.UKA, 100, to="ret")
        assert reg.carry_over("op", UnitType.UKA, 2008) == 40
        assert sorted((b.period, b.qty) for b in reg.blocks("ret")) == [(2007, 100), (2008, 60)]
        assert reg.holding("op", UnitType.UKA) == 40
        reg.check()

    def test_banking_per_phase_change(self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        """EU: no banking from phase 1 (2005-07) into phase 2 (2008-12), banking from phase 2 into
        phase 3 (2013-20): ``phase_banking`` lists the phases earlier ones bank into."""
        reg.create_scheme(Scheme("EU3", frozenset({EUA}), phases=frozenset({2005, 2008, 2013}),
                                 phase_banking=frozenset({2013})))
        for period in (2007, 2012, 2013):
            reg.set_cap("EU3", period, 1_000)
        reg.open_account("op", scheme="EU3")
        reg.issue("op", EUA, 100, scheme="EU3", period=2007, origin="EU")
        reg.issue("op", EUA, 100, scheme="EU3", period=2012, origin="EU")
        refused(reg, NotEligible, "holds 100 EUA that count for 'EU3' 2012, 101 needed; not eligible: 100 EUA "
                "of vintage 2007 of scheme 'EU3', which does not allow banking into 2012 \\(from its phase of "
                "2005 into that of 2008\\)", reg.surrender, "op", 2012, EUA, 101, to="ret")
        refused(reg, NotEligible, "holds 100 EUA that count for 'EU3' 2013, 150 needed; not eligible: 100 EUA "
                "of vintage 2007 .* \\(from its phase of 2005 into that of 2013\\)", reg.surrender, "op", 2013,
                EUA, 150, to="ret")
        refused(reg, OperationRefused, "does not allow banking into 2008", reg.carry_over, "op", EUA, 2007)
        reg = reopen(reg)
        refused(reg, NotEligible, "vintage 2007 .* into 2013", reg.surrender, "op", 2013, EUA, 1, to="ret",
                vintage=2007)  # the rule stays when the registry is opened again
        reg.surrender("op", 2013, EUA, 60, to="ret")  # phase 2's units bank into phase 3
        assert reg.carry_over("op", EUA, 2012) == 40
        assert [(b.period, b.qty, b.state) for b in reg.blocks("ret")] == [(2012, 60, BlockState.SURRENDERED)]
        assert sorted((b.period, b.qty) for b in reg.blocks("op")) == [(2007, 100), (2013, 40)]
        assert reg.compliance("op", 2013).surrendered == 60
        reg.check()

    @pytest.mark.parametrize(("into", "match"), [
        (frozenset({2010}), "phase_banking names \\[2010\\], which are not first periods of phases"),
        ("2013", "phase_banking must be true, false or a list of phases"),
        (None, "phase_banking must be true, false or a list of phases"),
        (frozenset({-1}), "period must be"),
    ])
    def test_bad_phase_banking_refused(self, reg: Registry, into: Any, match: str) -> None:
        refused(reg, OperationRefused, match, reg.create_scheme, Scheme("NEW", frozenset({EUA}),
                                                                        phases=frozenset({2008, 2013}),
                                                                        phase_banking=into))

    def test_borrowing_is_the_next_vintage_within_a_phase_used_last_and_recorded(self, reg: Registry) -> None:
        reg.create_scheme(Scheme("LEND", frozenset({UnitType.UKA}), phases=frozenset({2008, 2013}),
                                 borrowing=True))
        for period in (2008, 2009, 2010, 2012, 2013):
            reg.set_cap("LEND", period, 1_000)
        reg.open_account("op", scheme="LEND")
        for period in (2008, 2009, 2010, 2013):
            reg.issue("op", UnitType.UKA, 100, scheme="LEND", period=period, origin="EU")
        reg.record_emissions("op", 2008, 150)
        refused(reg, NotEligible, "100 UKA of vintage 2010, later than 2008 \\(scheme 'LEND' does not lend "
                "it\\)", reg.surrender, "op", 2008, UnitType.UKA, 201, to="ret")
        txid = reg.surrender("op", 2008, UnitType.UKA, 150, to="ret")
        c = reg.compliance("op", 2008)
        assert (c.status, c.surrendered, c.borrowed) == (ComplianceStatus.A, 150, 50)
        assert sorted((b.period, b.qty) for b in reg.blocks("ret")) == [(2008, 100), (2009, 50)]
        assert [e.detail for e in reg.journal(txid - 1)] == ["borrowed 50 of 2009"]
        refused(reg, NotEligible, "100 UKA of vintage 2013, later than 2012", reg.surrender, "op", 2012,
                UnitType.UKA, 1, to="ret", serials=None, vintage=2013)
        refused(reg, NotEligible, "serials EU 301..400 \\(UKA\\) do not count for 'LEND' 2012: vintage 2013",
                reg.surrender, "op", 2012, UnitType.UKA, 100, to="ret", serials=Serials("EU", 301, 400))
        reg.surrender("op", 2009, UnitType.UKA, 10, to="ret", serials=Serials("EU", 201, 210))
        assert reg.compliance("op", 2009).borrowed == 10 and reg.holding("op", UnitType.UKA) == 240
        reg.check()

    @pytest.mark.parametrize("fields", [{"phases": frozenset({-1})}, {"phases": frozenset({1.5})},
                                        {"phases": "2008"}, {"phases": frozenset({True})},
                                        {"borrowing": "yes"}, {"borrowing": 1}, {"phase_banking": None}])
    def test_bad_scheme_banking_rules_refused(self, reg: Registry, fields: dict[str, Any]) -> None:
        refused(reg, OperationRefused, "must be", reg.create_scheme, Scheme("NEW", frozenset({UnitType.UKA}),
                                                                            **fields))

    @pytest.mark.parametrize("vintage", [-1, 10**6, 1.5, True, "2010"])
    def test_bad_vintage_refused(self, reg: Registry, vintage: Any) -> None:
        refused(reg, OperationRefused, "period must be", reg.surrender, "a", 2010, JPA, 1, to="ret",
                vintage=vintage)

    @pytest.mark.parametrize("serials", [(1, 2), Serials("JP", "1", 1), Serials("JP", 2, 1), None])
    def test_bad_surrender_serials_refused(self, reg: Registry, serials: Any) -> None:
        if serials is None:
            refused(reg, OperationRefused, "vintage or serials, not both", reg.surrender, "a", 2010, JPA, 1,
                    to="ret", vintage=2010, serials=Serials("JP", 1, 1))
        else:
            refused(reg, RegistryError, "serials", reg.surrender, "a", 2010, JPA, 1, to="ret", serials=serials)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                     HealthCheck.too_slow, HealthCheck.differing_executors])
    @given(data=st.data())
    def test_no_unit_counts_twice_or_out_of_period(self, make_registry: Factory, data: st.DataObject) -> None:
        """Whatever the sequence, each surrendered serial counts for one surrender only, and
        only for a period it is valid for (its own, or a later one where its scheme banks),
        under the scheme that issued it; refusals change nothing."""
        with closing(world(make_registry())) as reg:  # one connection per example, not 50
            reg.create_scheme(Scheme("TRIAL", frozenset({JPA}), phases=frozenset({2010, 2012}),
                                     phase_banking=False, borrowing=True))
            for period in (2010, 2011, 2012):
                for scheme in ("TRIAL", "EUETS", "JVETS"):
                    reg.set_cap(scheme, period, 100_000)
            reg.open_account("eu-op", scheme="EUETS")
            reg.open_account("tr-op", scheme="TRIAL")

            def valid(scheme: str, vintage: int, period: int) -> bool:
                """The rules written out: EUETS neither banks nor lends, JVETS banks, TRIAL banks
                and lends within its phases 2010-11 and 2012-."""
                if scheme == "EUETS":
                    return vintage == period
                if scheme == "JVETS":
                    return vintage <= period
                same_phase = (vintage >= 2012) == (period >= 2012)
                return vintage == period or (same_phase and vintage <= period + 1)

            periods = st.sampled_from((2010, 2011, 2012))
            holders = st.sampled_from(("a", "b", "tr-op"))
            ops = st.one_of(
                st.tuples(st.just("issue"), st.sampled_from(("a", "b", "eu-op", "tr-op")),
                          st.sampled_from(("JVETS", "TRIAL", "EUETS")), periods, st.integers(1, 40)),
                st.tuples(st.just("transfer"), holders, holders, st.integers(1, 60)),
                st.tuples(st.just("surrender"), st.sampled_from(("a", "b", "eu-op", "tr-op")), periods,
                          st.integers(1, 60), st.one_of(st.none(), periods, st.just("serials"))),
            )
            counted: dict[tuple[str, int], int] = {}
            lent: dict[tuple[str, int], int] = {}
            seen: set[tuple[str, int]] = set()
            for op in data.draw(st.lists(ops, max_size=15)):
                before = fingerprint(reg)
                ret_before = {(b.origin, b.start) for b in reg.blocks("ret")}
                try:
                    if op[0] == "issue":
                        reg.issue(op[1], EUA if op[2] == "EUETS" else JPA, op[4], scheme=op[2], period=op[3],
                                  origin=op[2][:2])
                    elif op[0] == "transfer":
                        reg.transfer(op[1], op[2], JPA, op[3])
                    else:
                        account, period, qty, vintage = op[1:]
                        unit = EUA if account == "eu-op" else JPA
                        serials = None
                        if vintage == "serials":  # a range inside one of its blocks, eligible or not
                            vintage = None
                            held = [b for b in reg.blocks(account, unit) if b.state is BlockState.ACTIVE]
                            if held:
                                b = data.draw(st.sampled_from(held))
                                first = b.start + data.draw(st.integers(0, b.qty - 1))
                                qty = min(qty, b.end - first + 1)
                                serials = Serials(b.origin, first, first + qty - 1)
                        reg.surrender(account, period, unit, qty, to="ret", vintage=vintage, serials=serials)
                        new = [b for b in reg.blocks("ret") if (b.origin, b.start) not in ret_before]
                        assert sum(b.qty for b in new) == qty
                        own = {"eu-op": "EUETS", "tr-op": "TRIAL"}.get(account, "JVETS")
                        for b in new:
                            assert b.scheme == own and valid(b.scheme, b.period, period)
                            assert vintage is None or b.period == vintage
                            for serial in range(b.start, b.end + 1):
                                assert (b.origin, serial) not in seen
                                seen.add((b.origin, serial))
                        lent[account, period] = lent.get((account, period), 0) + sum(
                            b.qty for b in new if b.period > period)
                        counted[account, period] = counted.get((account, period), 0) + qty
                except RegistryError:
                    assert fingerprint(reg) == before
                reg.check()
            assert len(seen) == sum(b.qty for b in reg.blocks("ret"))
            for (account, period), qty in counted.items():
                c = reg.compliance(account, period)
                assert (c.surrendered, c.borrowed) == (qty, lent[account, period])

    # -- allocation (issue 14, item 4) and the borrowing limit (item 2) ---------------

    def test_allocation_by_grandfathering_benchmark_and_intensity_with_inputs_on_record(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        first = reg.last_txid
        g = reg.allocate("a", 2010, "grandfathering", base=[1200, 1000, 1100], reduction=150)
        b = reg.allocate("b", 2010, "benchmark", activity=2000, rate=766, per=1000)
        i = reg.allocate("c", 2010, "intensity", activity=1000, rate=9, per=10)
        assert (g.qty, b.qty, i.qty) == (950, 1532, 900)  # 3300/3 - 150; 2000 x 0.766; 1000 x 0.9
        assert [said(a) for a in (g, b, i)] == [
            "a 2010 grandfathering: base-year average (1200+1000+1100)/3 - 150 reduction: +950 JPA",
            "b 2010 benchmark: activity 2000 x 766/1000: +1532 JPA",
            "c 2010 intensity: forecast production 1000 x 9/10, to be trued up: +900 JPA"]
        up = reg.true_up("c", 2010, 1200)  # verified production above the forecast: 180 more
        down = reg.true_up("c", 2010, 1000, to="iss")  # corrected down: 180 taken back
        assert (up.qty, up.reduction, down.qty, down.reduction) == (180, 900, -180, 1080)
        back = reg.return_allocation("a", 2010, 50, to="iss")
        assert back.qty == -50
        assert [reg.holding(name, JPA) for name in ("a", "b", "c", "iss")] == [1900, 1532, 900, 230]
        assert [(e.kind, e.account, e.counterparty, e.qty, e.ref) for e in reg.journal(first)] == [
            ("allocate", "a", None, 950, 2010), ("allocate", "b", None, 1532, 2010),
            ("allocate", "c", None, 900, 2010), ("true_up", "c", None, 180, 2010),
            ("true_up", "c", "iss", 180, 2010),
            ("allocation_return", "a", "iss", 50, 2010)]
        reg = reopen(reg)
        records = reg.allocations()
        assert records == [g, b, i, up, down, back]
        assert (records[0].base, records[0].reduction, records[1].activity, records[1].rate) == (
            (1200, 1000, 1100), 150, 2000, 766)
        assert [a.qty for a in reg.allocations("c", 2010)] == [900, 180, -180]
        assert reg.issued(JPA) == 1000 + 950 + 1532 + 900 + 180
        reg.check()

    @pytest.mark.parametrize(("args", "kw", "exc", "match"), [
        (("a", 2010, "auction"), {"activity": 5}, OperationRefused, "method must be one of"),
        (("a", 2010, "benchmark"), {}, InvalidQuantity, "activity must be a positive"),
        (("a", 2010, "benchmark"), {"activity": 10, "rate": 0}, InvalidQuantity, "rate must be"),
        (("a", 2010, "benchmark"), {"activity": 10, "per": -1}, InvalidQuantity, "per must be"),
        (("a", 2010, "benchmark"), {"activity": 1, "rate": 1, "per": 2}, InvalidQuantity, "computes to 0"),
        (("a", 2010, "benchmark"), {"activity": 10, "base": [5]}, OperationRefused, "not base years"),
        (("a", 2010, "grandfathering"), {}, InvalidQuantity, "1..10 base years"),
        (("a", 2010, "grandfathering"), {"base": [5, -1]}, InvalidQuantity, "base years"),
        (("a", 2010, "grandfathering"), {"base": [5, 1.5]}, InvalidQuantity, "base years"),
        (("a", 2010, "grandfathering"), {"base": "100"}, OperationRefused, "base must be a list"),
        (("a", 2010, "grandfathering"), {"base": [100], "reduction": 100}, InvalidQuantity, "computes to 0"),
        (("a", 2010, "grandfathering"), {"base": [100], "reduction": -1}, InvalidQuantity, "reduction"),
        (("a", 2010, "grandfathering"), {"base": [100], "activity": 3}, OperationRefused, "not an activity"),
        (("a", 2010, "benchmark"), {"activity": 200_000}, CapExceeded, "may issue 98500 more"),
        (("a", 2012, "benchmark"), {"activity": 1}, CapExceeded, "may issue 0 more"),
        (("a", 2010, "benchmark"), {"activity": 10, "unit": JVER}, UnitNotAllowed, "allocates no JVER"),
        (("b2", 2010, "benchmark"), {"activity": 10}, OperationRefused, "no compliance scheme"),
        (("blk", 2010, "benchmark"), {"activity": 10}, AccountBlocked, "blocked"),
        (("zz", 2010, "benchmark"), {"activity": 10}, UnknownAccount, "does not exist"),
        (("a", -5, "benchmark"), {"activity": 10}, OperationRefused, "period must be"),
    ])
    def test_bad_allocation_refused(self, reg: Registry, args: tuple[Any, ...], kw: dict[str, Any],
                                    exc: type[RegistryError], match: str) -> None:
        reg.open_account("b2")
        refused(reg, exc, match, reg.allocate, *args, **kw)

    def test_bad_true_up_and_return_refused(self, reg: Registry) -> None:
        refused(reg, OperationRefused, "no intensity allocation for 2010", reg.true_up, "c", 2010, 100)
        reg.allocate("c", 2010, "intensity", activity=1000, rate=9, per=10)
        refused(reg, OperationRefused, "= 900, already allocated", reg.true_up, "c", 2010, 1000)
        refused(reg, InvalidQuantity, "production must be", reg.true_up, "c", 2010, 0)
        refused(reg, OperationRefused, "need the issuance account", reg.true_up, "c", 2010, 500)
        refused(reg, UnitNotAllowed, "not issuance", reg.true_up, "c", 2010, 500, to="b")
        reg.transfer("c", "b", JPA, 800)
        refused(reg, InsufficientUnits, "holds 100 JPA of 'JVETS' 2010; 450 to give back", reg.true_up, "c",
                2010, 500, to="iss")
        refused(reg, OperationRefused, "allocated 900 for 2010: it cannot return 901", reg.return_allocation,
                "c", 2010, 901, to="iss")
        refused(reg, OperationRefused, "allocated 0 for 2010", reg.return_allocation, "a", 2010, 1, to="iss")
        refused(reg, InvalidQuantity, "quantity must be", reg.return_allocation, "c", 2010, 0, to="iss")

    def _trial(self, reg: Registry) -> None:
        """Scheme TRIAL (JPA, borrowing up to 20% of the next allocation); ``op`` allocated 1,000
        for 2010 and for 2011, ``op2`` for 2010 only; both emitted 1,300 in 2010."""
        reg.create_scheme(Scheme("TRIAL", frozenset({UnitType.TKA}), borrowing=True, borrow_limit=2000))
        for period in (2010, 2011):
            reg.set_cap("TRIAL", period, 10_000)
        for name in ("op", "op2"):
            reg.open_account(name, scheme="TRIAL")
            reg.allocate(name, 2010, "grandfathering", base=[1000])
            reg.record_emissions(name, 2010, 1300)
        reg.allocate("op", 2011, "grandfathering", base=[1000])
        reg.issue("op2", UnitType.TKA, 1000, scheme="TRIAL", period=2011)  # not an allocation

    def test_borrowing_is_limited_to_a_share_of_the_next_allocation_and_cuts_it(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        self._trial(reg)
        tka = UnitType.TKA
        refused(reg, BorrowingLimitExceeded, r"lends 'op' at most 200 of 2011 for 2010 \(2000 bp of its 2011 "
                r"allocation of 1000\); 0 borrowed, 300 more asked", reg.surrender, "op", 2010, tka, 1300,
                to="ret")
        txid = reg.surrender("op", 2010, tka, 1150, to="ret")
        reg.surrender("op", 2010, tka, 50, to="ret")
        refused(reg, BorrowingLimitExceeded, "200 borrowed, 1 more asked", reg.surrender, "op", 2010, tka, 1,
                to="ret")
        reg = reopen(reg)
        c = reg.compliance("op", 2010)
        assert (c.status, c.surrendered, c.borrowed, c.shortfall) == (ComplianceStatus.B, 1200, 200, 100)
        cuts = [(a.txid, a.period, a.method, a.qty) for a in reg.allocations("op", 2011)]
        assert cuts[1:] == [(txid, 2011, "borrowed", -150), (txid + 1, 2011, "borrowed", -50)]
        assert sum(a.qty for a in reg.allocations("op", 2011)) == 800 == reg.holding("op", tka)
        # units of 2011 that are no allocation: nothing to borrow against until 2011 is allocated
        refused(reg, BorrowingLimitExceeded, "at most 2000 bp of its 2011 allocation, and no 2011 allocation "
                "is on record yet: nothing can be borrowed from 2011 for 2010 until it is allocated; 1 asked",
                reg.surrender, "op2", 2010, tka, 1001, to="ret")
        reg.allocate("op2", 2011, "grandfathering", base=[500])
        txid = reg.surrender("op2", 2010, tka, 1100, to="ret")  # 20% of 500: 100 of 2011
        assert reg.compliance("op2", 2010).borrowed == 100
        assert [(a.method, a.qty) for a in reg.allocations("op2", 2011)] == [("grandfathering", 500),
                                                                             ("borrowed", -100)]
        assert [e.detail for e in reg.journal(txid - 1)] == ["borrowed 100 of 2011"]
        reg.check()

    # -- offset tables, project-type exclusions and linking (issue 14, item 5) ---------

    def _eu2(self, reg: Registry) -> None:
        """Scheme EU2 (EUA; phases 2008 and 2013): CERs up to 10% of verified emissions per
        period, ERUs up to 5% of the allocation over the phase, HFC-23 CERs excluded from 2013.
        ``op`` allocated 1,000 for 2008 and 2009, emitted 1,000 in 2008; it holds 100 HFC-23 CERs
        (serials 1..100) and 300 hydro CERs of 2008 (101..400), and 200 ERUs of 2008."""
        reg.create_scheme(Scheme("CDM", frozenset({UnitType.CER, UnitType.ERU})))
        reg.create_scheme(Scheme("EU2", frozenset({EUA}), frozenset({UnitType.CER, UnitType.ERU}),
                                 phases=frozenset({2008, 2013}),
                                 offset_limits=(OffsetLimit(UnitType.CER, 1000, "emissions"),
                                                OffsetLimit(UnitType.ERU, 500, "allocation", "phase")),
                                 excluded=frozenset({("HFC-23", 2013), ("adipic-N2O", 2013)})))
        for period in (2008, 2009, 2013):
            reg.set_cap("EU2", period, 10_000)
        reg.set_cap("CDM", 2008, 10_000)
        reg.open_account("op", scheme="EU2")
        for period in (2008, 2009):
            reg.allocate("op", period, "benchmark", activity=1000, origin="EU")
        reg.record_emissions("op", 2008, 1000)
        reg.issue("op", UnitType.CER, 100, scheme="CDM", period=2008, origin="CN", project="CDM-1",
                  project_type="HFC-23")
        reg.issue("op", UnitType.CER, 300, scheme="CDM", period=2008, origin="CN", project="CDM-2",
                  project_type="hydro")
        reg.issue("op", UnitType.ERU, 200, scheme="CDM", period=2008, origin="UA", project="JI-1")

    def test_offset_table_per_credit_type_per_period_and_over_the_phase(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        self._eu2(reg)
        cer, eru = UnitType.CER, UnitType.ERU
        said = r"allows 100 CER for 'op' in 2008 \(1000 bp of its emissions of 1000\); 0 used, 101 more asked"
        refused(reg, OffsetLimitExceeded, said, reg.surrender, "op", 2008, cer, 101, to="ret")
        reg.surrender("op", 2008, cer, 100, to="ret")  # the HFC-23 credits still count for 2008
        assert [(b.start, b.end, b.project_type) for b in reg.blocks("ret", cer)] == [(1, 100, "HFC-23")]
        reg.surrender("op", 2008, eru, 60, to="ret")
        reg.record_emissions("op", 2009, 500)
        reg = reopen(reg)
        said = (r"allows 100 ERU for 'op' in the phase from 2008 \(periods on record: 2008, 2009\) \(500 bp of "
                r"its allocation of 2000\); 60 used, 41 more asked")
        refused(reg, OffsetLimitExceeded, said, reg.surrender, "op", 2009, eru, 41, to="ret")
        reg.surrender("op", 2009, eru, 40, to="ret")
        c = reg.compliance("op", 2009)
        assert (c.surrendered, c.offsets) == (40, 40)
        reg.check()

    def test_excluded_project_types_do_not_count_from_their_first_period(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        self._eu2(reg)
        reg = reopen(reg)
        assert [b.project_type for b in reg.blocks("op", UnitType.CER)] == ["HFC-23", "hydro"]
        reg.record_emissions("op", 2013, 100)
        said = r"CN 1..100 \(CER\) do not count for 'EU2' 2013: project type HFC-23, which 'EU2' excludes"
        refused(reg, NotEligible, said, reg.surrender, "op", 2013, UnitType.CER, 10, to="ret",
                serials=Serials("CN", 1, 10))
        reg.surrender("op", 2013, UnitType.CER, 10, to="ret")  # the oldest eligible: hydro, not HFC-23
        assert [(b.start, b.end, b.project_type) for b in reg.blocks("ret")] == [(101, 110, "hydro")]
        reg.check()

    def _linked(self, reg: Registry) -> None:
        """CA and XX issue CCA; QC links to CA (not XX), taking at most 50% of an obligation from it.
        ``qc-op`` holds 80 CCA of CA, 50 of QC and 10 of XX, all 2013, and emitted 100."""
        reg.create_scheme(Scheme("CA", frozenset({UnitType.CCA})))
        reg.create_scheme(Scheme("XX", frozenset({UnitType.CCA})))
        reg.create_scheme(Scheme("QC", frozenset({UnitType.CCA}), links=frozenset({"CA"}), import_limit=5000))
        reg.open_account("qc-op", scheme="QC")
        for scheme, qty in (("CA", 80), ("QC", 50), ("XX", 10)):
            reg.set_cap(scheme, 2013, 1000)
            reg.issue("qc-op", UnitType.CCA, qty, scheme=scheme, period=2013, origin=scheme)
        reg.record_emissions("qc-op", 2013, 100)

    def test_linked_schemes_allowances_count_within_the_import_limit(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        self._linked(reg)
        cca = UnitType.CCA
        said = (r"takes at most 50 allowances of linked schemes from 'qc-op' in 2013 \(5000 bp of its "
                r"obligation of 100\); 0 used, 80 more asked")
        refused(reg, OffsetLimitExceeded, said, reg.surrender, "qc-op", 2013, cca, 100, to="ret")
        refused(reg, NotEligible, "scheme 'XX', whose allowances 'QC' does not accept", reg.surrender, "qc-op",
                2013, cca, 10, to="ret", serials=Serials("XX", 1, 10))
        reg.surrender("qc-op", 2013, cca, 50, to="ret", serials=Serials("QC", 1, 50))
        reg = reopen(reg)
        reg.surrender("qc-op", 2013, cca, 50, to="ret")
        c = reg.compliance("qc-op", 2013)
        assert (c.status, c.surrendered) == (ComplianceStatus.A, 100)
        assert sorted((b.scheme, b.qty) for b in reg.blocks("ret")) == [("CA", 50), ("QC", 50)]
        assert reg.holding("qc-op", cca) == 40
        refused(reg, UnitNotAllowed, "'JVETS' does not accept CCA", reg.surrender, "a", 2013, cca, 1, to="ret")
        reg.check()

    @pytest.mark.parametrize(("fields", "exc", "match"), [
        ({"offset_limits": (OffsetLimit(UnitType.CER, 100),)}, OperationRefused, "does not accept as a credit"),
        ({"offset_limits": (OffsetLimit(JVER, 10_001),)}, InvalidQuantity, "bp must be basis points"),
        ({"offset_limits": (OffsetLimit(JVER, 100, "sales"),)}, OperationRefused, "base is emissions"),  # type: ignore[arg-type]
        ({"offset_limits": (OffsetLimit(JVER, 100, "emissions", "year"),)}, OperationRefused, "over"),  # type: ignore[arg-type]
        ({"offset_limits": ((JVER, 100),)}, OperationRefused, "must be an OffsetLimit"),
        ({"offset_limits": "JVER"}, OperationRefused, "must be a list"),
        ({"excluded": frozenset({("HFC-23", -1)})}, OperationRefused, "period must be"),
        ({"excluded": frozenset({("", 2013)})}, OperationRefused, "project type"),
        ({"excluded": frozenset({"HFC-23"})}, OperationRefused, "an exclusion is"),
        ({"links": frozenset({"NEW"})}, OperationRefused, "cannot link to itself"),
        ({"links": frozenset({""})}, OperationRefused, "linked scheme"),
        ({"borrow_limit": -1}, InvalidQuantity, "borrow_limit must be basis points"),
        ({"import_limit": 1.5}, InvalidQuantity, "import_limit must be basis points"),
    ])
    def test_bad_offset_table_exclusions_or_links_refused(self, reg: Registry, fields: dict[str, Any],
                                                          exc: type[RegistryError], match: str) -> None:
        refused(reg, exc, match, reg.create_scheme, Scheme("NEW", frozenset({UnitType.UKA}), frozenset({JVER}),
                                                           **fields))

    @pytest.mark.parametrize(("unit", "ptype", "match"), [
        (JPA, "HFC-23", "JPA units come from no project"), (JVER, "", "project type"),
        (JVER, 7, "project type")])
    def test_bad_project_type_refused(self, reg: Registry, unit: UnitType, ptype: Any, match: str) -> None:
        refused(reg, OperationRefused, match, reg.issue, "a", unit, 5, scheme="JVETS", period=2010,
                project="JV-9", project_type=ptype)

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                     HealthCheck.too_slow, HealthCheck.differing_executors])
    @given(data=st.data())
    def test_limits_exclusions_and_links_hold_whatever_the_sequence(self, make_registry: Factory,
                                                                    data: st.DataObject) -> None:
        """Across allocations, issues and surrenders (oldest eligible, by vintage, by serials),
        every unit surrendered for scheme LINKED counts under the rules written out here:
        allowances of LINKED or of HOME (which it links to), never of OTHER; an HFC-23 credit
        never for 2011 or later; a later vintage only LINKED's own next one, and borrowed units
        within 20% of the next period's allocation; CERs within 10% of verified emissions;
        HOME's within half the obligation. Each serial counts once; refusals change nothing."""
        with closing(world(make_registry())) as reg:  # one connection per example, not 50
            uka, cer = UnitType.UKA, UnitType.CER
            reg.create_scheme(Scheme("HOME", frozenset({uka})))
            reg.create_scheme(Scheme("OTHER", frozenset({uka})))
            reg.create_scheme(Scheme("CDM", frozenset({cer})))
            reg.create_scheme(Scheme("LINKED", frozenset({uka}), frozenset({cer}), borrowing=True,
                                     borrow_limit=2000, offset_limits=(OffsetLimit(cer, 1000),),
                                     excluded=frozenset({("HFC-23", 2011)}), links=frozenset({"HOME"}),
                                     import_limit=5000))
            for scheme in ("HOME", "OTHER", "CDM", "LINKED"):
                for period in (2010, 2011, 2012):
                    reg.set_cap(scheme, period, 100_000)
            reg.open_account("op", scheme="LINKED")
            for period in (2010, 2011):
                reg.record_emissions("op", period, 200)
            # a start that lets many surrenders through: 2011's allocation, some of each kind of unit
            reg.allocate("op", 2011, "benchmark", activity=100)
            for scheme in ("HOME", "OTHER", "LINKED"):
                reg.issue("op", uka, 40, scheme=scheme, period=2010, origin=scheme)
            reg.issue("op", uka, 30, scheme="LINKED", period=2011, origin="LINKED")
            for kind in ("HFC-23", "hydro"):
                reg.issue("op", cer, 15, scheme="CDM", period=2010, origin="CN", project="P", project_type=kind)
            periods = st.sampled_from((2010, 2011, 2012))
            surrenders = st.tuples(st.just("surrender"), st.sampled_from((2010, 2011)),
                                   st.sampled_from((uka, cer)), st.integers(1, 25),
                                   st.sampled_from((None, 2010, 2011, 2011, 2012, "serials")))
            ops = st.one_of(
                surrenders, surrenders,
                st.tuples(st.just("allocate"), periods, st.integers(1, 150)),
                st.tuples(st.just("issue"), st.sampled_from(("HOME", "OTHER", "LINKED")), periods,
                          st.integers(1, 60)),
                st.tuples(st.just("credit"), st.sampled_from(("HFC-23", "hydro")), st.integers(1, 40)),
            )
            allocated: dict[int, int] = {2011: 100}
            borrowed: dict[int, int] = {}
            credits: dict[int, int] = {}
            imported: dict[int, int] = {}
            seen: set[tuple[str, int]] = set()
            for op in data.draw(st.lists(ops, min_size=3, max_size=15)):
                before = fingerprint(reg)
                ret_before = {(b.origin, b.start) for b in reg.blocks("ret")}
                try:
                    if op[0] == "allocate":
                        reg.allocate("op", op[1], "benchmark", activity=op[2])
                        allocated[op[1]] = allocated.get(op[1], 0) + op[2]
                    elif op[0] == "issue":
                        reg.issue("op", uka, op[3], scheme=op[1], period=op[2], origin=op[1])
                    elif op[0] == "credit":
                        reg.issue("op", cer, op[2], scheme="CDM", period=2010, origin="CN", project="P",
                                  project_type=op[1])
                    else:
                        _, period, unit, qty, vintage = op
                        obligation = reg.compliance("op", period).obligation
                        serials = None
                        if vintage == "serials":
                            vintage = None
                            held = [b for b in reg.blocks("op", unit) if b.state is BlockState.ACTIVE]
                            if held:
                                b = data.draw(st.sampled_from(held))
                                qty = min(qty, b.qty)
                                serials = Serials(b.origin, b.start, b.start + qty - 1)
                        reg.surrender("op", period, unit, qty, to="ret", vintage=vintage, serials=serials)
                        new = [b for b in reg.blocks("ret") if (b.origin, b.start) not in ret_before]
                        assert sum(b.qty for b in new) == qty
                        for b in new:
                            assert vintage is None or b.period == vintage
                            if b.unit is cer:
                                assert b.project_type != "HFC-23" or period < 2011
                                credits[period] = credits.get(period, 0) + b.qty
                            else:
                                assert b.scheme in ("LINKED", "HOME")
                                assert b.period <= period or (b.scheme == "LINKED" and b.period == period + 1)
                                if b.period > period:
                                    borrowed[period] = borrowed.get(period, 0) + b.qty
                                if b.scheme == "HOME":
                                    imported[period] = imported.get(period, 0) + b.qty
                            for serial in range(b.start, b.end + 1):
                                assert (b.origin, serial) not in seen
                                seen.add((b.origin, serial))
                        assert borrowed.get(period, 0) <= 2000 * allocated.get(period + 1, 0) // 10_000
                        assert credits.get(period, 0) <= 1000 * 200 // 10_000
                        if any(b.scheme == "HOME" for b in new):
                            assert imported[period] <= 5000 * obligation // 10_000
                except RegistryError:
                    assert fingerprint(reg) == before
                reg.check()
            for period in (2010, 2011):
                assert reg.compliance("op", period).borrowed == borrowed.get(period, 0)
    # -- voluntary cancellation with a certificate (issue 15, item 5) ------------------

    def test_cancellation_certificate_names_serials_beneficiary_and_purpose(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        txid = reg.retire("a", JVER, 300, to="can", beneficiary="LUMINE", purpose="staff commuting FY2010")
        named = reg.retire("a", JVER, 51, to="can", serials=Serials("JP", 1400, 1450), purpose="new year cards")
        plain = reg.retire("a", JPA, 10, to="can")
        reg = reopen(reg)
        assert reg.certificate(txid) == Certificate(txid, "a", "can", JVER, 300, [Serials("JP", 1001, 1300)],
                                                    "LUMINE", "staff commuting FY2010", 0, None)
        cert = reg.certificate(named)
        assert cert is not None and (cert.serials, cert.beneficiary, cert.purpose) == (
            [Serials("JP", 1400, 1450)], None, "new year cards")
        cert = reg.certificate(plain)
        assert cert is not None and (cert.qty, cert.serials) == (10, [Serials("JP", 1, 10)])
        assert [e.detail for e in reg.journal(txid - 1) if e.kind == "cancel"] == [
            "JP 1001-1300", "JP 1400-1450", "JP 1-10"]
        assert reg.certificate(txid - 1) is None and reg.certificate("x") is None  # type: ignore[arg-type]
        reg.check()

    def test_cancellation_certificate_records_actor_and_day(self, reg: Registry) -> None:
        reg.start_day(0, 3)
        with reg.acting("lumine-rep"):
            txid = reg.retire("a", JVER, 5, to="can", beneficiary="LUMINE")
        cert = reg.certificate(txid)
        assert cert is not None and (cert.day, cert.actor) == (3, "lumine-rep")
        (entry,) = [e for e in reg.journal(txid - 1)]
        assert (entry.kind, entry.actor, entry.day) == ("cancel", "lumine-rep", 3)

    def test_bad_cancellation_changes_nothing(self, reg: Registry) -> None:
        refused(reg, OperationRefused, "retirement takes no beneficiary", reg.retire, "a", JVER, 5, to="ret",
                beneficiary="LUMINE")
        refused(reg, OperationRefused, "purpose", reg.retire, "a", JVER, 5, to="can", purpose="")
        refused(reg, OperationRefused, "beneficiary", reg.retire, "a", JVER, 5, to="can", beneficiary="x\x00")
        refused(reg, OperationRefused, "beneficiary", reg.retire, "a", JVER, 5, to="can", beneficiary=7)
        refused(reg, InsufficientUnits, "holds 500", reg.retire, "a", JVER, 501, to="can", beneficiary="LUMINE")

    # -- access and transfer controls (issue 15, item 1) ---------------------------------

    def test_pending_transfer_survives_a_reopen_and_executes_on_its_day(
            self, reg: Registry, reopen: Callable[[Registry], Registry]) -> None:
        reg.add_administrator("admin")
        with reg.acting("admin"):
            reg.add_representative("a", "alice")
            reg.set_controls("a", Controls(outside_delay=2))
        with reg.acting("alice"):
            pid = reg.transfer("a", "b", JPA, 100)
        reg = reopen(reg)
        waiting = PendingTransfer(pid, "a", "b", JPA, 100, "alice", None, "delayed", 2, True)
        assert reg.pending_transfer(pid) == waiting
        assert (reg.holding("a", JPA), reg.available("a", JPA)) == (1000, 900)
        assert reg.start_day(0, 1) == []
        (done,) = reg.start_day(1, 2)
        assert (done.state, done.done_day, reg.holding("b", JPA)) == ("executed", 2, 100)
        reg = reopen(reg)
        assert reg.start_day(0, 2) == [done]  # read back, not done twice
        assert (reg.holding("a", JPA), reg.available("a", JPA)) == (900, 900)
        assert [(e.kind, e.actor, e.day) for e in reg.journal(pid - 1)] == [
            ("transfer_proposed", "alice", 0), ("transfer", "alice", 2)]
        reg.check()

    def test_refused_control_acts_change_nothing(self, reg: Registry) -> None:
        reg.add_administrator("admin")
        with reg.acting("admin"):
            reg.add_representative("a", "alice")
            reg.add_representative("a", "bob")
            reg.set_controls("a", Controls(four_eyes=True))
        refused(reg, NotAuthorised, "not a representative", reg.transfer, "a", "b", JPA, 1)
        refused(reg, NotAuthorised, "not an administrator", reg.add_representative, "a", "mallory")
        refused(reg, NotAuthorised, "not an administrator", reg.add_administrator, "mallory")
        with reg.acting("alice"):
            pid = reg.transfer("a", "b", JPA, 1)
            refused(reg, NotAuthorised, "second representative", reg.approve_transfer, pid)
            refused(reg, OperationRefused, "cannot name serials", reg.transfer, "a", "b", JPA, 1,
                    serials=Serials("JP", 1, 1))
            refused(reg, InsufficientUnits, "999 unreserved", reg.transfer, "a", "b", JPA, 1000)
        with reg.acting("admin"):
            refused(reg, OperationRefused, "controls must be", reg.set_controls, "a", "x")
            refused(reg, OperationRefused, "four_eyes", reg.set_controls, "a", Controls(four_eyes=1))  # type: ignore[arg-type]
            refused(reg, InvalidQuantity, "limit", reg.set_controls, "a", Controls(limit=-5))
            refused(reg, UnknownAccount, "does not exist", reg.set_controls, "zz", Controls())
        with reg.acting("bob"):
            refused(reg, UnknownTransfer, "does not exist", reg.approve_transfer, pid + 100)
            reg.cancel_transfer(pid)
            refused(reg, UnknownTransfer, "is cancelled", reg.cancel_transfer, pid)
        refused(reg, OperationRefused, "business day", reg.start_day, 0, -1)
        refused(reg, OperationRefused, "actor", lambda: reg.acting("").__enter__())

    # -- random sequences ----------------------------------------------------------

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                     HealthCheck.too_slow, HealthCheck.differing_executors])
    @given(data=st.data())
    def test_random_operations_conserve_units(self, make_registry: Factory, data: st.DataObject) -> None:
        with closing(world(make_registry())) as reg:  # one connection per example, not 50
            names = st.sampled_from((*ACCOUNTS, "zz"))
            units = st.sampled_from(UNITS)
            qtys = st.one_of(st.integers(-5, 1200), st.sampled_from([0.5, 2.0, True]))
            ops = st.one_of(
                st.tuples(st.just("transfer"), names, names, units, qtys),
                st.tuples(st.just("settle"), st.integers(0, 30), names, names, units, qtys,
                          st.integers(-1, 10**6)),
                st.tuples(st.just("issue"), names, units, qtys),
                st.tuples(st.just("retire"), names, st.sampled_from(["ret", "can", "b"]), units, qtys),
                st.tuples(st.just("surrender"), names, units, qtys),
                st.tuples(st.just("reserve"), st.integers(0, 5), names, units, qtys),
                st.tuples(st.just("release"), st.integers(0, 5)),
                st.tuples(st.just("expire"), units, st.sampled_from([2010, 2011])),
                st.tuples(st.just("carry"), names, units),
                st.tuples(st.just("deposit"), names, qtys),
                st.tuples(st.just("status"), names, st.sampled_from(list(AccountStatus))),
                st.tuples(st.just("allocate"), names, st.sampled_from([2010, 2011]),
                          st.sampled_from(ALLOCATION_METHODS), qtys),
                st.tuples(st.just("true_up"), names, qtys, st.sampled_from(["iss", "b", None])),
                st.tuples(st.just("return"), names, st.sampled_from([2010, 2011]), qtys,
                          st.sampled_from(["iss", "b"])),
                st.tuples(st.just("emissions"), names, st.sampled_from([2010, 2011]), qtys),
                st.tuples(st.just("deadline"), st.integers(0, 3)),
                st.tuples(st.just("day"), st.integers(0, 5)),
                st.tuples(st.just("serials"), names, st.sampled_from(["b", "c", "can", "ret"]), units,
                          st.integers(1, 1600), st.integers(0, 60)),
            )
            for op in data.draw(st.lists(ops, max_size=25)):
                before = fingerprint(reg)
                try:
                    with reg.transaction():
                        self._apply(reg, op)
                except RegistryError:
                    assert fingerprint(reg) == before
                reg.check()
                for a in ACCOUNTS:
                    for u in UNITS:
                        assert 0 <= reg.available(a, u) <= reg.holding(a, u)
                    for c in CURRENCIES:
                        assert 0 <= reg.available_cash(a, c) <= reg.balance(a, c)
                active = sum(b.qty for b in reg.blocks() if b.state is BlockState.ACTIVE)
                assert active == sum(reg.holding(a, u) for a in ACCOUNTS for u in UNITS)
            # the audit trail's model of the blocks, rebuilt from the journal, is the registry's
            assert active_blocks(reg.journal(), reg._ledgers.moves) == sorted(  # type: ignore[attr-defined]
                (b.origin, b.start, b.end, b.holder, b.state) for b in reg.blocks())

    @staticmethod
    def _apply(reg: Registry, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "transfer":
            reg.transfer(op[1], op[2], op[3], op[4])
        elif kind == "settle":
            reg.settle(op[1], seller=op[2], buyer=op[3], unit=op[4], qty=op[5], currency="JPY", amount=op[6])
        elif kind == "issue":
            reg.issue(op[1], op[2], op[3], scheme="EUETS" if op[2] is EUA else "JVETS", period=2010,
                      project="P1")
        elif kind == "retire":
            reg.retire(op[1], op[3], op[4], to=op[2])
        elif kind == "serials":
            named = Serials("JP", op[4], op[4] + op[5])
            if op[2] in ("can", "ret"):
                reg.retire(op[1], op[3], op[5] + 1, to=op[2], serials=named)
            else:
                reg.transfer(op[1], op[2], op[3], op[5] + 1, serials=named)
        elif kind == "surrender":
            reg.surrender(op[1], 2010, op[2], op[3], to="ret")
        elif kind == "reserve":
            reg.reserve(op[1], op[2], op[3], op[4])
        elif kind == "release":
            reg.release(op[1])
        elif kind == "expire":
            reg.expire(op[1], op[2])
        elif kind == "carry":
            reg.carry_over(op[1], op[2], 2010)
        elif kind == "deposit":
            reg.deposit(op[1], "JPY", op[2])
        elif kind == "allocate":
            if op[3] == "grandfathering":
                reg.allocate(op[1], op[2], op[3], base=[op[4], 100], reduction=5)
            else:
                reg.allocate(op[1], op[2], op[3], activity=op[4], rate=3, per=4)
        elif kind == "true_up":
            reg.true_up(op[1], 2010, op[2], to=op[3])
        elif kind == "return":
            reg.return_allocation(op[1], op[2], op[3], to=op[4])
        elif kind == "emissions":
            reg.record_emissions(op[1], op[2], op[3])
        elif kind == "deadline":
            reg.set_deadline("JVETS", 2010, op[1], penalty=100, currency="JPY", report=op[1])
        elif kind == "day":
            reg.pass_days(op[1], op[1] + 1)
        else:
            reg.set_status(op[1], op[2])
