"""carbonbook's exceptions. Bad input is never an exception: it is a ``rejected`` event."""

from __future__ import annotations


class CarbonbookError(Exception):
    """Root of carbonbook's exceptions."""


class BookIntegrityError(CarbonbookError, AssertionError):
    """Raised when a book invariant is broken: the book can no longer be trusted."""


class RegistryError(CarbonbookError):
    """Root of the registry's refusals and failures. ``code`` is a stable snake_case reason."""

    code = "registry_error"


class InvalidQuantity(RegistryError, ValueError):
    """Raised when a quantity or amount is not a positive integer (a float, a bool, zero, negative, too big)."""

    code = "bad_qty"


class UnknownAccount(RegistryError, LookupError):
    """Raised when an account does not exist."""

    code = "unknown_account"


class DuplicateAccount(RegistryError):
    """Raised when an account id is already taken."""

    code = "duplicate_account"


class AccountBlocked(RegistryError):
    """Raised when a blocked account would send or receive."""

    code = "account_blocked"


class AccountClosed(RegistryError):
    """Raised when a closed account would send, receive or change status (closing is final)."""

    code = "account_closed"


class SameAccount(RegistryError):
    """Raised when the sending and receiving accounts are the same."""

    code = "same_account"


class UnitNotAllowed(RegistryError):
    """Raised when an account may not hold (or a scheme may not use) a unit type, or an account kind
    may not take part in an operation."""

    code = "unit_not_allowed"


class InsufficientUnits(RegistryError):
    """Raised when an account does not hold enough active, unreserved units (or the named serials)."""

    code = "insufficient_units"


class TerminalUnits(InsufficientUnits):
    """Raised when named serials are surrendered, retired, cancelled or expired: they never move again."""

    code = "terminal_units"


class InsufficientFunds(RegistryError):
    """Raised when an account does not have enough unreserved cash."""

    code = "insufficient_funds"


class DuplicateSerial(RegistryError):
    """Raised when an issuance would reuse a serial number."""

    code = "duplicate_serial"


class CapExceeded(RegistryError):
    """Raised when an issuance would exceed a scheme's cap for a period (or no cap is set)."""

    code = "cap_exceeded"


class UnknownScheme(RegistryError, LookupError):
    """Raised when a scheme does not exist."""

    code = "unknown_scheme"


class DuplicateScheme(RegistryError):
    """Raised when a scheme name is already taken."""

    code = "duplicate_scheme"


class OffsetLimitExceeded(RegistryError):
    """Raised when a surrender would use more credits than the scheme's offset limit allows (the
    pooled ``offset_percent`` or a row of its offset table), or more allowances of linked schemes
    than its import limit."""

    code = "offset_limit"


class BorrowingLimitExceeded(RegistryError):
    """Raised when a surrender would borrow more of the next period's units than the scheme's
    borrowing limit (a share of the account's allocation for that period) allows."""

    code = "borrowing_limit"


class NotEligible(RegistryError):
    """Raised when a surrender asks for units the account holds but that the scheme's rules do not
    accept for the period (issuing scheme, vintage and banking, expiry); ``detail`` names the
    unit, the rule and the period."""

    code = "not_eligible"


class DeadlinePassed(RegistryError):
    """Raised when a surrender or emissions for a period come after its scheme's surrender
    deadline has passed: the period's compliance is final (DOMAIN.md 2: the shortfall is
    surrendered with the next period's units, so surrender against the next period)."""

    code = "deadline_passed"


class NotAuthorised(RegistryError):
    """Raised when the actor of a registry command may not do it: not a representative of the
    account it acts for, not an administrator, or the proposer approving their own proposal."""

    code = "not_authorised"


class NotTrusted(RegistryError):
    """Raised when a transfer goes to an account outside the sender's trusted account list and
    the sender's controls bar such transfers (operator accounts, DOMAIN.md 6)."""

    code = "not_trusted"


class TransferLimitExceeded(RegistryError):
    """Raised when a transfer outside the sender's trusted account list is above its per-transfer limit."""

    code = "limit_exceeded"


