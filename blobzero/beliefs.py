"""``blobzero beliefs``: a learned belief model, offline: data from records, training, the report.

    blobzero beliefs make   --out DIR    records -> DIR/train.npz, DIR/heldout.npz, DIR/arena.npz
    blobzero beliefs train  --data DIR   DIR/train.npz -> DIR/belief.pt
    blobzero beliefs report --data DIR   held-out quality by trick: uniform, expert's bids, learned
    blobzero beliefs all    --out DIR    the three in turn
    blobzero beliefs arena  --data DIR   the product's search with the learned beliefs in it
                                         (search.beliefs = "learned") beside its bid beliefs,
                                         one seat against three ``expert``, the same deals

Records come from the search pool (``selfplay_client.runner.PooledSearch`` over ``round_specs``):
``train`` and ``heldout`` are tables of four ``expert`` seats (every seat's positions; disjoint
seeds), ``arena`` is the arena's lineup — the product's search (evaluation variant, on a uniform
evaluator) in seat 0 against three ``expert`` seats — and only the searcher's positions.

The report scores each held-out position's belief over the cards its viewer cannot see (who
holds each: a seat, or nobody when the card was not dealt) by
    logloss: nats per unseen card, -log P(true holder);
    top1:    over the unseen cards some seat holds, the fraction where the seat given the highest
             probability is the holder (ties share the credit),
grouped by trick (0 = bidding), for
    uniform        exact-in-expectation marginals of uniform consistent deals (``determinize``,
                   Rao-Blackwellised: within a suit the uniform deal is exchangeable, so
                   P(card -> seat) = E[suit cards the seat holds] / unseen cards of the suit)
    uniform_freq   the same draws counted card by card (how much Monte Carlo noise costs)
    bids           the posterior under ``expert``'s soft bidding model: the same uniform draws
                   weighted by the product of the other seats' bid likelihoods (importance
                   sampling; ``inference_temperature`` of the product)
    bids_sir       what the product's search draws: sampling-importance-resampling with
                   ``inference_candidates`` candidates (groups of the same draws)
    learned        the BeliefNet's marginals
    sampler        exact marginals of the deals ``DealSampler`` draws from the learned marginals
    sampler_draws  the card-holder frequencies of K such draws
Monte Carlo estimates get one pseudo-draw of a flat belief over the feasible holders (so a
possible holder never has probability 0): p = (n p_hat + flat) / (n + 1), n the draws (the
effective sample size for the weighted ones).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from blobzero.learned_beliefs import BeliefEvaluator

ROWS = ("uniform", "uniform_freq", "bids", "bids_sir", "learned", "sampler", "sampler_draws")
SETS = ("heldout", "arena")


# -- records ---------------------------------------------------------------------------------------

def make_records(n_rounds: int, seed: int, lineup: str, n_players: int = 4, cards: int = 5) -> list[dict]:
    """``n_rounds`` finished round records, seeds ``seed, seed+1, ...``. lineup "expert": four
    ``expert`` seats; "search": the product's search (evaluation variant, uniform evaluator) in
    seat 0 against ``expert`` seats."""
    from blobcore.players import AGENT_EXPERT
    from plumbing.config import load
    from selfplay_client.evaluator import UniformEvaluator
    from selfplay_client.runner import PooledSearch, round_specs
    if lineup == "expert":
        agents = (AGENT_EXPERT,) * n_players
    elif lineup == "search":
        agents = (0,) + (AGENT_EXPERT,) * (n_players - 1)
    else:
        raise ValueError(f"unknown lineup {lineup!r}; choose expert or search")
    specs = [spec + (-1, -1, agents) for spec in itertools.islice(round_specs(seed, n_players, cards), n_rounds)]
    runner = PooledSearch(UniformEvaluator(), load().search.build(for_evaluation=True), specs,
                          n_games=min(64, n_rounds), halves=1, record_builtin=True)
    runner.run()
    records = runner.finished()
    if len(records) != n_rounds or not all(r["complete"] for r in records):
        raise RuntimeError(f"expected {n_rounds} complete records, got {len(records)}")
    return sorted(records, key=lambda r: r["seed"])


def make(args) -> dict:
    from trainer.belief_model import positions_from_records
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = {"train": (args.train_rounds, args.train_seed, "expert", None),
            "heldout": (args.heldout_rounds, args.heldout_seed, "expert", None),
            "arena": (args.arena_rounds, args.arena_seed, "search", {0})}
    ranges = sorted((seed, seed + n) for n, seed, _, _ in plan.values())
    if any(a[1] > b[0] for a, b in zip(ranges, ranges[1:])):
        raise ValueError(f"seed ranges overlap: {ranges}")
    summary = {}
    for name, (n, seed, lineup, seats) in plan.items():
        t0 = time.perf_counter()
        data = positions_from_records(make_records(n, seed, lineup, args.players, args.cards), seats=seats)
        data.save(out / f"{name}.npz")
        summary[name] = {"rounds": n, "seeds": [seed, seed + n - 1], "lineup": lineup,
                         "positions": len(data), "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{name}: {summary[name]}", file=sys.stderr)
    (out / "data.json").write_text(json.dumps(summary, indent=1))
    return summary


# -- training --------------------------------------------------------------------------------------

def train_command(args) -> dict:
    import torch

    from trainer.belief_model import BeliefData, BeliefNetConfig, save_model, train
    torch.set_num_threads(args.threads)
    data = BeliefData.load(Path(args.data) / "train.npz")
    # validation: the last rounds of the training seeds (the held-out sets stay for the report)
    cut = int(data.round.max() * (1 - args.valid_fraction))
    fit, valid = _split(data, data.round <= cut), _split(data, data.round > cut)
    t0 = time.perf_counter()
    net, history = train(fit, BeliefNetConfig(args.hidden, args.depth), epochs=args.epochs,
                         batch=args.batch, lr=args.lr, seed=args.seed, valid=valid,
                         log=lambda row: print(json.dumps(row), file=sys.stderr))
    meta = {"positions": len(fit), "valid_positions": len(valid), "epochs": args.epochs,
            "hidden": args.hidden, "depth": args.depth, "lr": args.lr, "batch": args.batch,
            "threads": args.threads, "train_seconds": round(time.perf_counter() - t0, 1),
            "history": history}
    save_model(net, Path(args.model or Path(args.data) / "belief.pt"), meta)
    return meta


def _split(data, keep):
    from trainer.belief_model import BeliefData
    fields = {k: getattr(data, k) for k in BeliefData.__dataclass_fields__}
    for k in ("obs", "labels", "trick", "round", "ply", "viewer"):
        fields[k] = fields[k][keep]
    return BeliefData(**fields)


# -- the report ------------------------------------------------------------------------------------

def _flat(feasible: np.ndarray) -> np.ndarray:
    return feasible / np.maximum(feasible.sum(-1, keepdims=True), 1)


def uniform_and_bid_beliefs(rnd, viewer: int, feasible: np.ndarray, draws: int, candidates: int,
                            temperature: float, seed: int) -> dict[str, np.ndarray]:
    """(52, 8) beliefs of ``viewer`` at ``rnd`` under uniform consistent deals and under
    ``expert``'s bidding model, from ``draws`` uniform deals (module doc)."""
    from blobcore import determinize
    from blobcore.expert import expert_bid_probability
    from blobcore.rules import Rng
    n = rnd.n_players
    rng = Rng(seed)
    holders = np.zeros((draws, 52), np.int64)
    weights = np.ones(draws)
    bidders = [s for s, b in enumerate(rnd.bids) if s != viewer and b is not None]
    for m in range(draws):
        world = determinize(rnd, viewer, rng)
        for seat, hand in enumerate(world.hands):
            if seat != viewer:
                holders[m, hand] = (seat - viewer) % n
        for seat in bidders:
            weights[m] *= expert_bid_probability(world, seat, temperature)
    unseen = feasible.any(-1)
    onehot = np.zeros((draws, 52, 8))
    np.put_along_axis(onehot, holders[:, :, None], 1.0, axis=2)
    onehot *= unseen[None, :, None]
    flat = _flat(feasible)
    freq = onehot.mean(0)
    # Rao-Blackwellised uniform: average the holders' counts over each suit's unseen cards
    suit = np.arange(52) // 13
    rb = np.zeros((52, 8))
    for k in range(4):
        cards = unseen & (suit == k)
        if cards.any():
            rb[cards] = freq[cards].mean(0)
    out = {"uniform": (draws * rb + flat) / (draws + 1), "uniform_freq": (draws * freq + flat) / (draws + 1)}
    w = weights / weights.sum()
    ess = 1.0 / np.square(w).sum()
    bids = np.tensordot(w, onehot, axes=1)
    out["bids"] = (ess * bids + out["uniform"]) / (ess + 1)
    groups = draws // candidates
    gw = weights[:groups * candidates].reshape(groups, candidates)
    gw = gw / gw.sum(1, keepdims=True)
    sir = np.einsum("gc,gcxy->xy", gw, onehot[:groups * candidates].reshape(groups, candidates, 52, 8)) / groups
    out["bids_sir"] = (groups * sir + out["uniform"]) / (groups + 1)
    out["_ess"] = ess
    return out


