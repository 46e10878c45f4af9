"""A progress line for long replays: records, rate and, when the input's size is known, ETA.

``carbonbook replay`` hands :meth:`Progress.update` to :func:`carbonbook.operations.replay.replay`,
which calls it once per batch (never per record) with the records and bytes read so
far. The line is redrawn in place (carriage return) at most once per ``interval``
seconds and only after ``delay`` seconds, so a short replay prints nothing;
:meth:`Progress.close` erases it, leaving standard error clean for the summary.

The clock is read here only to pace and annotate the display: nothing flows back into
the replay, whose events stay byte-identical with or without a progress line.

>>> import io
>>> ticks = iter([0.0, 1.0, 1.1, 2.0])
>>> out = io.StringIO()
>>> p = Progress(out, total_bytes=1000, clock=lambda: next(ticks))
>>> p.update(500, 250)   # 1.0 s: drawn
>>> p.update(600, 300)   # 1.1 s: too soon after the last draw
>>> p.update(2000, 1000) # 2.0 s
>>> lines = out.getvalue().split("\\r")
>>> lines[1].rstrip("\\x1b[K")
'replay  [#####...............]  25%        500 records        500 rec/s  ETA 0:03'
>>> lines[2].rstrip("\\x1b[K")
'replay  [####################] 100%      2,000 records      1,000 rec/s  ETA 0:00'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

_CLEAR = "\x1b[K"  # erase to the end of the line
_WIDTH = 20  # characters of the bar


class Progress:
    """A self-pacing progress line on ``stream`` (a terminal).

    ``total_bytes`` is the input's size when known (a regular file); without it the line
    shows records, bytes read and the rate but no bar and no ETA.
    """

    def __init__(
        self,
        stream: TextIO,
        total_bytes: int | None = None,
        *,
        label: str = "replay",
        interval: float = 0.25,
        delay: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._total = total_bytes if total_bytes else None
        self._label = label
        self._interval = interval
        self._clock = clock
        self._start = clock()
        self._next = self._start + delay
        self._drawn = False

    def update(self, records: int, consumed: int) -> None:
        """Note that ``records`` records (``consumed`` bytes) have been read; redraw if due."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval
        self._stream.write("\r" + self.line(records, consumed, now - self._start) + _CLEAR)
        self._stream.flush()
        self._drawn = True

    def line(self, records: int, consumed: int, elapsed: float) -> str:
        """The progress line for ``records`` records and ``consumed`` bytes after ``elapsed`` s."""
        rate = records / elapsed if elapsed > 0 else 0.0
        parts = [self._label]
        total = self._total
        if total is not None:
            done = min(consumed, total)
            filled = done * _WIDTH // total
            parts.append(f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {done * 100 // total:3d}%")
        parts.append(f"{records:>9,} records")
        if total is None:
            parts.append(_size(consumed))
        parts.append(f"{rate:>9,.0f} rec/s")
        if total is not None and consumed > 0 and elapsed > 0:
            remaining = elapsed * max(total - consumed, 0) / consumed
            parts.append(f"ETA {_duration(remaining)}")
        return "  ".join(parts)

    def close(self) -> None:
        """Erase the line, if one was drawn."""
        if self._drawn:
            self._stream.write("\r" + _CLEAR)
            self._stream.flush()
            self._drawn = False


def _size(n: int) -> str:
    """A byte count for people: ``_size(3 << 20)`` is ``'3.0 MiB'``."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:,.1f} {unit}"


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