class UnknownTransfer(RegistryError, LookupError):
    """Raised when a pending transfer does not exist or is no longer pending (executed, cancelled, failed)."""

    code = "unknown_transfer"


class UnknownProject(RegistryError, LookupError):
    """Raised when a project is not registered (or not under the programme named)."""

    code = "unknown_project"


class UnlistedMethodology(RegistryError):
    """Raised when a project's methodology is not on its crediting programme's list (J-VER's positive list)."""

    code = "unlisted_methodology"


class ExceedsVerified(RegistryError):
    """Raised when credits would exceed a monitoring period's verified reductions (or it is not
    verified), or a verification would exceed the reductions reported."""

    code = "exceeds_verified"


class AlreadyIssued(RegistryError):
    """Raised when credits were issued for a project's monitoring period already."""

    code = "already_issued"


class NotAccepted(RegistryError):
    """Raised when a linked registry does not accept units: no scheme there takes the unit type,
    or the link does not cover the scheme that issued them."""

    code = "not_accepted"


class ReserveBreached(RegistryError):
    """Raised when an external transfer would take a registry below its commitment period reserve."""

    code = "commitment_period_reserve"


class OperationRefused(RegistryError):
    """Raised when an operation is refused for a rule not covered by a narrower type
    (banking not allowed, missing project id, emissions already recorded, ...)."""

    code = "refused"


class DuplicateHold(RegistryError):
    """Raised when a hold id is already in use."""

    code = "duplicate_hold"


class UnknownHold(RegistryError, LookupError):
    """Raised when a hold id does not exist."""

    code = "unknown_hold"


class DuplicateTrade(RegistryError):
    """Raised when a trade id was already settled (or failed) with different terms."""

    code = "duplicate_trade"


class UnknownTrade(RegistryError, LookupError):
    """Raised when settling a trade id that was never received."""

    code = "unknown_trade"


class RegistryUnavailable(RegistryError):
    """Raised when the database cannot be reached or a driver call fails (the cause is chained)."""

    code = "unavailable"


class ConcurrentModification(RegistryError):
    """Raised when another writer changed the database since this registry loaded it; call ``reload()``."""

    code = "concurrent_modification"


class RetriesExhausted(ConcurrentModification):
    """Raised by :func:`carbonbook.registry.writers.retrying` (and ``take_turn``, a shared venue's)
    when other writers changed or held the registry under every one of its attempts."""

    code = "retries_exhausted"


class RegistryInUse(RegistryError):
    """Raised by ``claim_writer()`` when another registry is the writer of the same store, ``where``."""

    code = "in_use"

    def __init__(self, where: str) -> None:
        super().__init__(f"{where} is in use by another writer, and a registry takes one writer at a time: "
                         "wait until that one is done (or stop it), then run again")


class RegistryIntegrityError(RegistryError, AssertionError):
    """Raised by ``check()`` when a registry invariant is broken: the registry can no longer be trusted."""

    code = "integrity"


class PersistenceError(CarbonbookError):
    """Root of the journal's and snapshots' failures: what is on disk cannot be used as it is."""


class SnapshotError(PersistenceError, ValueError):
    """Raised when a snapshot file or an exported state is invalid (bad magic, checksum, or contents)."""


class JournalCorrupted(PersistenceError):
    """Raised when a journal record before the last one is damaged; ``offset`` is its byte offset."""

    def __init__(self, path: str, offset: int, detail: str) -> None:
        super().__init__(f"{path}: corrupted journal record at byte offset {offset}: {detail}")
        self.path = path
        self.offset = offset
        self.detail = detail


class JournalMismatch(PersistenceError):
    """Raised when a journal does not continue its snapshot or engine (a record's ``seq`` is not the
    engine's next), or a journal directory holds a journal of another format."""


class TornRecordWarning(UserWarning):
    """Warned when a journal's last record is incomplete or damaged (the writer was killed mid-write,
    or power was lost): the record is dropped and the journal truncated before it."""