class Scores:
    """Sums of log-loss and top-1 credit per (row, trick)."""

    def __init__(self):
        self.sums: dict = {}

    def add(self, row: str, trick: int, probs: np.ndarray, labels: np.ndarray) -> None:
        unseen = labels >= 0
        p = probs[unseen, labels[unseen]]
        if not (p > 0).all():
            raise ValueError(f"{row}: probability 0 for a true holder")
        held = labels >= 1
        seats = probs[held, 1:]
        top = seats.max(1, keepdims=True)
        ties = (seats >= top).sum(1)
        hit = (seats[np.arange(len(seats)), labels[held] - 1] >= top[:, 0]) / ties
        s = self.sums.setdefault((row, trick), np.zeros(5))
        s += (-np.log(p).sum(), unseen.sum(), hit.sum(), held.sum(), 1)

    def table(self) -> dict:
        out: dict = {}
        for (row, trick), (nll, n, hit, held, positions) in sorted(self.sums.items()):
            out.setdefault(row, {})[str(trick)] = {"logloss": round(nll / n, 4),
                                                    "top1": round(hit / held, 4) if held else None,
                                                    "positions": int(positions)}
        for row in list(out):
            tot = sum((v for (r, _), v in self.sums.items() if r == row), np.zeros(5))
            out[row]["all"] = {"logloss": round(tot[0] / tot[1], 4),
                               "top1": round(tot[2] / tot[3], 4) if tot[3] else None,
                               "positions": int(tot[4])}
        return out


