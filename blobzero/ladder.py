"""``blobzero ladder``: ratings with intervals for the built-in players, the agent's difficulty
levels and model versions, fitted to duplicate-deal matches (docs/players.md, "Ratings").

    blobzero ladder                                   # the stored ratings: table, PNG, Prometheus file
    blobzero ladder --add level:easy level:normal level:heavy --model latest --deals 200
    blobzero ladder --add v12                         # a new version plays the anchors, not everyone

Entrants: ``random``, ``greedy``, ``expert`` (the anchors; ``random`` is fixed at 0), ``level:<preset>``
(the model ``--model`` — latest, vN or an .onnx file — searching with that preset: one of the
agent's levels, ``blobcore.search_config.LEVELS``, which the play page offers) and ``v<N>`` (a version at ``arena.search_preset``). An entrant plays ``--deals``
duplicate deals (4 × 5, A and B alternating, every seating, ``blobzero.arena``) against each anchor;
the anchors play each other once. Each deal is a win, loss or draw by A's mean score minus B's.

The fit is Bradley–Terry by maximum likelihood on the Elo scale (400 · log10 of the strength ratio,
``random`` = 0), with one virtual draw per pair played (so a side that wins every deal stays
finite), and 95% intervals from the inverse Fisher information. Everything is kept in the run's
storage (``<parent of storage.games_dir>/ladder/``): ``ladder.json`` (every match and the fit),
``ladder.png`` and ``ladder.prom`` (the gauge ``blobzero_ladder_rating{entrant, bound}`` in the
Prometheus text format; the agent also serves it on its metrics port). Incremental: matches are
only ever added; ``--add`` plays what is missing and refits.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time

import numpy as np

from blobcore import search_config
from plumbing import config as configuration
from plumbing import storage

ANCHORS = ("random", "greedy", "expert")
LEVELS = search_config.LEVELS              # the one definition the page and the agent read too
ELO = 400 / math.log(10)


def ladder_location(cfg) -> str:
    """``<parent of storage.games_dir>/ladder`` (beside the agent's stored games; storage.locations)."""
    return storage.locations(cfg.storage).ladder


# -- the fit -----------------------------------------------------------------------------------

def fit(matches: list[dict], fixed: str = "random") -> dict[str, dict]:
    """Bradley–Terry ratings (Elo scale) with 95% intervals: {entrant: {rating, low, high, deals}}."""
    names = sorted({m["a"] for m in matches} | {m["b"] for m in matches})
    if fixed not in names:
        fixed = names[0]
    index = {n: i for i, n in enumerate(names)}
    k = len(names)
    wins = np.zeros((k, k))                       # wins[i, j]: deals i won from j (draws count half)
    for m in matches:
        i, j = index[m["a"]], index[m["b"]]
        wins[i, j] += m["wins"] + 0.5 * m["draws"] + 0.5       # + one virtual draw per match
        wins[j, i] += m["losses"] + 0.5 * m["draws"] + 0.5
    games = wins + wins.T
    free = [i for i in range(k) if names[i] != fixed]
    theta = np.zeros(k)
    for _ in range(200):                          # Newton on the free ratings (natural log scale)
        p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))          # p[i, j] = P(i beats j)
        grad = (wins - games * p).sum(axis=1)
        w = games * p * (1 - p)
        hess = -np.diag(w.sum(axis=1)) + w
        step = np.linalg.solve(hess[np.ix_(free, free)], grad[free])
        theta[free] -= step
        if np.abs(step).max() < 1e-9:
            break
    cov = np.linalg.inv(-hess[np.ix_(free, free)])
    se = np.zeros(k)
    se[free] = np.sqrt(np.diag(cov))
    deals = {n: int(sum(m["deals"] for m in matches if n in (m["a"], m["b"]))) for n in names}
    return {n: {"rating": round(ELO * theta[i], 1), "low": round(ELO * (theta[i] - 1.96 * se[i]), 1),
                "high": round(ELO * (theta[i] + 1.96 * se[i]), 1), "deals": deals[n]}
            for n, i in index.items()}


# -- matches -----------------------------------------------------------------------------------

def resolve(entrant: str, cfg, model: str):
    """(arena Agent, search preset or None) of an entrant name."""
    from blobzero.arena import resolve_agent
    if entrant in ANCHORS:
        return resolve_agent(entrant, cfg), None
    if entrant.startswith("level:"):
        preset = entrant.split(":", 1)[1]
        if preset not in LEVELS:
            raise ValueError(f"{entrant}: a level is one of "
                             f"{', '.join(f'level:{name}' for name in LEVELS)}")
        return resolve_agent(model, cfg), preset
    return resolve_agent(entrant, cfg), cfg.arena.search_preset


def play_match(a: str, b: str, cfg, model: str, deals: int, seed: int) -> dict:
    from blobzero.arena import arena_search, mean_ci, play
    agent_a, preset_a = resolve(a, cfg, model)
    agent_b, preset_b = resolve(b, cfg, model)
    if preset_a and preset_b and preset_a != preset_b:
        raise ValueError(f"{a} and {b} search differently: a match has one search (play anchors instead)")
    search = arena_search(cfg, preset_a or preset_b or "light")
    started = time.perf_counter()
    diffs = play(agent_a, agent_b, deals, search=search, seed=seed)["per_deal"]
    mean, ci = mean_ci(diffs)
    return {"a": a, "b": b, "model": model if (preset_a or preset_b) else "", "deals": len(diffs),
            "wins": sum(d > 0 for d in diffs), "losses": sum(d < 0 for d in diffs),
            "draws": sum(d == 0 for d in diffs), "difference": round(mean, 3), "ci95": [round(ci[0], 3), round(ci[1], 3)],
            "search": f"{search.determinizations}x{search.simulations}", "seed": seed,
            "seconds": round(time.perf_counter() - started, 1)}


