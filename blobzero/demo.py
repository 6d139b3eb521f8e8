"""``blobzero demo``: built-in players play rounds of Blob; prints a score table.

Seats rotate every round (and dealer and trump vary with the deal), so every player
sits in every position equally often.
"""
from __future__ import annotations

import argparse
import math
import random
import sys

from tqdm import tqdm

from blobcore import Round
from blobcore.players import PLAYERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=400, help="rounds to play (default 400)")
    parser.add_argument("--players", default="greedy,greedy,random,random",
                        help=f"comma-separated seats, each one of {sorted(PLAYERS)}")
    parser.add_argument("--cards", type=int, default=5, help="cards dealt per seat (default 5)")
    parser.add_argument("--seed", type=int, default=0)


def play_rounds(names: list[str], rounds: int, cards: int, seed: int, progress: bool = True):
    """Play ``rounds`` rounds; return per-entry lists of (score, bid_made) tuples."""
    rng = random.Random(seed)
    n = len(names)
    results: list[list[tuple[int, bool]]] = [[] for _ in names]
    for i in tqdm(range(rounds), desc="rounds", unit="round", disable=not progress,
                  file=sys.stderr):
        rnd = Round.from_seed(rng.getrandbits(63), n, cards)
        seat_of = [(entry + i) % n for entry in range(n)]          # rotate seats each round
        player_at = {seat: PLAYERS[names[entry]] for entry, seat in enumerate(seat_of)}
        while not rnd.is_terminal:
            rnd.apply(player_at[rnd.current_player](rnd, rng))
        scores = rnd.scores()
        for entry, seat in enumerate(seat_of):
            results[entry].append((scores[seat], rnd.bids[seat] == rnd.tricks_won[seat]))
    return results


def score_table(names: list[str], results) -> str:
    lines = [f"{'#':<6}{'player':<10}{'mean score/round':>18}{'95% CI':>16}{'bids made':>12}"]
    for entry, (name, rows) in enumerate(zip(names, results)):
        scores = [s for s, _ in rows]
        mean = sum(scores) / len(scores)
        var = sum((s - mean) ** 2 for s in scores) / max(1, len(scores) - 1)
        half = 1.96 * math.sqrt(var / len(scores))
        made = sum(m for _, m in rows) / len(rows)
        lines.append(f"{entry:<6}{name:<10}{mean:>18.2f}{f'± {half:.2f}':>16}{made:>11.0%}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    names = [p.strip() for p in args.players.split(",")]
    unknown = [p for p in names if p not in PLAYERS]
    if unknown:
        print(f"blobzero demo: unknown player(s) {unknown}; choose from {sorted(PLAYERS)}",
              file=sys.stderr)
        return 2
    if not 3 <= len(names) <= 8:
        print(f"blobzero demo: Blob needs 3..8 players, got {len(names)}", file=sys.stderr)
        return 2
    max_c = 52 // len(names)
    if not 1 <= args.cards <= max_c:
        print(f"blobzero demo: --cards must be 1..{max_c} for {len(names)} players", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print("blobzero demo: --rounds must be at least 1", file=sys.stderr)
        return 2
    results = play_rounds(names, args.rounds, args.cards, args.seed, progress=sys.stderr.isatty())
    print(f"{args.rounds} rounds, {len(names)} players, {args.cards} cards each "
          f"(seats rotate every round)")
    print(score_table(names, results))
    return 0
