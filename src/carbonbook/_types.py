"""Vocabulary shared by every layer: sides, order types, reasons and integer bounds.

Prices are integers in the instrument's minor currency unit per tonne (yen, euro
cents); quantities are integers in tonnes of CO2-equivalent. Every enum is a
``StrEnum`` whose value is the spelling used in the order log.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

OrderId = Annotated[int, Meta(ge=0, le=INT64_MAX)]
"""An order id: a non-negative integer below 2**63."""

Int64 = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
"""A price, quantity or timestamp: any integer that fits in 64 bits (range checks are the engine's)."""

NAME_MAX = 128
"""The most characters a name (an account, symbol, scheme, currency, ...) may have."""
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode's control characters (category Cc)

Name = Annotated[str, Meta(min_length=1, max_length=NAME_MAX)]
"""An account, symbol or other name: 1 to :data:`NAME_MAX` characters, none of them a control
character (U+0000-U+001F, U+007F-U+009F). Decoders check the length; :func:`name_fault` is the
whole rule (:mod:`carbonbook.codec` applies it to every decoded record that could break it)."""


def name_fault(value: object) -> str | None:
    r"""Why ``value`` is not a valid name, or None; the text states the rule and its limit.

    >>> name_fault("tepco-01") is None
    True
    >>> name_fault("x" * 129)
    'has 129 characters: a name is 1 to 128 characters, none of them a control character'
    >>> name_fault("a\x00b")
    'holds control character U+0000: a name is 1 to 128 characters, none of them a control character'
    """
    if value.__class__ is not str or not value:
        fault = "is not a non-empty string"
    elif len(value) > NAME_MAX:
        fault = f"has {len(value):,} characters"
    elif value.isprintable() or (found := _CONTROL.search(value)) is None:
        return None
    else:
        fault = f"holds control character U+{ord(found.group()):04X}"
    return f"{fault}: a name is 1 to {NAME_MAX} characters, none of them a control character"


def is_order_id(value: object) -> bool:
    """Is ``value`` a valid order id (an int, not a bool, in 0..2**63-1)?"""
    return type(value) is int and 0 <= value <= INT64_MAX


def is_int64(value: object) -> bool:
    """Is ``value`` an int (not a bool) that fits in 64 bits?"""
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


class Side(StrEnum):
    """The side of an order."""

    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """A limit order has a price; a market order takes what the book offers and never rests."""

    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(StrEnum):
    """GTC rests until cancelled; IOC cancels what it cannot fill at once; FOK fills entirely or not at all."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class SelfTradePrevention(StrEnum):
    """What happens when an incoming order meets a resting order of the same account."""

    CANCEL_INCOMING = "cancel_incoming"
    CANCEL_RESTING = "cancel_resting"
    CANCEL_BOTH = "cancel_both"


class UnitType(StrEnum):
    """Carbon units an instrument can trade (one tonne of CO2-equivalent each)."""

    # allowances
    JPA = "JPA"  # Japan JVETS allowance
    EUA = "EUA"  # EU ETS allowance
    UKA = "UKA"  # UK ETS allowance
    NZU = "NZU"  # New Zealand unit
    RGA = "RGA"  # RGGI CO2 allowance
    CCA = "CCA"  # California carbon allowance
    TKA = "TKA"  # Tokyo cap-and-trade excess reduction
    # Kyoto units
    AAU = "AAU"
    RMU = "RMU"
    ERU = "ERU"
    CER = "CER"
    TCER = "tCER"
    LCER = "lCER"
    # Japanese credits
    JVER = "JVER"  # J-VER offset credit
    JCR = "JCR"  # domestic credit / J-Credit
    GXC = "GXC"  # GX League excess-reduction credit


class OffsetLimit(msgspec.Struct, frozen=True, gc=False):
    """A row of a compliance scheme's offset table (``registry.base.Scheme.offset_limits``):
    credits of type ``unit`` surrendered by an account may cover at most ``bp`` basis points
    (1/100 of a percent) of its ``base`` (``emissions``: its verified emissions;
    ``obligation``: its obligation, carried shortfall included; ``allocation``: its free
    allocation on record), per compliance period (``over`` ``period``) or summed over the
    periods of the phase (``over`` ``phase``: units and base both counted over the phase)."""

    unit: UnitType
    bp: int
    base: Literal["emissions", "obligation", "allocation"] = "emissions"
    over: Literal["period", "phase"] = "period"


class RejectReason(StrEnum):
    """Stable codes of a ``rejected`` event."""

    MALFORMED = "malformed"
    UNKNOWN_SYMBOL = "unknown_symbol"
    DUPLICATE_SYMBOL = "duplicate_symbol"
    BAD_PRICE = "bad_price"
    BAD_QTY = "bad_qty"
    DUPLICATE_ID = "duplicate_id"
    UNKNOWN_ORDER = "unknown_order"
    POST_ONLY = "post_only"
    PHASE = "phase"
    PRICE_BAND = "price_band"
    INSUFFICIENT_UNITS = "insufficient_units"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    NO_REGISTRY = "no_registry"
    UNKNOWN_AUCTION = "unknown_auction"
    AUCTION_CLOSED = "auction_closed"
    DUPLICATE_AUCTION = "duplicate_auction"


class CancelReason(StrEnum):
    """Why a ``cancelled`` event took quantity off the book or left it unexecuted."""

    USER = "user"
    IOC = "ioc"
    FOK = "fok"
    MARKET = "market"
    SELF_TRADE = "self_trade"
    UNITS_EXPIRED = "units_expired"  # a venue's resting sell whose units hold an expiry left short


class Phase(StrEnum):
    """The trading phase of an instrument.

    ``continuous`` matches each order on arrival; ``call`` collects orders without
    matching and uncrosses them at one price when it ends; ``closed`` and ``halted``
    refuse new orders and modifies but accept cancels.
    """

    CLOSED = "closed"
    CALL = "call"
    CONTINUOUS = "continuous"
    HALTED = "halted"
