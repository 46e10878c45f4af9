"""Time to close a primary auction of 100,000 sealed bids run through the order log.

    python bench/auction_replay.py [--bids N] [--seed S] [--runs K]

Builds a JSON Lines order log (not timed): an ``auction`` command (EU ties, lots of
1,000 t, about half the demand offered), ``--bids`` ``bid`` lines made by
``auction_clear.make_bids`` and an ``auction_close``. Each run decodes the log with the
order-log decoder and applies it to a fresh :class:`~carbonbook.Engine` (the bids in one
``apply_all`` call), then times ``Engine.apply`` of the
close alone (``time.perf_counter`` wall time, and the process CPU time) and the JSON
encoding of its ``auction_cleared`` event. Prints min, median and max over ``--runs``
runs (default 5); every run must give byte-identical events.
"""

from __future__ import annotations

import argparse
import io
import statistics
from time import perf_counter, process_time

import msgspec

from auction_clear import LOT, make_bids
from carbonbook import AuctionCleared, CloseAuction, Engine, OpenAuction, PlaceBid, UnitType
from carbonbook.codec import command_batches, json_encoder


def make_log(n: int, seed: int) -> bytes:
    """An order log: one auction, ``n`` bids, the close."""
    bids = make_bids(n, seed)
    volume = sum(b.qty for b in bids) // 2 // LOT * LOT
    commands: list[object] = [OpenAuction("EUA-BENCH", UnitType.EUA, volume, "eu-auction", seed=seed,
                                          lot=LOT, currency="EUR", scheme="EU-ETS", period=2030)]
    commands += [PlaceBid("EUA-BENCH", b.id, b.account, b.price, b.qty) for b in bids]
    commands.append(CloseAuction("EUA-BENCH"))
    return json_encoder.encode_lines(commands)


def run(log: bytes) -> tuple[float, float, float, float, bytes]:
    """Bid wall time, close wall and CPU time, result encoding time, and all the events' bytes."""
    commands = [cmd for batch, _, _, _ in command_batches(io.BytesIO(log), False) for cmd in batch]
    engine = Engine()
    t0 = perf_counter()
    events = engine.apply_all(commands[:-1])
    t1 = perf_counter()
    c0 = process_time()
    closing = engine.apply(commands[-1])
    t2 = perf_counter()
    cpu = process_time() - c0
    data = json_encoder.encode_lines(closing)
    t3 = perf_counter()
    assert closing[0].__class__ is AuctionCleared
    return t1 - t0, t2 - t1, cpu, t3 - t2, json_encoder.encode_lines(events) + data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bids", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    log = make_log(args.bids, args.seed)
    *_, first = run(log)  # warm-up
    rows = []
    for _ in range(args.runs):
        *times, out = run(log)
        assert out == first
        rows.append(times)
    result = msgspec.json.decode(first.splitlines()[-1])
    for i, name in enumerate(["apply the bids", "close (clear + result event)", "  cpu of the close",
                              "encode the result event"]):
        column = [r[i] for r in rows]
        print(f"{name:<30} min {min(column) * 1e3:7.1f} ms  median {statistics.median(column) * 1e3:7.1f} ms"
              f"  max {max(column) * 1e3:7.1f} ms")
    print(f"{args.bids:,} bids, log {len(log):,} bytes; price {result['price']},"
          f" sold {result['volume_sold']:,}, winning bids {len(result['allocations']):,},"
          f" result line {len(first.splitlines()[-1]):,} bytes")


if __name__ == "__main__":
    main()
