"""The bench workloads moved into the package: see :mod:`carbonbook.workload`.

Kept so that ``import workloads`` from ``bench/`` (and scripts written against it) still work.
"""

from __future__ import annotations

from carbonbook.workload import (
    ACCOUNTS,
    BAND,
    CANCEL_SHARE,
    CROSS,
    DEEP_LEVELS,
    DRIFT,
    LIMIT_SHARE,
    MARKET_SHARE,
    MAX_QTY,
    MID,
    SYMBOL,
    Live,
    busy,
    busy_with_stats,
    deep,
    deep_resting,
    small_book,
)

__all__ = [
    "ACCOUNTS",
    "BAND",
    "CANCEL_SHARE",
    "CROSS",
    "DEEP_LEVELS",
    "DRIFT",
    "LIMIT_SHARE",
    "MARKET_SHARE",
    "MAX_QTY",
    "MID",
    "SYMBOL",
    "Live",
    "busy",
    "busy_with_stats",
    "deep",
    "deep_resting",
    "small_book",
]
