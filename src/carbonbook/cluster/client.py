"""The client side of a sharded venue: publish commands to their shards, read the events back.

:class:`Publisher` routes each command to its shard (:class:`~carbonbook.cluster.routing.Router`)
and publishes it with a message id: the same id published again within the command stream's
de-duplication window (one hour) is a duplicate, not a second order, so a client that retries
after a timeout, or publishes a whole log again after a crash, enters each command once.
:func:`publish_log` sends a log's commands as runs: each shard's next commands in log order,
:data:`RUN` at most (and :data:`~carbonbook.cluster.wire.MESSAGE_BYTES`), one message each, under
the id ``DIGEST:N`` (``DIGEST``: the first 16 hex digits of the log's BLAKE2b, ``N``: the 1-based
place among the log's commands of the run's last command; a blank line is no command). The runs
depend on the log alone, so publishing the same file twice within the window publishes it once.
:func:`drain_events` writes the events stream as JSON Lines, in stream order, each event once
(:class:`~carbonbook.cluster.wire.EventRuns`).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, BinaryIO

from carbonbook.cluster.routing import Router
from carbonbook.cluster.shard import check_layout
from carbonbook.cluster.wire import (
    MESSAGE_BYTES,
    MSG_ID,
    RUN_HEADER,
    EventRuns,
    Names,
    encode_command,
    ordered_consumer,
)
from carbonbook.codec import command_batches
from carbonbook.commands import Command, Undecodable

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.api import PubAck

__all__ = ["RUN", "Publisher", "drain_events", "publish_log", "publish_runs"]

RUN = 256
"""The most commands :func:`publish_log` puts in one message."""


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

    async def publish_run(self, shard: int, lines: list[bytes], msg_id: str) -> asyncio.Future[PubAck]:
        """Send the commands encoded as ``lines`` (:func:`~carbonbook.cluster.wire.encode_command`),
        routed to ``shard``, as one run under ``msg_id``."""
        return await self.js.publish_async(self.names.command_subject(shard), b"\n".join(lines),
                                           headers={MSG_ID: msg_id, RUN_HEADER: str(len(lines))})

    async def confirm(self, acks: list[asyncio.Future[PubAck]], timeout: float = 5.0,
                      counts: list[int] | None = None) -> None:
        """Await acknowledgements (TimeoutError after ``timeout`` seconds: publish them again, under
        the same ids); count the commands (``counts``: of each, else one) that were new and those
        that were duplicates."""
        try:
            done = await asyncio.wait_for(asyncio.gather(*acks), timeout)
        except BaseException:
            for ack in acks:
                ack.cancel()
            raise
        for pub, n in zip(done, counts or [1] * len(done), strict=True):
            if pub.duplicate:
                self.duplicates += n
            else:
                self.published += n


async def publish_log(js: JetStreamContext, names: Names, shards: int, source: BinaryIO,
                      msgpack: bool = False, window: int = 64) -> Publisher:
    """Publish every record of an order log as runs (:func:`publish_runs`, the tag its digest)."""
    data = source.read()
    await check_layout(js, names, shards)
    commands = (c for batch, *_ in command_batches(io.BytesIO(data), msgpack) for c in batch)
    return await publish_runs(js, names, shards, commands, hashlib.blake2b(data).hexdigest()[:16], window)


async def publish_runs(js: JetStreamContext, names: Names, shards: int,
                       commands: Iterable[Command | Undecodable], tag: str, window: int = 64) -> Publisher:
    """Publish ``commands`` as runs under the ids ``TAG:N`` (see the module docstring), ``window``
    runs unacknowledged at most; return the publisher with its counts."""
    publisher = Publisher(js, names, shards)
    route = publisher.router.route
    runs: list[list[bytes]] = [[] for _ in range(shards)]
    sizes = [0] * shards
    last = [0] * shards  # the number of each run's last command
    acks: list[asyncio.Future[PubAck]] = []
    counts: list[int] = []

    async def send(shard: int) -> None:
        nonlocal acks, counts
        acks.append(await publisher.publish_run(shard, runs[shard], f"{tag}:{last[shard]}"))
        counts.append(len(runs[shard]))
        runs[shard], sizes[shard] = [], 0
        if len(acks) >= window:
            await publisher.confirm(acks, counts=counts)
            acks, counts = [], []

    for number, command in enumerate(commands, 1):
        shard = route(command)
        line = encode_command(command)
        if runs[shard] and (len(runs[shard]) >= RUN or sizes[shard] + len(line) >= MESSAGE_BYTES):
            await send(shard)
        runs[shard].append(line)
        sizes[shard] += len(line) + 1
        last[shard] = number
    for shard in range(shards):
        if runs[shard]:
            await send(shard)
    await publisher.confirm(acks, counts=counts)
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
