"""``blobzero game``: complete games of Blob between any agents, one per seat.

A game runs through the whole schedule (C, C-1, ..., 2, N one-card rounds, 2, ..., C cards per
seat; dealer and trump rotating; docs/rules.md). Seats are ``random``, ``greedy``, ``expert``,
``latest``, ``v<N>`` or an ONNX file (model seats search with ``--search``, evaluation mode).
Prints each round (bid/tricks, round score, running total per seat) and the winner; ``--json``
prints one object instead.
"""
from __future__ import annotations

import argparse
import json
import sys

from blobcore.rules import NO_TRUMP
from blobcore.search_config import SIZES
from plumbing import config as configuration

SUITS = "SHCD"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    parser.add_argument("--seats", help="one agent per seat, comma-separated: random, greedy, expert, "
                                        "latest, v<N> or path.onnx (default: latest against "
                                        "expert players, or expert against greedy ones without a model)")
    parser.add_argument("--players", type=int, help="players (default: the number of --seats, else 4)")
    parser.add_argument("--start-cards", type=int, default=0,
                        help="cards per seat in the first round (default: table.start_cards, "
                             "else the most the deck allows)")
    parser.add_argument("--search", choices=list(SIZES),
                        help="search preset of model seats (default: arena.search_preset)")
    parser.add_argument("--games", type=int, default=1, help="games to play (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="deal seed of the first game")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _default_seats(n: int, cfg: configuration.Config) -> list[str]:
    from blobzero.arena import resolve_agent

    try:
        resolve_agent("latest", cfg)
        return ["latest"] + ["expert"] * (n - 1)
    except ValueError:
        return ["expert"] + ["greedy"] * (n - 1)


def play(seats: list, start_cards: int, games: int, search, seed: int = 0,
         games_in_flight: int = 64, worlds=None, beliefs=None) -> list[dict]:
    """Play ``games`` full games with ``seats`` (arena ``Agent`` per seat); game g deals from
    ``seed + g`` with dealer g mod N first; model seats search with ``search``, an evaluation
    search (``blobzero.arena.arena_search``). Returns one dict per game (see ``main``)."""
    from blobzero.arena import pool_agents
    from selfplay_client.runner import PooledSearch
    from selfplay_client.tables import FullGames, GamePlan

    n = len(seats)
    evaluators, ids = pool_agents(seats, worlds=worlds, beliefs=beliefs)
    plans = [GamePlan(n, start_cards, seed=seed + g, first_dealer=g % n, agents=tuple(ids), key=g)
             for g in range(games)]
    feeder = FullGames(plans)
    runner = PooledSearch(evaluators, search, feeder,
                          n_games=min(games_in_flight, games))
    runner.run()
    records = {}
    for record in runner.finished():
        records[record["tag"]] = record
    out = []
    for result in sorted(feeder.results, key=lambda r: r.plan.key):
        g = result.plan.key
        totals, rounds = [0] * n, []
        for i, scores in enumerate(result.round_scores):
            record = records[(g, i)]
            totals = [t + s for t, s in zip(totals, scores)]
            rounds.append({"round": i + 1, "cards": record["cards"], "dealer": record["dealer"],
                           "trump": None if record["trump"] in (None, NO_TRUMP) else SUITS[record["trump"]],
                           "bids": result.bids[i], "tricks": result.tricks[i], "scores": scores,
                           "totals": totals})
        out.append({"game": g + 1, "seed": result.plan.seed, "rounds": rounds,
                    "totals": result.scores, "winners": result.winners})
    return out


def format_game(game: dict, names: list[str]) -> str:
    """The round-by-round table of one game: per seat ``bid/tricks +score total``."""
    n = len(names)
    width = max(15, max(len(name) for name in names) + 4)
    head = "round cards trump dealer | " + " | ".join(f"{s} {names[s]}".ljust(width) for s in range(n))
    lines = [f"Game {game['game']} (seed {game['seed']})", head, "-" * len(head)]
    for r in game["rounds"]:
        cells = []
        for s in range(n):
            made = "+" if r["scores"][s] else " "
            cells.append(f"{r['bids'][s]}/{r['tricks'][s]} {made}{r['scores'][s]:<3d} {r['totals'][s]:>4d}"
                         .ljust(width))
        lines.append(f"{r['round']:>5} {r['cards']:>5} {r['trump'] or 'NT':>5} {r['dealer']:>6} | "
                     + " | ".join(cells))
    winners = ", ".join(f"seat {s} ({names[s]})" for s in game["winners"])
    lines.append(f"winner: {winners} with {max(game['totals'])}; totals "
                 + " ".join(str(t) for t in game["totals"]))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from blobzero.arena import arena_search, resolve_agent

    try:
        cfg = configuration.from_args(args)
        seats = [s.strip() for s in args.seats.split(",")] if args.seats else None
        n = args.players or (len(seats) if seats else 4)
        if not 3 <= n <= 8:
            raise ValueError(f"--players must be 3..8, got {n}")
        seats = seats or _default_seats(n, cfg)
        if len(seats) != n:
            raise ValueError(f"--seats names {len(seats)} agents for {n} players")
        agents = [resolve_agent(s, cfg) for s in seats]
        start = args.start_cards or cfg.table.start_for(n)
        if not 1 <= start <= 52 // n:
            raise ValueError(f"--start-cards must be 1..{52 // n} for {n} players, got {start}")
        if args.games < 1:
            raise ValueError(f"--games must be >= 1, got {args.games}")
        from blobzero.learned_beliefs import configured_belief_model
        from selfplay_client.world_values import configured_world_values
        worlds, beliefs = configured_world_values(cfg), configured_belief_model(cfg)
    except (configuration.ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"blobzero game: {exc}", file=sys.stderr)
        return 2
    search = arena_search(cfg, args.search)
    games = play(agents, start, args.games, search, seed=args.seed, worlds=worlds, beliefs=beliefs)
    names = [a.name for a in agents]
    wins = [0.0] * n
    for game in games:
        for s in game["winners"]:
            wins[s] += 1 / len(game["winners"])
    summary = {"players": n, "start_cards": start, "seats": names,
               "search": f"{search.determinizations}x{search.simulations}",
               "games": len(games), "wins": wins,
               "mean_totals": [sum(g["totals"][s] for g in games) / len(games) for s in range(n)]}
    if args.json:
        print(json.dumps({**summary, "games": games, "n_games": len(games)}))
        return 0
    for game in games:
        print(format_game(game, names) + "\n")
    if len(games) > 1:
        print(f"{len(games)} games: wins " + ", ".join(f"{names[s]}@{s} {wins[s]:g}" for s in range(n))
              + "; mean totals " + " ".join(f"{t:.1f}" for t in summary["mean_totals"]))
    return 0
