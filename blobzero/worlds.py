"""``blobzero worlds``: the world-value model (trainer/world_model.py): data, training, the report,
and the search with it in the arena.

    blobzero worlds make   --data DIR   records -> DIR/train.npz, DIR/heldout.npz
    blobzero worlds train  --data DIR   DIR/train.npz -> DIR/world.pt and DIR/world.onnx
    blobzero worlds report --data DIR   held-out squared error by trick beside a per-trick mean
    blobzero worlds all    --data DIR   the three in turn
    blobzero worlds publish --data DIR --repo REPO
                                        DIR/world.onnx as the next version of ``blobworld`` in a
                                        Triton model repository (validated first), with its config
    blobzero worlds arena  --data DIR   the product's search with world values at its leaves
                                        (search.rollout = "world") beside its expert play-outs,
                                        one seat against three ``expert``, the same deals

The data are explored worlds (``trainer.world_model.explored_worlds``; train and held-out seeds
disjoint): four ``expert`` seats that, before a random ply, sometimes (and in the last few plies
always) play a random move — a search's leaves end in such moves — and from that ply play it out;
each position from there on is a whole deal seen from its mover, labelled with the round's final
normalised scores. So the model learns what an ``expert`` play-out of a world is worth on
average, without the noise of any one play-out (``--source expert``: four ``expert`` seats'
own games only, which measured far worse; docs/strength.md, "World values at the leaves").
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from selfplay_client.world_values import WorldEvaluator


# -- data and training -----------------------------------------------------------------------------

def make(args) -> dict:
    """Labelled worlds: ``--source explored`` (the default: ``explored_worlds``, what a search's
    leaves look like) or ``expert`` (every position of four-``expert`` games, for comparison)."""
    from blobzero.beliefs import make_records
    from trainer.world_model import explored_worlds, worlds_from_records
    out = Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    plan = {"train": (args.train_rounds, args.train_seed), "heldout": (args.heldout_rounds, args.heldout_seed)}
    if args.train_seed < args.heldout_seed < args.train_seed + args.train_rounds:
        raise ValueError("the held-out seeds overlap the training seeds")
    summary = {}
    for name, (n, seed) in plan.items():
        t0 = time.perf_counter()
        if args.source == "explored":
            data = explored_worlds(n, seed, args.players, args.cards, args.epsilon, args.tail)
        else:
            data = worlds_from_records(make_records(n, seed, "expert", args.players, args.cards))
        data.save(out / f"{name}.npz")
        summary[name] = {"rounds": n, "seeds": [seed, seed + n - 1], "source": args.source,
                         "positions": len(data),
                         "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{name}: {summary[name]}", file=sys.stderr)
    return summary


def train_command(args) -> dict:
    import torch

    from trainer.world_model import WorldData, WorldNetConfig, export_onnx, save_model, train
    torch.set_num_threads(args.threads)
    data = WorldData.load(Path(args.data) / "train.npz")
    valid = WorldData.load(Path(args.data) / "heldout.npz")
    t0 = time.perf_counter()
    net, history = train(data, WorldNetConfig(args.hidden, args.depth), epochs=args.epochs,
                         batch=args.batch, lr=args.lr, seed=args.seed, valid=valid,
                         log=lambda row: print(json.dumps(row), file=sys.stderr))
    meta = {"positions": len(data), "epochs": args.epochs, "hidden": args.hidden, "depth": args.depth,
            "lr": args.lr, "batch": args.batch, "threads": args.threads,
            "train_seconds": round(time.perf_counter() - t0, 1), "history": history}
    model = Path(args.model or Path(args.data) / "world.pt")
    save_model(net, model, meta)
    export_onnx(net, model.with_suffix(".onnx"))
    from plumbing.fsio import atomic_write_bytes
    atomic_write_bytes(model.with_name(model.stem + "_curve.png"),
                       curve_png({f"{args.hidden}x{args.depth}, {len(data):,} positions": history}))
    return meta


def curve_png(histories: dict[str, list[dict]]) -> bytes:
    """The learning curves of world-value models: held-out squared error per epoch (solid) and
    the training error (dotted), one colour per label."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, history) in enumerate(histories.items()):
        epochs = [row["epoch"] for row in history]
        colour = f"C{i}"
        if any("valid_mse" in row for row in history):
            ax.plot(epochs, [row.get("valid_mse") for row in history], "o-", color=colour,
                    label=f"{label}: held out")
        ax.plot(epochs, [row["train_mse"] for row in history], ":", color=colour, label=f"{label}: training")
    ax.set_xlabel("epoch")
    ax.set_ylabel("squared error per seat (normalised score)")
    ax.set_title("World-value model: learning curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out.getvalue()


def report(args) -> dict:
    """Held-out squared error per seat at the table, by trick (0 = bidding): the model beside
    the per-trick mean of the training targets (what knowing nothing of the deal gives)."""
    from trainer.world_model import WorldData, load_model, predict
    train_data = WorldData.load(Path(args.data) / "train.npz")
    held = WorldData.load(Path(args.data) / "heldout.npz")
    net, _ = load_model(Path(args.model or Path(args.data) / "world.pt"))
    pred = predict(net, held.world)
    seats = held.world[:, 212:220]
    rows = {}
    for trick in sorted(set(held.trick.tolist())):
        at = held.trick == trick
        mean = (train_data.target[train_data.trick == trick].sum(0)
                / np.maximum(train_data.world[train_data.trick == trick, 212:220].sum(0), 1))
        err_model = (((pred[at] - held.target[at]) ** 2) * seats[at]).sum() / seats[at].sum()
        err_mean = (((mean - held.target[at]) ** 2) * seats[at]).sum() / seats[at].sum()
        rows[int(trick)] = {"positions": int(at.sum()), "model_mse": round(float(err_model), 4),
                            "mean_mse": round(float(err_mean), 4)}
    total_model = float((((pred - held.target) ** 2) * seats).sum() / seats.sum())
    return {"heldout_positions": len(held), "by_trick": rows, "model_mse": round(total_model, 4)}


# -- the arena -------------------------------------------------------------------------------------

def arena(args) -> dict:
    """One seat of the product's search (evaluation variant, on a uniform evaluator: the world
    model — and with ``beliefs:learned`` the belief model, ``--beliefs-model`` — is the only
    learned part) against three ``expert`` seats, every seat in turn, on
    ``--arena-deals`` duplicate deals: each variant of ``--variants`` (NAME=key:value,...
    settings over the product's search), paired against the first."""
    from blobzero.arena import solo_variants
    from plumbing.config import load
    from selfplay_client.evaluator import UniformEvaluator

    cfg = load()
    model = Path(args.model or Path(args.data) / "world.onnx").with_suffix(".onnx")
    variants = {}
    for name, settings in parse_variants(args.variants).items():
        search = cfg.search.build(for_evaluation=True, preset=args.search, **settings)
        inner = UniformEvaluator()
        if args.network:                       # the searcher's own BlobNet instead of uniform priors
            from selfplay_client.evaluator import OrtEvaluator
            inner = OrtEvaluator(args.network, intra_op_threads=args.threads)
        if search.beliefs == "learned":        # the belief model answers beside the uniform priors
            from blobzero.learned_beliefs import BeliefEvaluator
            inner = BeliefEvaluator(inner, Path(args.beliefs_model))
        if not search.uses_world_values:
            variants[name] = (search, inner)
            continue
        values = model
        if args.triton:
            from selfplay_client.triton_evaluator import TritonWorldValues
            values = TritonWorldValues(args.triton)
        variants[name] = (search, WorldEvaluator(inner, values, threads=args.threads))
    from blobzero.arena import deal_sets
    sets = deal_sets(args.arena_sets) if args.arena_sets else [(args.arena_seed, args.arena_deals)]
    per_deal = {}
    rows = solo_variants(variants, args.arena_deals, args.arena_seed, args.players, args.cards,
                         log=lambda row: print(json.dumps(row), file=sys.stderr), sets=sets,
                         per_deal_out=per_deal)
    return {"deals": sum(n for _, n in sets), "sets": sets, "table": f"{args.players}x{args.cards}",
            "opponent": "expert", "model": str(model), "network": args.network or "uniform", "variants": rows,
            "per_deal": {name: [round(x, 4) for x in values] for name, values in per_deal.items()}}


def publish(args) -> dict:
    """Publish DATA/world.onnx (or ``--model``) as the next ``blobworld`` version of ``--repo``
    and write the model's config there (``--flavour``: the local server's generated one, or the
    committed production one)."""
    from plumbing import triton_config
    from plumbing.model_repository import publish_version, write_config, write_local_config
    from plumbing.netspec import WORLD_MODEL_NAME
    from plumbing.storage import join
    if not args.repo:
        raise ValueError("publish needs --repo (the Triton model repository, a directory or s3://...)")
    model = Path(args.model or Path(args.data) / "world.onnx").with_suffix(".onnx")
    version = publish_version(args.repo, model, keep_last=args.keep, model_name=WORLD_MODEL_NAME)
    where = join(args.repo, WORLD_MODEL_NAME)
    if args.flavour == "local":
        write_local_config(where, model_name=WORLD_MODEL_NAME)
    else:
        write_config(where, triton_config.committed_config_path(WORLD_MODEL_NAME).read_text())
    return {"model": WORLD_MODEL_NAME, "version": version, "repository": str(args.repo),
            "flavour": args.flavour}


def parse_variants(text: str) -> dict[str, dict]:
    """``"a=rollout:expert;b=rollout:world,determinizations:6"`` -> {"a": {...}, "b": {...}}
    (values parsed as JSON where they parse, else kept as strings)."""
    variants = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, body = part.partition("=")
        settings = {}
        for item in filter(None, body.split(",")):
            key, sep, value = item.partition(":")
            if not sep:
                raise ValueError(f"variant {name!r}: {item!r} is not key:value")
            try:
                settings[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                settings[key.strip()] = value.strip()
        variants[name.strip()] = settings
    if not variants:
        raise ValueError("no variants given")
    return variants


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("make", "train", "report", "all", "arena", "publish"))
    parser.add_argument("--data", "--out", dest="data", default="runs/worlds",
                        help="data directory (default: %(default)s)")
    parser.add_argument("--model", help="model file (default: DATA/world.pt, and .onnx beside it)")
    parser.add_argument("--players", type=int, default=4)
    parser.add_argument("--cards", type=int, default=5)
    parser.add_argument("--source", choices=("explored", "expert"), default="explored",
                        help="make: explored worlds (random moves before the labelled ply) or "
                             "expert's own games (default: %(default)s)")
    parser.add_argument("--epsilon", type=float, default=0.1,
                        help="make: chance of a random move before the labelled ply (default: %(default)s)")
    parser.add_argument("--tail", type=int, default=3,
                        help="make: up to this many random moves just before it (default: %(default)s)")
    parser.add_argument("--train-rounds", type=int, default=120000)
    parser.add_argument("--heldout-rounds", type=int, default=1000)
    parser.add_argument("--train-seed", type=int, default=1_000_000)
    parser.add_argument("--heldout-seed", type=int, default=2_000_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write the result to FILE")
    parser.add_argument("--arena-deals", type=int, default=600, help="arena: duplicate deals")
    parser.add_argument("--arena-seed", type=int, default=3_000_000)
    parser.add_argument("--arena-sets", metavar="SEED:DEALS,...",
                        help="arena: pooled duplicate-deal sets instead of --arena-seed/--arena-deals "
                             "(the standard 1,600: 4242:600,777:1000)")
    parser.add_argument("--search", default="medium", help="arena: search size preset")
    parser.add_argument("--triton", metavar="HOST:PORT",
                        help="arena: ask the world values of the blobworld model this Triton serves "
                             "(default: the ONNX file, in this process)")
    parser.add_argument("--network", metavar="ONNX",
                        help="arena: the searcher's BlobNet (default: none, uniform priors and values)")
    parser.add_argument("--beliefs-model", default="runs/beliefs/belief.pt",
                        help="arena: the belief model for variants with beliefs:learned "
                             "(`blobzero beliefs all` makes it; default: %(default)s)")
    parser.add_argument("--repo", help="publish: the Triton model repository")
    parser.add_argument("--flavour", choices=("local", "production"), default="local",
                        help="publish: which config to write beside the version (default: %(default)s)")
    parser.add_argument("--keep", type=int, default=3, help="publish: versions to keep (default: %(default)s)")
    parser.add_argument("--variants", default="playout=rollout:expert;world=rollout:world",
                        help="arena: NAME=key:value,...;... settings over the product's search "
                             "(default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    from plumbing.fsio import atomic_write_text
    from plumbing.model_repository import ModelRepositoryError
    try:
        results = {}
        if args.action in ("make", "all"):
            results["make"] = make(args)
        if args.action in ("train", "all"):
            results["train"] = train_command(args)
        if args.action in ("report", "all"):
            results["report"] = report(args)
        if args.action == "arena":
            results["arena"] = arena(args)
        if args.action == "publish":
            results["publish"] = publish(args)
        result = results[args.action] if args.action != "all" else results
        if args.json:       # the file keeps everything, per-deal differences included
            atomic_write_text(args.json, json.dumps(result) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "per_deal"}))
    except (ValueError, FileNotFoundError, ModelRepositoryError) as exc:
        print(f"blobzero worlds: {exc}", file=sys.stderr)
        return 2
    return 0
