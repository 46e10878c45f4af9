"""Time to build a call book of N orders, then to uncross it (``SetPhase(call -> continuous)``).

    python bench/call_auction.py [--orders N] [--seed S] [--runs K] [--spread TICKS]
                                 [--market PERMILLE]

The book: N orders, half bids and half asks, prices uniform over ``1000 +- spread``
ticks (so the two sides overlap entirely, the hardest case for the price choice),
quantities 1..100, one account per order (no self-trade re-choices), ``--market``
per mille of them market orders. Building it (``apply_all`` of the N orders) is
timed: every order entered in a call is followed by an ``indicative`` event. Then the
uncross alone is timed and its outcome printed (price, volume, trades, events).
Each of ``--runs`` runs uses a fresh engine; the best build and the best uncross
are reported.
"""

from __future__ import annotations

import argparse
import gc
import random
from time import perf_counter

from carbonbook import (
    Engine,
    ListInstrument,
    NewOrder,
    OrderType,
    Phase,
    SetPhase,
    Side,
    Trade,
    Uncrossed,
    UnitType,
)

SYMBOL = "JCR-2024"


def call_book(n: int, seed: int, spread: int, market: int) -> list[NewOrder]:
    rng = random.Random(seed)
    orders = []
    for oid in range(1, n + 1):
        side = Side.BUY if oid % 2 else Side.SELL
        if rng.randrange(1000) < market:
            orders.append(NewOrder(oid, f"a{oid}", SYMBOL, side, rng.randint(1, 100),
                                   order_type=OrderType.MARKET))
        else:
            orders.append(NewOrder(oid, f"a{oid}", SYMBOL, side, rng.randint(1, 100),
                                   price=1000 + rng.randint(-spread, spread)))
    return orders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--spread", type=int, default=200)
    parser.add_argument("--market", type=int, default=0)
    args = parser.parse_args()
    orders = call_book(args.orders, args.seed, args.spread, args.market)
    best = best_build = float("inf")
    for _ in range(args.runs):
        engine = Engine()
        engine.apply(ListInstrument(SYMBOL, UnitType.JCR, phase=Phase.CALL))
        t0 = perf_counter()
        engine.apply_all(orders)
        built = perf_counter() - t0
        gc.collect()
        gc.disable()
        t0 = perf_counter()
        events = engine.apply(SetPhase(SYMBOL, Phase.CONTINUOUS))
        took = perf_counter() - t0
        gc.enable()
        engine.check()
        best = min(best, took)
        best_build = min(best_build, built)
        mark = next(e for e in events if isinstance(e, Uncrossed))
        trades = sum(1 for e in events if isinstance(e, Trade))
        print(f"built {args.orders:,} orders in {built:.2f} s ({args.orders / built:,.0f}/s); "
              f"uncross {took * 1000:.1f} ms: price {mark.price}, volume {mark.volume:,}, "
              f"{trades:,} trades, {len(events):,} events")
    print(f"best of {args.runs}: build {best_build:.2f} s ({args.orders / best_build:,.0f} orders/s), "
          f"uncross {best * 1000:.1f} ms")


if __name__ == "__main__":
    main()