# -- storage, picture, gauge -------------------------------------------------------------------

def load(store) -> dict:
    try:
        return json.loads(store.get("ladder.json"))
    except FileNotFoundError:
        return {"version": 1, "matches": [], "ratings": {}}


def prometheus_text(ratings: dict) -> str:
    lines = ["# HELP blobzero_ladder_rating Bradley-Terry rating (Elo scale, random = 0) and its 95% interval",
             "# TYPE blobzero_ladder_rating gauge"]
    for name, r in sorted(ratings.items()):
        for bound, key in (("mid", "rating"), ("low", "low"), ("high", "high")):
            lines.append(f'blobzero_ladder_rating{{entrant="{name}",bound="{bound}"}} {r[key]}')
    return "\n".join(lines) + "\n"


def picture(ratings: dict) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    order = sorted(ratings, key=lambda n: ratings[n]["rating"])
    mids = [ratings[n]["rating"] for n in order]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(order)))
    ax.errorbar(mids, range(len(order)), xerr=[[m - ratings[n]["low"] for n, m in zip(order, mids)],
                                               [ratings[n]["high"] - m for n, m in zip(order, mids)]],
                fmt="o", capsize=4)
    ax.set_yticks(range(len(order)), order)
    ax.set_xlabel("rating (Bradley–Terry, Elo scale; random = 0), 95% interval")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out.getvalue()


def save(store, data: dict) -> None:
    data["ratings"] = fit(data["matches"]) if data["matches"] else {}
    store.put("ladder.json", (json.dumps(data, indent=1) + "\n").encode())
    if data["ratings"]:
        store.put("ladder.png", picture(data["ratings"]))
        store.put("ladder.prom", prometheus_text(data["ratings"]).encode())


def stored_ratings(cfg) -> dict:
    """The ratings kept in the run's storage ({} when there is no ladder yet)."""
    try:
        return load(storage.open_store(ladder_location(cfg))).get("ratings", {})
    except (OSError, ValueError):
        return {}


def format_table(ratings: dict) -> str:
    lines = [f"{'entrant':<16} {'rating':>7}  {'95% interval':>16}  {'deals':>6}"]
    for name in sorted(ratings, key=lambda n: -ratings[n]["rating"]):
        r = ratings[name]
        lines.append(f"{name:<16} {r['rating']:>7.0f}  [{r['low']:>6.0f}, {r['high']:>6.0f}]  {r['deals']:>6}")
    return "\n".join(lines)


# -- the command -------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    parser.add_argument("--add", nargs="*", default=[], metavar="ENTRANT",
                        help=f"entrants to rate: random, greedy, expert, level:{'|'.join(LEVELS)}, vN")
    parser.add_argument("--model", default="latest", help="the model of the level:* entrants (latest, vN, .onnx)")
    parser.add_argument("--anchors", default="greedy,expert", help="whom a new entrant plays")
    parser.add_argument("--deals", type=int, default=200, help="duplicate deals per match")
    parser.add_argument("--seed", type=int, default=2_900_000)
    parser.add_argument("--json", action="store_true")


def main(args: argparse.Namespace) -> int:
    try:
        cfg = configuration.from_args(args)
        anchors = [a.strip() for a in args.anchors.split(",") if a.strip()]
        for name in [*args.add, *anchors]:
            resolve(name, cfg, args.model)
        if args.deals < 10:
            raise ValueError(f"--deals must be >= 10, got {args.deals}")
    except (configuration.ConfigError, ValueError) as exc:
        print(f"blobzero ladder: {exc}", file=sys.stderr)
        return 2
    store = storage.open_store(ladder_location(cfg))
    data = load(store)
    played = {frozenset((m["a"], m["b"])) for m in data["matches"]}
    wanted = []
    for new in args.add:
        opponents = [o for o in ANCHORS if o != new] if new in ANCHORS else anchors
        wanted += [(new, o) for o in opponents]
    for a, b in wanted:
        if a == b or frozenset((a, b)) in played:
            continue
        match = play_match(a, b, cfg, args.model, args.deals, args.seed + 1000 * len(data["matches"]))
        data["matches"].append(match)
        played.add(frozenset((a, b)))
        print(f"{a} vs {b}: {match['deals']} deals, {match['wins']}-{match['losses']}-{match['draws']}, "
              f"{match['difference']:+.2f} points/round [{match['ci95'][0]:+.2f}, {match['ci95'][1]:+.2f}], "
              f"search {match['search']}, {match['seconds']:.0f} s", file=sys.stderr)
        save(store, data)                    # after every match: an interrupted run keeps what it played
    if not data["matches"]:
        print("blobzero ladder: no matches yet: add entrants with --add", file=sys.stderr)
        return 2
    save(store, data)
    print(json.dumps(data["ratings"]) if args.json else
          format_table(data["ratings"]) + f"\n(kept in {store.url}: ladder.json, ladder.png, ladder.prom)")
    return 0
