"""The client side of a sharded venue: publish commands to their shards, read the events back.

:class:`Publisher` routes each command to its shard (:class:`~carbonbook.cluster.routing.Router`)
and publishes it with a message id: the same id published again within the command stream's
de-duplication window (one hour) is a duplicate, not a second order, so a client that retries
after a timeout, or publishes a whole log again after a crash, enters each command once.
:func:`publish_log` gives each record of a log the id ``DIGEST:N`` (``DIGEST``: the first 16
hex digits of the log's BLAKE2b, ``N``: the command's 1-based place among the log's commands;
a blank line is no command), so publishing the same
file twice within the window publishes it once. :func:`drain_events` writes the events stream
as JSON Lines, in stream order, each event once (:class:`~carbonbook.cluster.wire.EventRuns`).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from carbonbook.cluster.routing import Router
from carbonbook.cluster.shard import check_layout
from carbonbook.cluster.wire import MSG_ID, EventRuns, Names, encode_command, ordered_consumer
from carbonbook.codec import command_batches
from carbonbook.commands import Command, Undecodable

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.api import PubAck

__all__ = ["Publisher", "drain_events", "publish_log"]


class Publisher:
    """Publishes commands to venue ``names`` of ``shards`` shards on ``js``."""

    def __init__(self, js: JetStreamContext, names: Names, shards: int) -> None:
        self.js, self.names = js, names
        self.router = Router(shards)
        self.published = 0
        self.duplicates = 0

    async def publish(self, command: Command | Undecodable, msg_id: str) -> asyncio.Future[PubAck]:
        """Send ``command`` to its shard under ``msg_id``; the future is its acknowledgement."""
        subject = self.names.command_subject(self.router.route(command))
        return await self.js.publish_async(subject, encode_command(command), headers={MSG_ID: msg_id})

    async def confirm(self, acks: list[asyncio.Future[PubAck]], timeout: float = 5.0) -> None:
        """Await acknowledgements (TimeoutError after ``timeout`` seconds: publish them again, under
        the same ids); count what was new and what was a duplicate."""
        try:
            done = await asyncio.wait_for(asyncio.gather(*acks), timeout)
        except BaseException:
            for ack in acks:
                ack.cancel()
            raise
        for pub in done:
            if pub.duplicate:
                self.duplicates += 1
            else:
                self.published += 1


async def publish_log(js: JetStreamContext, names: Names, shards: int, source: BinaryIO,
                      msgpack: bool = False, window: int = 4096) -> Publisher:
    """Publish every record of an order log (see the module docstring), ``window`` unacknowledged
    at most; return the publisher with its counts."""
    data = source.read()
    digest = hashlib.blake2b(data).hexdigest()[:16]
    await check_layout(js, names, shards)
    publisher = Publisher(js, names, shards)
    acks: list[asyncio.Future[PubAck]] = []
    number = 0
    for commands, *_ in command_batches(io.BytesIO(data), msgpack):
        for command in commands:
            number += 1
            acks.append(await publisher.publish(command, f"{digest}:{number}"))
            if len(acks) >= window:
                await publisher.confirm(acks)
                acks = []
    await publisher.confirm(acks)
    return publisher


async def drain_events(js: JetStreamContext, names: Names, write: Callable[[bytes], object],
                       shard: int | None = None, follow: bool = False,
                       stop: asyncio.Event | None = None) -> int:
    """Write the events (of ``shard``, or of every shard) as JSON Lines in stream order, up to the
    last one the stream holds when called (``follow``: until ``stop`` is set); return how many."""
    from nats.js.errors import NotFoundError

    subject = names.event_subject(shard)
    if shard is None:
        last = (await js.stream_info(names.events)).state.last_seq
    else:
        try:
            last = (await js.get_last_msg(names.events, subject)).seq or 0
        except NotFoundError:
            last = 0
    if not last and not follow:
        return 0
    sub = await ordered_consumer(js, subject, names.events)
    runs = EventRuns()
    written = 0
    try:
        while True:
            try:
                msg = await sub.next_msg(0.2)
            except TimeoutError:
                if stop is not None and stop.is_set():
                    break
                continue
            _, lines = runs.take(msg)
            if lines:
                write(lines)
                written += lines.count(b"\n")
            if not follow and msg.metadata.sequence.stream >= last:
                break
    finally:
        await sub.unsubscribe()
    return written
