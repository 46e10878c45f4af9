"""A replicated, sharded venue on NATS JetStream (``pip install 'carbonbook[nats]'``).

The command stream is the sequencer; each shard's process applies its subject in stream order
around an unchanged :class:`~carbonbook.core.engine.Engine` (or :class:`~carbonbook.venue.Venue`) and
publishes the events; a settlement consumer settles every shard's trades into one registry.

- :mod:`~carbonbook.cluster.routing`: which shard a command goes to (no NATS needed);
- :mod:`~carbonbook.cluster.wire`: the streams, subjects, message ids and payloads;
- :mod:`~carbonbook.cluster.client`: publishing commands, reading events;
- :mod:`~carbonbook.cluster.shard`: a shard's venue process, its snapshots and recovery;
- :mod:`~carbonbook.cluster.lease`: leadership of a shard (a lease in a key-value bucket);
- :mod:`~carbonbook.cluster.settle`: the settlement consumer.

Only ``routing`` imports without nats-py; the rest import it when they talk to NATS.
"""
