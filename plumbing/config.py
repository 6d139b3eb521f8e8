"""One configuration for every service (self-play, trainer, server, arena, the local loop).

Layers, later ones win:
  1. defaults (the dataclasses below; ``config/blobzero.toml`` states them explicitly),
  2. a TOML file (``--config PATH`` or ``BLOBZERO_CONFIG``),
  3. environment variables ``BLOBZERO__<SECTION>__<KEY>=value`` (e.g. ``BLOBZERO__TRITON__URL``),
  4. command-line ``--set section.key=value`` (repeatable).
Everything is validated at start; an unknown or bad key is an error that names it.
"""
from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import math
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from blobcore.search_config import FIELDS as SEARCH_FIELDS
from blobcore.search_config import PRESET_SETTINGS
from blobcore.search_config import SIZES as SEARCH_SIZES
from blobcore.search_config import SearchConfig, batch_capacity
from plumbing.netspec import MODEL_NAME

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "blobzero.toml"
ENV_PREFIX = "BLOBZERO__"
#: The served model's config: its max_batch_size bounds the positions one request may carry.
MODEL_CONFIG = Path(__file__).resolve().parents[1] / "model_repository" / MODEL_NAME / "config.pbtxt"
#: Characters a client id (part of every shard name) may use.
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key."""


DEAL_MODES = ("range", "schedule")


@dataclass(frozen=True)
class TableSection:
    """The tables and deal sizes self-play deals; one network learns all of them (docs/tables.md).

    players: one count ("4"), a range ("3-8") or a list ("3,4,6"; TOML lists work too).
    player_weights: relative frequency of each player count, in the order of ``players``
        ("" = equal).
    deal: "range" draws the cards per seat uniformly from cards_min..cards_max (which must fit
        every player count); "schedule" draws deal sizes in proportion to how often they occur
        in a full game starting at ``start_cards`` (capped at 52 // N; 0 = the largest deal).
    full_games: deal complete games (every round of the schedule in order, with the game's
        scores in each observation) instead of independent rounds; needs deal = "schedule".
    """
    players: str = "4"
    player_weights: str = ""
    cards_min: int = 5
    cards_max: int = 5
    deal: str = "range"
    start_cards: int = 0
    full_games: bool = False

    def validate(self) -> None:
        counts = self.player_counts()
        self.weights()
        _require(self.deal in DEAL_MODES, "table.deal", f"must be one of {DEAL_MODES}")
        if self.deal == "range":
            top = min(52 // n for n in counts)
            crowded = max(counts)
            _require(1 <= self.cards_min <= top, "table.cards_min",
                     f"must be 1..{top} (the most cards each of {crowded} players can hold)")
            _require(self.cards_max <= top, "table.cards_max",
                     f"must be at most {top}: {crowded} players x {self.cards_max} cards needs "
                     f"{crowded * self.cards_max} cards of a 52-card deck")
            _require(self.cards_min <= self.cards_max, "table.cards_max", "must be >= cards_min")
        _require(0 <= self.start_cards <= 17, "table.start_cards",
                 "must be 0 (the largest deal) or 1..17 (capped at 52 // players)")
        _require(not self.full_games or self.deal == "schedule", "table.full_games",
                 'needs table.deal = "schedule" (a full game deals the whole schedule)')

    def player_counts(self) -> tuple[int, ...]:
        """The player counts of ``players``, in order, each once."""
        text = self.players.replace(" ", "")
        try:
            if re.fullmatch(r"\d+-\d+", text):
                low, high = (int(x) for x in text.split("-"))
                counts = tuple(range(low, high + 1))
            else:
                counts = tuple(int(x) for x in text.split(","))
        except ValueError:
            counts = ()
        _require(bool(counts) and len(set(counts)) == len(counts), "table.players",
                 f'must be a count ("4"), a range ("3-8") or a list ("3,4,6") without repeats, '
                 f"got {self.players!r}")
        _require(all(3 <= n <= 8 for n in counts), "table.players", "must be 3..8")
        return counts

    def weights(self) -> tuple[float, ...]:
        """Normalised weight of each player count (equal when ``player_weights`` is empty)."""
        counts = self.player_counts()
        if not self.player_weights.strip():
            return tuple(1.0 / len(counts) for _ in counts)
        try:
            raw = tuple(float(x) for x in self.player_weights.replace(" ", "").split(","))
        except ValueError:
            raw = ()
        _require(len(raw) == len(counts), "table.player_weights",
                 f"must be {len(counts)} comma-separated numbers, one per player count "
                 f"{list(counts)}, got {self.player_weights!r}")
        _require(all(math.isfinite(w) and w >= 0 for w in raw) and sum(raw) > 0,
                 "table.player_weights", "must be non-negative numbers with a positive sum")
        return tuple(w / sum(raw) for w in raw)

    def start_for(self, n_players: int) -> int:
        """The schedule's first (largest) deal for ``n_players``."""
        top = 52 // n_players
        return min(self.start_cards, top) if self.start_cards else top

    def distribution(self) -> tuple[tuple[int, int, float], ...]:
        """Every (players, cards per seat, probability) a dealt round can have; sums to 1."""
        from blobcore.rules import game_schedule

        out = []
        for n, w in zip(self.player_counts(), self.weights()):
            if self.deal == "schedule":
                schedule = game_schedule(n, self.start_for(n))
                sizes = sorted(set(schedule))
                out += [(n, c, w * schedule.count(c) / len(schedule)) for c in sizes]
            else:
                span = self.cards_max - self.cards_min + 1
                out += [(n, c, w / span) for c in range(self.cards_min, self.cards_max + 1)]
        return tuple(row for row in out if row[2] > 0)

    def describe(self) -> str:
        """One line for logs and reports, e.g. "4 players x 5 cards"."""
        counts = self.player_counts()
        who = f"{counts[0]} players" if len(counts) == 1 else f"{self.players} players"
        if self.full_games:
            cap = f" from {self.start_cards}" if self.start_cards else ""
            return f"{who}, full games{cap}"
        if self.deal == "schedule":
            return f"{who}, deal sizes as in full games" + (f" up to {self.start_cards}"
                                                            if self.start_cards else "")
        cards = (f"{self.cards_min}" if self.cards_min == self.cards_max
                 else f"{self.cards_min}-{self.cards_max}")
        return f"{who} x {cards} cards"


#: SearchConfig fields that are not config keys: exploration noise is on for self-play and off
#: for every search that plays to win (``SearchSection.build(for_evaluation=True)``); labelled
#: leaf worlds are self-play's (``selfplay.leaf_worlds``).
_SEARCH_NOT_KEYS = ("add_noise", "leaf_samples")


def _search_section_fields() -> list:
    """``[search]``'s keys: ``preset``, then every SearchConfig field with SearchConfig's own
    default (determinizations and simulations default to 0 = the preset's size)."""
    hints = typing.get_type_hints(SearchConfig)
    out = [("preset", str, field(default="medium"))]
    for f in dataclasses.fields(SearchConfig):
        if f.name in _SEARCH_NOT_KEYS:
            continue
        default = 0 if f.name in ("determinizations", "simulations") else f.default
        out.append((f.name, hints[f.name], field(default=default)))
    return out


class _SearchSectionMethods:
    def validate(self) -> None:
        _require(self.preset in SEARCH_SIZES, "search.preset", f"must be one of {', '.join(SEARCH_SIZES)}")
        try:
            self.build()
        except ValueError as exc:
            raise ConfigError(f"search: {exc}") from None

    def build(self, for_evaluation: bool = False, preset: str | None = None,
              **settings) -> SearchConfig:
        """The one place a ``SearchConfig`` is made from the config: self-play, the arena, the
        strength tracker, ``blobzero game``, the agent and the benchmarks all call this, and
        the evaluation variant (no noise, the best move) is made here too. ``preset`` replaces
        the configured preset's size (D x S) — explicit determinizations/simulations still win
        when no preset is passed — and keeps every other setting. ``settings`` (SearchConfig
        field names) replace the section's values, e.g. a request's own simulations."""
        if preset is not None and preset not in SEARCH_SIZES:
            raise ValueError(f"unknown search preset {preset!r}; choose one of {', '.join(SEARCH_SIZES)}")
        unknown = sorted(set(settings) - set(SEARCH_FIELDS))
        if unknown:
            raise ValueError(f"unknown search setting(s) {', '.join(unknown)}")
        d, s = SEARCH_SIZES[preset or self.preset]
        values = {name: getattr(self, name) for name in SEARCH_FIELDS if hasattr(self, name)}
        values["determinizations"] = (self.determinizations if preset is None else 0) or d
        values["simulations"] = (self.simulations if preset is None else 0) or s
        implied = PRESET_SETTINGS.get(preset or self.preset, {})     # e.g. easy: random play-outs
        cfg = SearchConfig(**{**values, **implied, **settings})
        return cfg.for_evaluation() if for_evaluation else cfg


#: ``[search]``: a preset size plus every setting of ``blobcore.search_config.SearchConfig``,
#: derived from it (one list of fields, one set of defaults: the product's search).
SearchSection = dataclasses.make_dataclass(
    "SearchSection", _search_section_fields(), bases=(_SearchSectionMethods,), frozen=True,
    namespace={"__doc__": "Search preset (easy 1x4 and normal 1x24 with random play-outs, light 2x20, "
                          "medium 3x30, heavy 5x50) plus every "
                          "SearchConfig setting (blobcore/search_config.py states each).",
               "__module__": __name__})


@dataclass(frozen=True)
class NetworkSection:
    preset: str = "small"          # tiny | small | full (trainer/blobnet.py)
    value_head: str = "tricks"     # tricks (value derived from predicted trick counts) | scalar

    def validate(self) -> None:
        _require(self.preset in ("tiny", "small", "full"), "network.preset", "must be tiny, small or full")
        _require(self.value_head in ("tricks", "scalar"), "network.value_head", "must be tricks or scalar")


@dataclass(frozen=True)
class TritonSection:
    url: str = "127.0.0.1:8001"    # gRPC host:port
    http_port: int = 8000          # local server only (blobzero serve / the loop)
    grpc_port: int = 8001
    metrics_port: int = 8002
    model_name: str = "blobnet"
    flavour: str = "local"         # local (python backend) | production (onnxruntime, GPU)
    max_in_flight: int = 4
    reconnect_timeout_s: float = 5.0   # per attempt; self-play then logs and keeps retrying
    # production flavour only (the trainer renders blobnet/config.pbtxt; docs/serving.md):
    gpu_instances: int = 1         # model instances per GPU (overlap one's I/O with another's compute)
    accelerator: str = "none"      # none | tensorrt_fp16 (ORT's TensorRT provider in FP16)

    def validate(self) -> None:
        host, _, port = self.url.rpartition(":")
        _require(bool(host) and port.isdigit() and 0 < int(port) < 65536, "triton.url",
                 f"must be host:port with a port 1..65535, got {self.url!r}")
        _require(bool(_NAME_RE.match(self.model_name)), "triton.model_name",
                 "must be a directory name (letters, digits, '_', '.', '-')")
        _require(self.flavour in ("local", "production"), "triton.flavour", "must be local or production")
        for key in ("http_port", "grpc_port", "metrics_port"):
            _require(0 < getattr(self, key) < 65536, f"triton.{key}", "must be a port 1..65535")
        _require(1 <= self.max_in_flight <= 256, "triton.max_in_flight", "must be 1..256")
        _require(0 < self.reconnect_timeout_s <= 3600, "triton.reconnect_timeout_s",
                 "must be in (0, 3600] seconds")
        _require(1 <= self.gpu_instances <= 16, "triton.gpu_instances", "must be 1..16")
        _require(self.accelerator in ("none", "tensorrt_fp16"), "triton.accelerator",
                 "must be none or tensorrt_fp16")


#: The location schemes the storage layer opens (plumbing/storage.py ``open_store``).
STORAGE_SCHEMES = ("", "file", "s3")
#: Where ``storage.url`` puts each kind of data: key -> the name under the url.
STORAGE_LAYOUT = (("games_dir", "games"), ("model_repository", "model_repository"),
                  ("checkpoint_dir", "checkpoints"))


def location_under(url: str, name: str) -> str:
    """``<url>/<name>`` for ``storage.url`` (a local path, ``file:///path`` -> its path, or
    ``s3://bucket/prefix``); string work only: the schema opens nothing."""
    base = url[len("file://"):] if url.startswith("file://") else url
    return f"{base.rstrip('/')}/{name}"


def location_problem(location: str) -> str | None:
    """None when ``location`` is a usable storage location, else why not."""
    scheme, sep, rest = location.partition("://")
    if not sep:
        return None
    if scheme not in STORAGE_SCHEMES:
        return f"must be a local path, file:///path or s3://bucket/prefix, got scheme {scheme!r}"
    if scheme == "s3" and not rest.partition("/")[0]:
        return f"must name a bucket (s3://bucket/prefix), got {location!r}"
    return None


@dataclass(frozen=True)
class StorageSection:
    """Where games, the model repository and checkpoints live (plumbing/storage.py opens them;
    ``storage.locations(cfg.storage)`` also gives the archive of published versions and where
    strength results go).

    url: "" = the three locations below as given (the default, what ``make run`` uses); else a
        local path, ``file:///path`` or ``s3://bucket/prefix``, which places them at
        ``<url>/games``, ``<url>/model_repository`` and ``<url>/checkpoints`` (overriding the
        three keys). S3 endpoint and credentials come from the standard AWS environment
        (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
    Each of games_dir, model_repository, checkpoint_dir may also be an ``s3://`` URL itself."""
    url: str = ""
    games_dir: str = "var/games"
    model_repository: str = "var/model_repository"
    checkpoint_dir: str = "var/checkpoints"
    # Retention (trainer/retention.py): shards the trainer has ingested and no longer needs for
    # its window are deleted once older than retain_hours, and oldest first while the games
    # directory holds more than retain_gb. 0 = no limit of that kind (both 0: keep everything).
    retain_hours: float = 24.0
    retain_gb: float = 0.0
    # The trainer's archive of published versions (<checkpoint_dir>/versions, plumbing/archive.py):
    # after each publish only the newest archive_keep versions stay, with every archive_every-th
    # as a milestone and version 1 (0 = keep every version / no milestones).
    archive_keep: int = 0
    archive_every: int = 0

    def __post_init__(self):
        if self.url:
            for key, name in STORAGE_LAYOUT:
                object.__setattr__(self, key, location_under(self.url, name))

    def validate(self) -> None:
        for key in ("url", "games_dir", "model_repository", "checkpoint_dir"):
            _require(bool(getattr(self, key)) or key == "url", f"storage.{key}", "must not be empty")
            why = location_problem(getattr(self, key))
            _require(why is None, "storage.url" if self.url else f"storage.{key}", why or "")
        _require(0 <= self.retain_hours <= 24 * 365, "storage.retain_hours",
                 "must be 0 (keep by age) .. 8760 hours")
        _require(0 <= self.retain_gb <= 1_000_000, "storage.retain_gb",
                 "must be 0 (no size cap) .. 1000000 GB")
        _require(self.archive_keep == 0 or 2 <= self.archive_keep <= 1_000_000, "storage.archive_keep",
                 "must be 0 (keep every version) or 2..1000000 (the newest and the one the "
                 "strength tracker may still be measuring)")
        _require(0 <= self.archive_every <= 1_000_000, "storage.archive_every",
                 "must be 0 (no milestones) .. 1000000")


@dataclass(frozen=True)
class MetricsSection:
    host: str = "127.0.0.1"        # containers set 0.0.0.0
    selfplay_port: int = 9100
    trainer_port: int = 9101
    strength_port: int = 9102      # blobzero strength --watch (the loop's strength tracker)
    agent_port: int = 9103         # blobzero agent

    def validate(self) -> None:
        _require(_is_host(self.host), "metrics.host",
                 f"must be an IP address or a host name (no port, no scheme), got {self.host!r}")
        for key in ("selfplay_port", "trainer_port", "strength_port", "agent_port"):
            _require(0 <= getattr(self, key) < 65536, f"metrics.{key}", "must be a port (0 = off)")


@dataclass(frozen=True)
class SelfplaySection:
    games_in_flight: int = 256
    rounds_per_shard: int = 64
    shard_max_seconds: float = 30.0    # flush a partial shard after this long
    client_id: str = ""                # "" = the host name (a stable id; see plumbing/shards.py)
    seed: int = -1                     # -1 = from the clock
    opponent: str = ""                 # a built-in player (blobcore/players.py) in some seats; "" = pure self-play
    opponent_share: float = 0.0        # chance that each seat is that player (one seat always searches)
    imitate: bool = True               # train on the opponent's moves too (imitation targets)
    rollout: str = ""                  # "" = search.rollout; "none" trains on the plain search while
                                       # the arena, strength tracker and agent keep [search]'s play-outs
    leaf_worlds: int = 64              # play-outs per round recorded as labelled worlds for the
                                       # world-value model (trainer/leaf_worlds.py); 0 = none

    def validate(self) -> None:
        from blobcore.players import PLAYERS
        _require(self.opponent in ("", *PLAYERS), "selfplay.opponent",
                 f"must be empty (pure self-play) or a built-in player: {', '.join(PLAYERS)}")
        _require(0.0 <= self.opponent_share < 1.0, "selfplay.opponent_share", "must be in [0, 1)")
        _require(self.opponent_share == 0.0 or bool(self.opponent), "selfplay.opponent",
                 "must name a built-in player when selfplay.opponent_share > 0")
        _require(1 <= self.games_in_flight <= 16384, "selfplay.games_in_flight", "must be 1..16384")
        _require(1 <= self.rounds_per_shard <= 100_000, "selfplay.rounds_per_shard", "must be 1..100000")
        _require(0 < self.shard_max_seconds <= 86_400, "selfplay.shard_max_seconds",
                 "must be in (0, 86400] seconds")
        _require(not self.client_id or bool(CLIENT_ID_RE.match(self.client_id)), "selfplay.client_id",
                 "must be empty (= the host name) or 1..64 letters, digits, '_', '.', '-'")
        _require(self.seed >= -1, "selfplay.seed", "must be >= 0, or -1 for a seed from the clock")
        _require(0 <= self.leaf_worlds <= 64, "selfplay.leaf_worlds", "must be 0..64")
        from blobcore.search.parts import leaf_value_names
        _require(self.rollout in ("", *leaf_value_names()), "selfplay.rollout",
                 f"must be empty (= search.rollout) or one of {', '.join(leaf_value_names())}")


@dataclass(frozen=True)
class TrainerSection:
    batch_size: int = 256
    learning_rate: float = 1e-3
    learning_rate_half_life: int = 0   # optimiser steps; 0 = constant learning_rate (learning_rate_at)
    learning_rate_min: float = 1e-5    # the halving learning rate stops here
    weight_decay: float = 1e-4
    value_loss_weight: float = 1.0
    trick_loss_weight: float = 1.0     # cross-entropy of the trick-count head (value_head = tricks)
    value_target_search: float = 0.0   # value target = (1 - this) x outcome + this x search root value
    steps_per_publish: int = 200
    keep_versions: int = 5
    window_min: int = 20_000           # positions; the window grows with data (KataGo style)
    window_max: int = 500_000
    window_growth: float = 0.25        # window = min(max, max(min, growth * positions seen))
    sample_reuse: float = 4.0          # train at most this many samples per ingested position
    min_positions: int = 2_000         # wait for this much data before the first step
    checkpoint_every: int = 200        # steps
    threads: int = 1                   # torch intra-op threads
    seed: int = 0
    device: str = "auto"               # auto (CUDA when present) | cpu | cuda (trainer/device.py)
    human_share: float = 0.0           # share of each batch from human games (agent.record_human_games); 0 = none
    # the world-value model (trainer/world_training.py), learned from self-play's labelled leaf
    # worlds (selfplay.leaf_worlds) beside BlobNet and published with each version as blobworld
    world_value: bool = True
    world_hidden: int = 256            # width of each hidden layer
    world_depth: int = 2               # hidden layers
    world_batch_size: int = 1024       # worlds per step; one world step per BlobNet step
    world_learning_rate: float = 1e-3
    world_window: int = 1_000_000      # newest labelled worlds sampled from
    world_sample_reuse: float = 16.0   # train on each labelled world this many times on average, at most
    world_games: bool = False          # each round's own deal and play is a labelled world too

    def validate(self) -> None:
        _require(1 <= self.batch_size <= 65_536, "trainer.batch_size", "must be 1..65536")
        _require(16 <= self.world_hidden <= 4096, "trainer.world_hidden", "must be 16..4096")
        _require(1 <= self.world_depth <= 8, "trainer.world_depth", "must be 1..8")
        _require(1 <= self.world_batch_size <= 65_536, "trainer.world_batch_size", "must be 1..65536")
        _require(0 < self.world_learning_rate <= 1, "trainer.world_learning_rate", "must be in (0, 1]")
        _require(self.world_sample_reuse > 0, "trainer.world_sample_reuse", "must be > 0")
        _require(1 <= self.world_window <= 20_000_000, "trainer.world_window",
                 "must be 1..20000000 (allocated up front, ~200 bytes a world)")
        _require(0 < self.learning_rate <= 1, "trainer.learning_rate", "must be in (0, 1]")
        _require(self.learning_rate_half_life >= 0, "trainer.learning_rate_half_life",
                 "must be >= 0 optimiser steps (0 = a constant learning rate)")
        _require(self.learning_rate_min > 0, "trainer.learning_rate_min", "must be > 0")
        _require(self.learning_rate_half_life == 0 or self.learning_rate_min <= self.learning_rate,
                 "trainer.learning_rate_min",
                 f"must be <= trainer.learning_rate ({self.learning_rate:g}) when "
                 f"trainer.learning_rate_half_life is set")
        _require(0 <= self.value_target_search <= 1, "trainer.value_target_search",
                 "must be in [0, 1] (0 = the outcome alone, 1 = the search value alone)")
        for key in ("weight_decay", "value_loss_weight", "trick_loss_weight"):
            _require(0 <= getattr(self, key) <= 1000, f"trainer.{key}", "must be in [0, 1000]")
        _require(self.steps_per_publish >= 1, "trainer.steps_per_publish", "must be >= 1")
        _require(self.keep_versions >= 1, "trainer.keep_versions", "must be >= 1")
        _require(self.window_max <= 10_000_000, "trainer.window_max",
                 "must be <= 10000000 (the window is allocated up front)")
        _require(1 <= self.window_min <= self.window_max, "trainer.window_min", "must be 1..window_max")
        _require(self.min_positions >= 0, "trainer.min_positions", "must be >= 0")
        _require(self.seed >= 0, "trainer.seed", "must be >= 0")
        _require(0 < self.window_growth <= 1, "trainer.window_growth", "must be in (0, 1]")
        _require(self.sample_reuse > 0, "trainer.sample_reuse", "must be > 0")
        _require(self.checkpoint_every >= 1, "trainer.checkpoint_every", "must be >= 1")
        _require(1 <= self.threads <= 256, "trainer.threads", "must be 1..256")
        _require(self.device in ("auto", "cpu", "cuda"), "trainer.device", "must be auto, cpu or cuda")
        _require(0 <= self.human_share <= 0.5, "trainer.human_share",
                 f"must be in [0, 0.5] (the share of each training batch drawn from human games; "
                 f"0 = none), got {self.human_share!r}")

    def learning_rate_at(self, step: int) -> float:
        """The learning rate of optimiser step ``step`` (0-based, the trainer's global step
        count, so it carries over a restart): ``learning_rate`` halved every
        ``learning_rate_half_life`` steps, never below ``learning_rate_min``; constant
        ``learning_rate`` when the half-life is 0."""
        if self.learning_rate_half_life == 0:
            return self.learning_rate
        return max(self.learning_rate_min,
                   self.learning_rate * 0.5 ** (step / self.learning_rate_half_life))


@dataclass(frozen=True)
class ArenaSection:
    rounds: int = 400                  # duplicate deals; each is played once per seat rotation
    games_in_flight: int = 256
    search_preset: str = "medium"     # the search self-play trains with
    players: int = 0                   # the arena's table; 0 = the first of table.players
    cards: int = 0                     # 0 = table.cards_max, or a middle deal of the schedule

    def validate(self) -> None:
        _require(self.rounds >= 1, "arena.rounds", "must be >= 1")
        _require(self.players == 0 or 3 <= self.players <= 8, "arena.players",
                 "must be 0 (the first of table.players) or 3..8")
        _require(0 <= self.cards <= 52 // max(self.players, 3), "arena.cards",
                 f"must be 0 (from [table]) or 1..{52 // max(self.players, 3)}")
        _require(1 <= self.games_in_flight <= 16384, "arena.games_in_flight", "must be 1..16384")
        _require(self.search_preset in SEARCH_SIZES, "arena.search_preset",
                 f"must be one of {', '.join(SEARCH_SIZES)}")


#: ``agent.triton_priority``: the agent's requests below self-play's, or level with them
#: (plumbing/triton_config.py maps them to the model's Triton priority levels).
AGENT_TRITON_PRIORITIES = ("low", "equal")


@dataclass(frozen=True)
class AgentSection:
    """``blobzero agent``: the trained agent as a gRPC service and a web page (docs/agent.md).

    The network: ``triton_url`` (host:port of Triton's gRPC) when set; else ``onnx_file`` in
    process when set; else the versions of ``storage.model_repository`` in process (uniform
    priors while there is none). ``model`` is the version a request without one gets."""
    host: str = "127.0.0.1"          # bind address of the gRPC and web ports (containers: 0.0.0.0)
    grpc_port: int = 50051
    http_port: int = 8080            # the play page and the JSON API; 0 = off
    triton_url: str = ""             # "" = no Triton: ONNX Runtime in this process
    triton_priority: str = "low"     # low: Triton serves self-play's queued requests first | equal
    onnx_file: str = ""              # "" = the model repository's versions
    model: str = "latest"            # latest | a version number
    search_preset: str = "medium"    # requests and model seats without a preset
    max_simulations: int = 800       # per determinization, the most a request may ask for
    slots: int = 256                 # positions searched at once per search setting
    workers: int = 512               # gRPC threads: requests answered at once
    request_timeout_s: float = 60.0
    max_games: int = 1000            # hosted games held in memory
    game_ttl_s: float = 21600.0      # an idle hosted game is dropped after this long
    ort_threads: int = 1             # ONNX Runtime intra-op threads (in-process network)
    # Running it in public (docs/agent.md). The token itself is never a config key: it comes
    # from $BLOBZERO_AGENT_TOKEN or from the file named here (a mounted secret).
    token_file: str = ""             # "" = no token (unless $BLOBZERO_AGENT_TOKEN is set)
    tls_cert: str = ""               # PEM certificate chain for gRPC and the page; "" = plain text
    tls_key: str = ""                # its PEM private key
    rate_limit: float = 0.0          # requests per second per client (0 = no limit)
    rate_burst: int = 20             # requests one client may make at once above the rate
    cost_per_minute: float = 0.0     # simulations x determinizations one client may search per minute
                                     # on one replica (0 = no limit); N replicas: up to N x this per client
    max_request_cost: int = 0        # the most simulations x determinizations one search may cost (0 = no cap)
    trusted_proxies: str = ""        # addresses/CIDRs of proxies whose X-Forwarded-For names the client
    max_games_per_client: int = 20   # hosted games one client IP holds; a new one replaces its oldest
    allowed_origins: str = ""        # extra origins (comma-separated) the JSON API accepts besides its own
    http_workers: int = 32           # JSON API calls answered at once (more wait; twice that: 503)
    http_timeout_s: float = 10.0     # the most a client may take to send a request body
    model_deadline_s: float = 10.0   # the most one network evaluation may take before its requests fail
    max_models: int = 4              # model versions with an evaluator at once (least recently used go)
    games_dir: str = ""              # hosted games; "" = <parent of storage.games_dir>/agent/games (local or s3://)
    keep_games: int = 10000          # stored hosted games kept at most (0 = no count limit)
    keep_games_days: float = 30.0    # a stored game idle longer is deleted (0 = no age limit)
    record_human_games: bool = False # finished human games -> training records in <run>/human_games/ (opt-in)
    keep_human_games: int = 20000    # recorded human games kept at most, oldest deleted first (0 = no count limit)
    keep_human_games_days: float = 180.0  # a recorded human game older than this is deleted (0 = no age limit)

    def validate(self) -> None:
        _require(_is_host(self.host), "agent.host",
                 f"must be an IP address or a host name (no port, no scheme), got {self.host!r}")
        _require(bool(self.tls_cert) == bool(self.tls_key), "agent.tls_cert",
                 "and agent.tls_key must be set together (certificate and private key files)")
        _require(0 <= self.rate_limit <= 1e6, "agent.rate_limit", "must be 0 (no limit) .. 1000000 per second")
        _require(1 <= self.rate_burst <= 1_000_000, "agent.rate_burst", "must be 1..1000000")
        _require(1 <= self.max_games_per_client <= 1_000_000, "agent.max_games_per_client",
                 "must be 1..1000000")
        _require(all(re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", o.strip())
                     for o in self.allowed_origins.split(",") if o.strip()), "agent.allowed_origins",
                 "must be comma-separated origins like https://play.example.org")
        _require(1 <= self.http_workers <= 4096, "agent.http_workers", "must be 1..4096")
        _require(0 < self.http_timeout_s <= 600, "agent.http_timeout_s", "must be in (0, 600] seconds")
        _require(0 < self.model_deadline_s <= 3600, "agent.model_deadline_s", "must be in (0, 3600] seconds")
        _require(1 <= self.max_models <= 64, "agent.max_models", "must be 1..64")
        _require(0 <= self.cost_per_minute <= 1e12, "agent.cost_per_minute",
                 "must be 0 (no limit) .. 1e12 simulations x determinizations per minute")
        _require(0 <= self.max_request_cost <= 1_000_000_000, "agent.max_request_cost",
                 "must be 0 (no cap) .. 1000000000")
        for item in filter(None, (part.strip() for part in self.trusted_proxies.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(f"config key 'agent.trusted_proxies' must be comma-separated addresses "
                                  f"or CIDRs, got {item!r}") from None
        if self.games_dir:
            why = location_problem(self.games_dir)
            _require(why is None, "agent.games_dir", why or "")
        _require(0 <= self.keep_games <= 10_000_000, "agent.keep_games", "must be 0 (no limit) .. 10000000")
        _require(0 <= self.keep_games_days <= 3650, "agent.keep_games_days", "must be 0 (no limit) .. 3650 days")
        _require(0 <= self.keep_human_games <= 10_000_000, "agent.keep_human_games",
                 "must be 0 (no limit) .. 10000000")
        _require(0 <= self.keep_human_games_days <= 3650, "agent.keep_human_games_days",
                 "must be 0 (no limit) .. 3650 days")
        _require(0 < self.grpc_port < 65536, "agent.grpc_port", "must be a port 1..65535")
        _require(0 <= self.http_port < 65536, "agent.http_port", "must be a port (0 = off)")
        if self.triton_url:
            host, _, port = self.triton_url.rpartition(":")
            _require(bool(host) and port.isdigit() and 0 < int(port) < 65536, "agent.triton_url",
                     f"must be empty or host:port with a port 1..65535, got {self.triton_url!r}")
        _require(self.triton_priority in AGENT_TRITON_PRIORITIES, "agent.triton_priority",
                 f"must be low (self-play first) or equal, got {self.triton_priority!r}")
        _require(self.model == "latest" or (self.model.isdigit() and int(self.model) >= 1),
                 "agent.model", f"must be latest or a version number >= 1, got {self.model!r}")
        _require(self.search_preset in SEARCH_SIZES, "agent.search_preset",
                 f"must be one of {', '.join(SEARCH_SIZES)}")
        _require(1 <= self.max_simulations <= 4096, "agent.max_simulations", "must be 1..4096")
        _require(1 <= self.slots <= 4096, "agent.slots", "must be 1..4096")
        _require(1 <= self.workers <= 4096, "agent.workers", "must be 1..4096")
        _require(0 < self.request_timeout_s <= 3600, "agent.request_timeout_s", "must be in (0, 3600] seconds")
        _require(1 <= self.max_games <= 1_000_000, "agent.max_games", "must be 1..1000000")
        _require(0 < self.game_ttl_s <= 30 * 86400, "agent.game_ttl_s", "must be in (0, 2592000] seconds")
        _require(1 <= self.ort_threads <= 256, "agent.ort_threads", "must be 1..256")


@dataclass(frozen=True)
class WorldsSection:
    """Where the world values come from when a search values its leaves by them
    (``search.rollout = "world"``, or ``selfplay.rollout``): an ONNX file of the world-value model
    (``blobzero worlds all`` makes one), read in process by the arena, ``blobzero game``, the
    strength tracker and self-play; or "triton": the ``blobworld`` model the configured Triton
    serves beside BlobNet (``blobzero worlds publish``); or "version": the world-value model
    the trainer learns and publishes with each network version (``trainer.world_value``):
    version N is seated with blobworld N, self-play asks Triton's newest. "" = none."""
    model: str = ""

    def validate(self) -> None:
        _require(self.model in ("", "triton", "version") or self.model.endswith(".onnx"), "worlds.model",
                 'must be "" (none), "triton", "version" or the path of a world-value .onnx file')


@dataclass(frozen=True)
class BeliefsSection:
    """The belief model for ``search.beliefs = "learned"``: its ``.pt`` file (``blobzero beliefs
    all`` makes one), read in process by the arena, ``blobzero game``, the strength tracker and
    the agent; self-play does not serve it (it is not served by Triton yet). "" = none."""
    model: str = ""

    def validate(self) -> None:
        _require(self.model == "" or self.model.endswith(".pt"), "beliefs.model",
                 'must be "" (none) or the path of a belief model .pt file')


@dataclass(frozen=True)
class Config:
    table: TableSection = field(default_factory=TableSection)
    search: SearchSection = field(default_factory=SearchSection)
    network: NetworkSection = field(default_factory=NetworkSection)
    triton: TritonSection = field(default_factory=TritonSection)
    storage: StorageSection = field(default_factory=StorageSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    selfplay: SelfplaySection = field(default_factory=SelfplaySection)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    arena: ArenaSection = field(default_factory=ArenaSection)
    agent: AgentSection = field(default_factory=AgentSection)
    worlds: WorldsSection = field(default_factory=WorldsSection)
    beliefs: BeliefsSection = field(default_factory=BeliefsSection)

    def validate(self) -> "Config":
        for f in fields(self):
            getattr(self, f.name).validate()
        for section, search in (("search", self.search.build()), ("selfplay", self.selfplay_search())):
            key, what = ((f"{section}.rollout", '"world"') if search.rollout == "world"
                         else ("search.world_share", f"{search.world_share:g}"))
            _require(not search.uses_world_values or self.worlds.model, key,
                     f"{what} needs a world-value model: set worlds.model to its .onnx file "
                     '(`blobzero worlds all` makes one), "triton" or "version" (docs/search.md, '
                     '"World values")')
        _require(self.search.beliefs != "learned" or self.beliefs.model, "search.beliefs",
                 '"learned" needs a belief model: set beliefs.model to its .pt file (`blobzero beliefs '
                 'all` makes one; docs/beliefs.md); self-play does not serve it yet')
        n, cards = self.arena_table()
        _require(n * cards <= 52, "arena.cards", f"{cards} cards for {n} players is more than 52")
        # One request carries the leaves of half the rounds in flight (two halves double-buffer);
        # Triton rejects a request over the model's max_batch_size (mid-run, not at start).
        rows = batch_capacity(-(-self.selfplay.games_in_flight // 2), self.selfplay_search())
        limit = max_batch_size()
        _require(rows <= limit, "selfplay.games_in_flight",
                 f"puts up to {rows} positions in one request (half the rounds in flight x "
                 f"search.leaves_per_game, plus search.policy_inference rows), over the model's "
                 f"max_batch_size {limit} "
                 f"({MODEL_CONFIG.relative_to(MODEL_CONFIG.parents[2])}); use at most "
                 f"{self._most_games_in_flight(limit)}")
        return self

    def _most_games_in_flight(self, limit: int) -> int:
        """The largest selfplay.games_in_flight whose requests fit ``limit`` rows."""
        search = self.selfplay_search()
        games = 2 * (limit // search.leaves_per_game)
        while games > 1 and batch_capacity(-(-games // 2), search) > limit:
            games -= 2
        return games

    def uses_world_values(self) -> bool:
        """Whether a search the config drives (``[search]``, or self-play's) asks world values."""
        return self.search.build().uses_world_values or self.selfplay_search().uses_world_values

    def selfplay_search(self) -> SearchConfig:
        """The search self-play runs: [search], with ``selfplay.rollout`` in place of its
        play-outs when set (big tables train ~20x faster without them on a CPU), keeping
        ``selfplay.leaf_worlds`` of each round's play-outs as labelled worlds."""
        settings = {"rollout": self.selfplay.rollout} if self.selfplay.rollout else {}
        return self.search.build(leaf_samples=self.selfplay.leaf_worlds, **settings)

    def arena_table(self) -> tuple[int, int]:
        """(players, cards per seat) the arena and the strength tracker measure on:
        ``arena.players``/``arena.cards``, else the first player count of [table] with its
        largest range deal, or (deal = "schedule") the middle deal size of its schedule."""
        n = self.arena.players or self.table.player_counts()[0]
        if self.arena.cards:
            return n, self.arena.cards
        if self.table.deal == "range":
            return n, min(self.table.cards_max, 52 // n)
        return n, (self.table.start_for(n) + 1) // 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """The configuration as TOML (round-trips through ``load``)."""
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


def max_batch_size(path: Path = MODEL_CONFIG) -> int:
    """The served model's ``max_batch_size`` (read from its committed config.pbtxt)."""
    match = re.search(r"^max_batch_size:\s*(\d+)", path.read_text(), re.MULTILINE)
    if not match:
        raise ConfigError(f"{path} states no max_batch_size")
    return int(match[1])


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


_HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
#: str keys whose TOML value may be written as a number (``players = 4``, ``model = 7``)
_NUMBER_AS_TEXT = {"table.players", "table.player_weights", "agent.model"}


def _is_host(host: str) -> bool:
    """An IP address (v4 or v6) or an RFC 1123 host name: what a bind address may be."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return 0 < len(host) <= 253 and all(_HOST_LABEL_RE.match(label) for label in host.split("."))


def _require(ok: bool, key: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}' {why}")


def _section_types(section_cls) -> dict[str, type]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in fields(section_cls)}


def _coerce(key: str, raw, typ: type):
    """Convert ``raw`` (TOML value or string from env/CLI) to ``typ`` or raise naming ``key``."""
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return raw.lower() in ("1", "true", "yes", "on")
            raise ValueError
        if typ is int:
            if isinstance(raw, bool):
                raise ValueError
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            return int(raw)
        if typ is float:
            if isinstance(raw, bool):
                raise ValueError
            value = float(raw)
            if not math.isfinite(value):
                raise ConfigError(f"config key '{key}' must be a finite number, got {raw!r}")
            return value
        if typ is str:
            if isinstance(raw, list) and raw and all(isinstance(x, (int, float))
                                                    and not isinstance(x, bool) for x in raw):
                return ",".join(str(x) for x in raw)      # e.g. table.players = [3, 4, 6]
            if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
                raise ValueError
            if not isinstance(raw, str) and key not in _NUMBER_AS_TEXT:
                raise ValueError          # e.g. storage.games_dir = 5: a number is not a path
            return str(raw)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"config key '{key}' must be {typ.__name__}, got {raw!r}")


def _apply(values: dict[str, dict], updates: dict, source: str) -> None:
    sections = {f.name: f.type for f in fields(Config)}
    for section, items in updates.items():
        if section not in sections:
            raise ConfigError(f"unknown config section '{section}' in {source} "
                              f"(known: {', '.join(sorted(sections))})")
        if not isinstance(items, dict):
            raise ConfigError(f"config section '{section}' in {source} must be a table")
        types = _section_types(typing.get_type_hints(Config)[section])
        for key, raw in items.items():
            if key not in types:
                raise ConfigError(f"unknown config key '{section}.{key}' in {source} "
                                  f"(known: {', '.join(sorted(types))})")
            values.setdefault(section, {})[key] = _coerce(f"{section}.{key}", raw, types[key])


def _parse_dotted(assignments: list[str], source: str) -> dict:
    out: dict[str, dict] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot or not section or not key:
            raise ConfigError(f"bad override {item!r} in {source}: use section.key=value")
        out.setdefault(section, {})[key] = value.strip()
    return out


def load(path: str | os.PathLike | None = None, overrides: list[str] | None = None,
         env: dict[str, str] | None = None) -> Config:
    """Build and validate the configuration from the layers described in the module doc."""
    env = os.environ if env is None else env
    values: dict[str, dict] = {}
    path = path or env.get("BLOBZERO_CONFIG")
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}): "
                              f"is it the right file?") from None
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
        _apply(values, data, str(path))
    env_updates: dict[str, dict] = {}
    for name, value in env.items():
        if name.startswith(ENV_PREFIX):
            section, sep, key = name[len(ENV_PREFIX):].lower().partition("__")
            if not sep:
                raise ConfigError(f"bad environment override {name}: use {ENV_PREFIX}SECTION__KEY")
            env_updates.setdefault(section, {})[key] = value
    _apply(values, env_updates, "the environment")
    _apply(values, _parse_dotted(overrides or [], "--set"), "--set")
    hints = typing.get_type_hints(Config)
    sections = {name: hints[name](**values.get(name, {})) for name in hints}
    return Config(**sections).validate()


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--config`` and ``--set`` options every service takes."""
    parser.add_argument("--config", metavar="PATH",
                        help="TOML config file (default: $BLOBZERO_CONFIG, else built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override one config key (repeatable)")


def from_args(args: argparse.Namespace) -> Config:
    return load(args.config, args.overrides)


def from_args_or_exit(args: argparse.Namespace, command: str) -> Config:
    """``from_args`` for a command's main(): a bad config prints one line and exits 2."""
    try:
        return from_args(args)
    except ConfigError as exc:
        import sys
        print(f"blobzero {command}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
