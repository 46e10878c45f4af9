"""What an SQL registry's commit costs when it touches old blocks: blocks are stored in pages
(``carbonbook.registry._sql``), so a transaction that touches one block rewrites its whole page.

A registry of ``--blocks`` live blocks (default 28,672, about what the busy venue flow leaves
after 100,000 messages) issued one unit at a time, round robin, to 64 accounts (block ``i`` is
account ``i % 64``'s), then, each as one transaction (one commit):

- ``one``: a transfer of one unit of ``acct-1`` (its oldest block split: its page and the
  newest page rewritten);
- ``spread``: a transfer of everything ``acct-0`` holds (every 64th block moved: one block in
  every page of 64 ids, the worst case for pages; the moved blocks get new ids, at the end).

Each is timed (CPU, best of ``--repeat`` fresh registries) and, with ``--instructions``, counted
with callgrind (the difference between a run with and without the transaction). It uses only the
public registry API, so ``PYTHONPATH=OLD/src`` measures an older tree (one row per block).

    .venv/bin/python bench/block_pages.py [--blocks N] [--backend sqlite postgres] [--instructions]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

from carbonbook import UnitType
from carbonbook.registry import Registry, Scheme, SQLiteRegistry

DSN = os.environ.get("CARBONBOOK_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
ACCOUNTS = 64


def make(backend: str, tmp: str) -> Registry:
    if backend == "sqlite":
        return SQLiteRegistry(os.path.join(tmp, f"{uuid.uuid4().hex}.db"))
    from carbonbook.registry.postgres import PostgresRegistry

    return PostgresRegistry(DSN, schema=f"bench_{uuid.uuid4().hex[:12]}")


def drop(reg: Registry) -> None:
    schema = getattr(reg, "schema", None)
    reg.close()  # type: ignore[attr-defined]
    if schema is not None:
        import psycopg

        with psycopg.connect(DSN, autocommit=True) as conn:
            drop_schema = psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
            conn.execute(drop_schema.format(psycopg.sql.Identifier(schema)))


def setup(reg: Registry, blocks: int) -> None:
    """``blocks`` blocks of one EUA each, round robin to the 64 accounts, in one transaction: one
    issuance, then one unit at a time transferred from it (each a new block)."""
    reg.create_scheme(Scheme("EUETS", frozenset({UnitType.EUA})))
    reg.set_cap("EUETS", 2026, blocks)
    with reg.transaction():
        for a in range(ACCOUNTS):
            reg.open_account(f"acct-{a}")
        reg.open_account("sink")
        reg.open_account("issuer")
        reg.issue("issuer", UnitType.EUA, blocks, scheme="EUETS", period=2026)
        for i in range(blocks):
            reg.transfer("issuer", f"acct-{i % ACCOUNTS}", UnitType.EUA, 1)


def touch(reg: Registry, case: str, blocks: int) -> None:
    if case == "one":
        reg.transfer("acct-1", "sink", UnitType.EUA, 1)
    else:
        reg.transfer("acct-0", "sink", UnitType.EUA, len(range(0, blocks, ACCOUNTS)))


def timed(backend: str, case: str, blocks: int, repeat: int) -> float:
    """CPU seconds of the ``case`` transaction, best of ``repeat`` fresh registries."""
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            reg = make(backend, tmp)
            try:
                setup(reg, blocks)
                cpu = time.process_time()
                touch(reg, case, blocks)
                best = min(best, time.process_time() - cpu)
            finally:
                drop(reg)
    return best


def _callgrind(*args: str) -> int:
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                           __file__, *args], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if match is None:
        raise RuntimeError(proc.stderr)
    return int(match.group(1))


def once(backend: str, case: str, blocks: int) -> None:
    """Set up and run ``case`` (``none``: nothing) in this process, then end it without teardown."""
    with tempfile.TemporaryDirectory() as tmp:
        reg = make(backend, tmp)
        setup(reg, blocks)
        if case != "none":
            touch(reg, case, blocks)
        os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=28_672)
    parser.add_argument("--backend", nargs="+", default=["sqlite"], choices=["sqlite", "postgres"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--instructions", action="store_true", help="count callgrind instructions instead")
    parser.add_argument("--once", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:
        once(args.once[0], args.once[1], args.blocks)
    for backend in args.backend:
        base = _callgrind("--once", backend, "none", "--blocks", str(args.blocks)) if args.instructions else 0
        for case in ("one", "spread"):
            moved = 1 if case == "one" else len(range(0, args.blocks, ACCOUNTS))
            if args.instructions:
                count = _callgrind("--once", backend, case, "--blocks", str(args.blocks)) - base
                print(f"{backend:<9} {case:<7} {count:>14,} instructions, {count / moved:>10,.0f} per block "
                      f"moved ({args.blocks:,} blocks)", flush=True)
            else:
                cpu = timed(backend, case, args.blocks, args.repeat)
                print(f"{backend:<9} {case:<7} {cpu * 1e3:>10.2f} ms CPU, {cpu * 1e6 / moved:>8.1f} us per "
                      f"block moved ({args.blocks:,} blocks)", flush=True)


if __name__ == "__main__":
    main()
