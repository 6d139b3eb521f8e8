"""``blobzero bench core``: speed of the game core on one core, driven from C.

Reports complete random 4-player 5-card rounds per second, encode time per state,
determinization time per sample and state copy time, each the median of several
repeats, against the targets of the game-core issue.
"""
from __future__ import annotations

import random
import statistics
import time

from blobcore import Round
from blobcore import timing

TARGETS = {"random_rounds_per_s": 100_000, "encode_us": 1.0, "determinize_us": 5.0, "copy_us": 0.2}


def mid_round_states(count: int, n_players: int = 4, cards: int = 5, seed: int = 7) -> list[Round]:
    """``count`` states spread over the bidding and play of random rounds (never terminal)."""
    rng = random.Random(seed)
    states = []
    total = n_players + n_players * cards
    while len(states) < count:
        rnd = Round.from_seed(rng.getrandbits(63), n_players, cards)
        for _ in range(rng.randrange(total)):
            rnd.apply(rng.choice(rnd.legal_actions()))
        states.append(rnd)
    return states


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(args) -> dict:
    quick = getattr(args, "quick", False)
    repeats = 3 if quick else 7
    n_rounds = 20_000 if quick else 200_000
    n_ops = 200_000 if quick else 2_000_000
    states = mid_round_states(256)
    playing = [s for s in states if s.phase == 1]      # where determinization has real work
    t_rounds = _median_seconds(lambda: timing.random_rounds(n_rounds, 4, 5, 1), repeats)
    t_copy = _median_seconds(lambda: timing.copy_states(n_ops, states), repeats)
    t_encode = _median_seconds(lambda: timing.encode_states(n_ops, states), repeats)
    t_det = _median_seconds(lambda: timing.determinize_states(n_ops // 4, playing, 3), repeats)
    result = {
        "random_rounds_per_s": round(n_rounds / t_rounds),
        "encode_us": round(t_encode / n_ops * 1e6, 4),
        "determinize_us": round(t_det / (n_ops // 4) * 1e6, 4),
        "copy_us": round(t_copy / n_ops * 1e6, 4),
        "workload": "4 players, 5 cards; encode/copy/determinize over 256 random mid-round states",
        "repeats": repeats,
        "statistic": "median",
    }
    result["targets"] = TARGETS
    result["meets_targets"] = (result["random_rounds_per_s"] >= TARGETS["random_rounds_per_s"]
                               and all(result[k] <= TARGETS[k] for k in
                                       ("encode_us", "determinize_us", "copy_us")))
    return result