def score_set(data, net, args, log=None) -> dict:
    import torch

    from trainer.belief_model import DealSampler, feasible_classes, holder_counts
    idx = np.arange(len(data))
    if args.positions and len(idx) > args.positions:
        idx = idx[np.linspace(0, len(idx) - 1, args.positions).round().astype(int)]
    obs = torch.from_numpy(np.asarray(data.obs[idx], np.float32))
    with torch.no_grad():
        logp = torch.log_softmax(net(obs), -1).double()
    feasible = feasible_classes(obs).numpy()
    counts = holder_counts(obs).numpy()
    learned = np.where(feasible, np.exp(logp.numpy()), 0.0)
    scores, ess = Scores(), []
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for j, i in enumerate(idx):
        labels = data.labels[i].astype(np.int64)
        trick = int(data.trick[i])
        rnd, viewer = data.position(i), int(data.viewer[i])
        if not (feasible[j][labels >= 0, labels[labels >= 0]]).all():
            raise ValueError(f"position {i}: a true holder is infeasible by the observation")
        beliefs = uniform_and_bid_beliefs(rnd, viewer, feasible[j], args.draws, args.candidates,
                                          args.temperature, seed=args.seed * 1_000_003 + int(i))
        ess.append(beliefs.pop("_ess"))
        beliefs["learned"] = learned[j]
        sampler = DealSampler(learned[j], counts[j])
        beliefs["sampler"] = sampler.marginals()
        holders = sampler.sample(args.deals, rng)
        onehot = np.zeros((args.deals, 52, 8))
        np.put_along_axis(onehot, np.maximum(holders, 0)[:, :, None].astype(np.int64), 1.0, axis=2)
        freq = onehot.mean(0) * feasible[j].any(-1)[:, None]
        beliefs["sampler_draws"] = (args.deals * freq + beliefs["uniform"]) / (args.deals + 1)
        for row in ROWS:
            scores.add(row, trick, beliefs[row], labels)
        if log is not None and (j + 1) % 500 == 0:
            log(f"  {j + 1}/{len(idx)} positions, {time.perf_counter() - t0:.0f} s")
    return {"positions": len(idx), "bids_mean_ess": round(float(np.mean(ess)), 1),
            "seconds": round(time.perf_counter() - t0, 1), "rows": scores.table()}


def report(args) -> dict:
    import torch

    from trainer.belief_model import BeliefData, load_model
    torch.set_num_threads(args.threads)
    data_dir = Path(args.data)
    net, meta = load_model(Path(args.model or data_dir / "belief.pt"))
    made = json.loads((data_dir / "data.json").read_text()) if (data_dir / "data.json").exists() else {}
    out = {"model": {k: v for k, v in meta.items() if k != "history"},
           "final_valid_loss": meta.get("history", [{}])[-1].get("valid_loss"),
           "data": made, "draws": args.draws, "candidates": args.candidates,
           "temperature": args.temperature, "deals": args.deals, "cpus": os.cpu_count(), "sets": {}}
    for name in args.sets.split(","):
        print(f"scoring {name} ...", file=sys.stderr)
        out["sets"][name] = score_set(BeliefData.load(data_dir / f"{name}.npz"), net, args,
                                      log=lambda s: print(s, file=sys.stderr))
    return out


