"""Write a bench workload as an order log (JSON Lines, the order-log contract's format).

    python bench/make_log.py busy 200000 /tmp/busy.jsonl
    python bench/make_log.py deep 200000 /tmp/deep.jsonl --resting 1000000

so that a whole-process replay can be timed, for example::

    time carbonbook replay /tmp/busy.jsonl --out /dev/null

For ``busy``, N is the number of messages after the instrument; for ``deep`` it is
the number of mix messages after the ``--resting`` orders. The same arguments always
write the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import msgspec

from carbonbook.operations import workload as workloads

_CHUNK = 100_000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=("busy", "deep"))
    parser.add_argument("messages", type=int, help="busy messages, or deep mix messages")
    parser.add_argument("out", help="the order log to write ('-' for standard output)")
    parser.add_argument("--resting", type=int, default=1_000_000,
                        help="deep: resting orders before the mix (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    if args.workload == "busy":
        commands = workloads.busy(args.messages, args.seed)
    else:
        commands = workloads.deep(args.resting, args.messages, args.seed)
    encoder = msgspec.json.Encoder()
    out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")  # noqa: SIM115
    try:
        for start in range(0, len(commands), _CHUNK):
            out.write(encoder.encode_lines(commands[start:start + _CHUNK]))
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    print(f"wrote {len(commands):,} commands to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
