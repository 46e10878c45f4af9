"""Leadership of a shard: a lease in a JetStream key-value bucket, revision-checked.

The bucket's TTL (``ttl`` seconds) is the lease: an entry not rewritten within it is removed
by the server. The holder creates the key (which succeeds only when no live entry is there)
and rewrites it every ``ttl / 3`` with an update that names the revision it last wrote, so a
holder that lost the key (expired, taken) learns it at its next renewal and never
overwrites the new holder. A candidate tries to create the key every ``ttl / 4``, so a
standby takes over within about ``1.25 * ttl`` (plus the server's expiry timer) of the
leader's last renewal; a leader that stops cleanly deletes the key and the standby takes
over at its next try.

The holder counts its lease from the moment it *sent* its last successful write (the server
counts from when it stored it, later), so while :meth:`Lease.held` is true no other holder
can have the key. Nothing here is needed for correctness of the events (two leaders publish
the same bytes under the same message ids); it keeps one publisher at a time.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

__all__ = ["Lease"]


class Lease:
    """The lease ``key`` in bucket ``kv`` (TTL ``ttl``), sought by ``holder``."""

    def __init__(self, kv: KeyValue, key: str, holder: str, ttl: float) -> None:
        self.kv, self.key, self.holder, self.ttl = kv, key, holder.encode(), ttl
        self.revision: int | None = None
        self._until = 0.0  # monotonic time the lease surely lasts until
        self._next = 0.0  # monotonic time of the next renewal or try

    def held(self) -> bool:
        """Whether this holder surely has the lease now. O(1)."""
        return self.revision is not None and time.monotonic() < self._until

    async def keep(self) -> bool:
        """Renew the lease when due, or try to take it when due; return :meth:`held`."""
        from nats.errors import Error as NatsError
        from nats.js.errors import KeyWrongLastSequenceError

        now = time.monotonic()
        if now < self._next:
            return self.held()
        try:
            if self.revision is None:
                self._next = now + self.ttl / 4
                self.revision = await self.kv.create(self.key, self.holder)
            else:
                self._next = now + self.ttl / 3
                self.revision = await self.kv.update(self.key, self.holder, last=self.revision)
            self._until = now + self.ttl
        except KeyWrongLastSequenceError:  # another holder has it (or it expired and was taken)
            self.revision = None
        except (NatsError, TimeoutError):  # unreachable: the lease lasts while its time does
            if not self.held():
                self.revision = None
        return self.held()

    async def release(self) -> None:
        """Give the lease up (a standby takes it at its next try)."""
        from nats.errors import Error as NatsError

        if self.revision is not None:
            revision, self.revision = self.revision, None
            with contextlib.suppress(NatsError, TimeoutError):  # else it expires by itself
                await self.kv.delete(self.key, last=revision)