def format_table(result: dict) -> str:
    lines = []
    for name, res in result["sets"].items():
        rows = res["rows"]
        tricks = sorted((k for k in rows["learned"] if k != "all"), key=int)
        head = ["bidding" if t == "0" else f"trick {t}" for t in tricks] + ["all"]
        lines.append(f"\n{name}: {res['positions']} positions (per column: "
                     + ", ".join(str(rows['learned'][t]['positions']) for t in tricks + ['all'])
                     + f"); bids mean ESS {res['bids_mean_ess']} of {result['draws']} draws")
        lines.append("| belief | " + " | ".join(head) + " |")
        lines.append("|---|" + "---|" * len(head))
        for row in ROWS:
            cells = [f"{rows[row][t]['logloss']:.3f} / {100 * rows[row][t]['top1']:.1f}%"
                     if rows[row][t]["top1"] is not None else f"{rows[row][t]['logloss']:.3f} / —"
                     for t in tricks + ["all"]]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines.append("\ncells: log-loss (nats per unseen card) / top-1 seat accuracy (cards some seat holds)")
    return "\n".join(lines)


# -- the command -----------------------------------------------------------------------------------

def arena(args) -> dict:
    """One seat of the product's search (evaluation variant, on a uniform evaluator: the
    beliefs are the only learned part) against three ``expert`` seats, every seat in turn, on
    ``--deals`` duplicate deals: with bid beliefs and with the learned ones, paired."""
    from blobzero.arena import solo_variants
    from plumbing.config import load
    from selfplay_client.evaluator import UniformEvaluator

    cfg = load()
    model = Path(args.model or Path(args.data) / "belief.pt")
    variants = {beliefs: (cfg.search.build(for_evaluation=True, preset=args.search, beliefs=beliefs),
                          BeliefEvaluator(UniformEvaluator(), model) if beliefs == "learned" else UniformEvaluator())
                for beliefs in ("bids", "learned")}
    rows = solo_variants(variants, args.arena_deals, args.arena_seed, args.players, args.cards)
    return {"deals": args.arena_deals, "table": f"{args.players}x{args.cards}", "opponent": "expert",
            "model": str(model), "variants": rows, "learned_minus_bids": rows["learned"].pop("minus_bids")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("make", "train", "report", "all", "arena"))
    parser.add_argument("--out", "--data", dest="data", default="runs/beliefs",
                        help="data directory (default: %(default)s)")
    parser.add_argument("--model", help="model file (default: DATA/belief.pt)")
    parser.add_argument("--players", type=int, default=4)
    parser.add_argument("--cards", type=int, default=5)
    parser.add_argument("--train-rounds", type=int, default=20000)
    parser.add_argument("--heldout-rounds", type=int, default=300)
    parser.add_argument("--arena-rounds", type=int, default=150)
    parser.add_argument("--train-seed", type=int, default=1_000_000)
    parser.add_argument("--heldout-seed", type=int, default=2_000_000)
    parser.add_argument("--arena-seed", type=int, default=3_000_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--valid-fraction", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--sets", default="heldout,arena", help="held-out sets the report scores")
    parser.add_argument("--positions", type=int, default=0,
                        help="score at most this many positions per set, evenly spread (0 = all)")
    parser.add_argument("--draws", type=int, default=256,
                        help="uniform deals per position for the uniform and bid beliefs")
    parser.add_argument("--candidates", type=int, default=0,
                        help="bids_sir candidates (default: the configured search.inference_candidates)")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="bid model temperature (default: the configured search.inference_temperature)")
    parser.add_argument("--deals", type=int, default=64, help="sampler draws per position")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write the report to FILE")
    parser.add_argument("--arena-deals", type=int, default=600, help="arena: duplicate deals")
    parser.add_argument("--search", default="medium", help="arena: search size preset")


def main(args: argparse.Namespace) -> int:
    args.out = args.data
    try:
        if args.action in ("report", "all"):
            from plumbing.config import load
            search = load().search
            args.candidates = args.candidates or search.inference_candidates
            args.temperature = args.temperature or search.inference_temperature
            if args.draws < args.candidates:
                raise ValueError(f"--draws ({args.draws}) must be at least --candidates ({args.candidates})")
        if args.action in ("make", "all"):
            print(json.dumps(make(args)))
        if args.action in ("train", "all"):
            print(json.dumps(train_command(args)))
        if args.action in ("report", "all"):
            result = report(args)
            text = json.dumps(result)
            if args.json:
                from plumbing.fsio import atomic_write_text
                atomic_write_text(args.json, text + "\n")
            print(text)
            print(format_table(result))
        if args.action == "arena":
            result = arena(args)
            if args.json:
                from plumbing.fsio import atomic_write_text
                atomic_write_text(args.json, json.dumps(result) + "\n")
            print(json.dumps(result))
    except (ValueError, FileNotFoundError) as exc:
        print(f"blobzero beliefs: {exc}", file=sys.stderr)
        return 2
    return 0
