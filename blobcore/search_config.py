"""Search settings shared by self-play, evaluation, the agent and benchmarks: one schema with
one set of defaults, the product's. ``[search]`` in the config is derived from it
(plumbing/config.py), and every program builds its search from that section.

Pure Python: importing this module loads nothing compiled (the config schema imports it).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from blobcore.search.parts import BELIEFS, LEAF_VALUES, ROOT_RULES, leaf_value_names

PERSPECTIVES = ("mover", "searcher")
#: Actions one round can hold (blobcore/rules.pxd MAX_ACTIONS_C: N bids + N x C cards).
MAX_ROUND_ACTIONS = 60


@dataclass(frozen=True)
class SearchConfig:
    """Determinized tree search made of named parts (see docs/search.md). The defaults are
    the product's search: Gumbel root, ``expert`` play-outs, hidden hands weighted by the bids,
    3 determinizations x 30 simulations (the "medium" size).

    determinizations: D, hidden-card samples per decision.
    simulations: S, PUCT simulations per determinization (root visits per sample = S).
    c_puct: exploration constant; values are normalised scores in [0, 1].
    dirichlet_alpha, dirichlet_eps: root noise mixed into the priors (self-play only).
    add_noise: False for evaluation / serving.
    temperature: move-choice temperature for the first ``temperature_moves`` searched
        decisions of a round (0 = always the most visited action).
    leaves_per_game: leaves one game may put into a batch (virtual loss when > 1; 1 = exact
        sequential MCTS, the default — virtual loss costs playing strength).
    skip_forced: inside the tree, play moves with a single legal action without a node, so
        the last trick costs no network evaluation.
    perspective: whose view every position in the tree is encoded from: "mover" (the player
        to move at that position) or "searcher" (the player whose decision is searched, so
        every value in its tree is its own estimate; docs/search.md).
    rollout: the leaf value (blobcore/search/parts.py): "none" (the network's value alone),
        "world" (a world-value model's value of the leaf's sampled deal, one batched call per
        leaf, the evaluator answering it: ``selfplay_client.world_values.WorldEvaluator``), or a built-in
        player's name (every seat plays that player to the end of the round from the leaf: a
        play-out).
    rollout_weight: lambda in [0, 1]; a leaf's value is (1 - lambda) * network + lambda *
        play-out score (AlphaGo's mixing). Ignored with rollout "none".
    bid_rollout_weight: lambda for the searches of bidding decisions; -1 = ``rollout_weight``.
        0 makes every bid the network's: each candidate bid is valued by the value head, which
        derives it from the predicted distribution of the bidder's trick count after that bid
        (``P(tricks = bid) * (10 + bid)``; trainer/blobnet.py), instead of by play-outs.
    world_share: with play-outs, the share of each play-out's score taken from a world-value
        model's value of the leaf's sampled deal instead (0 = the play-out alone; the world is
        drawn separately from the play-out's, so the two average two deals). The evaluator must
        answer world values, as for rollout "world". Ignored without play-outs.
    rollout_resample: play each leaf out in a world drawn afresh for the searcher's
        information at that leaf (so D x S leaves see D x S deals of the hidden cards) rather
        than in the determinization the tree was built in.
    beliefs: where the hidden cards are (blobcore/search/parts.py): "uniform" (every
        consistent deal alike), "bids" (weighted by how likely each other seat's bid was with
        that hand, ``inference_candidates``), "policy" (policy-based inference with the
        network's own policy, ``policy_inference``) or "learned" (a belief model's per-card
        holder probabilities for the searcher's view, one batch row per decision, the evaluator
        answering them: ``blobzero.learned_beliefs.BeliefEvaluator``; deals drawn from
        ``inference_candidates`` uniform consistent ones weighted by them).
    inference_candidates: with beliefs "bids" (and for the play-outs' worlds with "policy"),
        hidden hands are drawn from this many uniform consistent deals, weighted by how likely
        each other seat's bid was with that hand (blobcore/inference.pyx); 1 = uniform.
    inference_temperature: softness of that bidding model, in points.
    policy_inference: K, with beliefs "policy" (and only then; 0 otherwise): at each decision
        K uniform consistent deals are drawn, each weighted by the likelihood of every
        other seat's past choices this round under the searcher's network (one evaluation per
        deal and choice, as that seat saw it in that deal), and the decision's D
        determinizations are drawn from them by weight. Leaf play-outs draw their worlds as
        ``inference_candidates`` says. Costs K x (the other seats' choices so far) evaluations
        per decision.
    policy_inference_temperature: the likelihood is raised to 1 / this (larger = trusts the
        network's model of the other seats less).
    root: how the root spends the D x S simulations (blobcore/search/parts.py): "puct" (as
        every other node; the policy
        target is the visit counts) or "gumbel" (Gumbel AlphaZero: up to ``gumbel_actions``
        actions drawn without replacement by Gumbel noise + log prior (no noise in
        evaluation), sequential halving over the simulations, the move is the best of
        g + logit + sigma(q), the policy target softmax(logit + sigma(completed q)); Dirichlet
        noise and temperature are not used).
    gumbel_actions: m, actions the Gumbel root considers.
    gumbel_c_visit, gumbel_c_scale: sigma(q) = (c_visit + max visits) * c_scale * q, q the
        normalised value in [0, 1].
    gumbel_eval_c_visit: c_visit of the evaluation search (``for_evaluation``: the arena, the
        strength tracker, ``blobzero game``, the agent); -1 = ``gumbel_c_visit``. Smaller
        weighs the network's prior more against the root's noisy play-out means; self-play's
        moves and policy targets keep ``gumbel_c_visit``.
    leaf_samples: K, play-outs kept per round as labelled worlds (0..64; 0 = none): a uniform
        sample of the round's leaves, each the world it was played out in, the play-out's moves
        and what it scored, in the round's record (``leaf_worlds``) for the world-value model
        (blobcore/search/labels.pxd). With play-outs at the leaves they are the play-outs' own;
        with world values (which play none) the kept worlds are played out by ``expert`` for
        the purpose; with the network's values alone nothing is kept. Self-play sets it
        (``selfplay.leaf_worlds``); it is not a [search] key.
    """

    determinizations: int = 3
    simulations: int = 30
    c_puct: float = 1.25
    dirichlet_alpha: float = 0.5
    dirichlet_eps: float = 0.25
    add_noise: bool = True
    temperature: float = 1.0
    temperature_moves: int = 6
    leaves_per_game: int = 1
    skip_forced: bool = True
    perspective: str = "searcher"
    rollout: str = "expert"
    rollout_weight: float = 1.0
    bid_rollout_weight: float = -1.0
    rollout_resample: bool = True
    world_share: float = 0.0
    beliefs: str = "bids"
    inference_candidates: int = 8
    inference_temperature: float = 1.0
    policy_inference: int = 0
    policy_inference_temperature: float = 1.0
    root: str = "gumbel"
    gumbel_actions: int = 16
    gumbel_c_visit: float = 50.0
    gumbel_c_scale: float = 1.0
    gumbel_eval_c_visit: float = -1.0
    leaf_samples: int = 0

    def __post_init__(self):
        checks = [
            (1 <= self.determinizations <= 64, "determinizations must be 1..64"),
            (1 <= self.simulations <= 4096, "simulations must be 1..4096"),
            (self.c_puct > 0, "c_puct must be positive"),
            (self.dirichlet_alpha > 0, "dirichlet_alpha must be positive"),
            (0 <= self.dirichlet_eps <= 1, "dirichlet_eps must be in [0, 1]"),
            (self.temperature >= 0, "temperature must be >= 0"),
            (self.temperature_moves >= 0, "temperature_moves must be >= 0"),
            (1 <= self.leaves_per_game <= 8, "leaves_per_game must be 1..8"),
            (self.perspective in PERSPECTIVES, f"perspective must be one of {PERSPECTIVES}"),
            (self.rollout in leaf_value_names(),
             f"rollout must be one of {', '.join(leaf_value_names())}, got {self.rollout!r}"),
            (self.beliefs in BELIEFS, f"beliefs must be one of {', '.join(BELIEFS)}, got {self.beliefs!r}"),
            (0 <= self.rollout_weight <= 1, "rollout_weight must be in [0, 1]"),
            (self.bid_rollout_weight == -1 or 0 <= self.bid_rollout_weight <= 1,
             "bid_rollout_weight must be in [0, 1], or -1 for rollout_weight"),
            (1 <= self.inference_candidates <= 64, "inference_candidates must be 1..64"),
            (self.inference_temperature > 0, "inference_temperature must be positive"),
            (0 <= self.policy_inference <= 32, "policy_inference must be 0..32"),
            (self.beliefs != "policy" or self.policy_inference >= 1,
             'beliefs "policy" needs policy_inference = K, the candidate deals per decision (1..32)'),
            (self.beliefs == "policy" or self.policy_inference == 0,
             f"policy_inference = {self.policy_inference} weighs deals by the network's policy: "
             f'set beliefs = "policy" too (or policy_inference = 0)'),
            (self.policy_inference_temperature > 0, "policy_inference_temperature must be positive"),
            (self.root in ROOT_RULES, f"root must be one of {', '.join(ROOT_RULES)}, got {self.root!r}"),
            (2 <= self.gumbel_actions <= 18, "gumbel_actions must be 2..18"),
            (self.gumbel_c_visit >= 0 and self.gumbel_c_scale > 0,
             "gumbel_c_visit must be >= 0 and gumbel_c_scale positive"),
            (self.gumbel_eval_c_visit == -1 or self.gumbel_eval_c_visit >= 0,
             "gumbel_eval_c_visit must be >= 0, or -1 for gumbel_c_visit"),
            (0 <= self.leaf_samples <= 64, "leaf_samples must be 0..64"),
            (0 <= self.world_share <= 1, "world_share must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SearchConfig: {message}")

    def for_evaluation(self) -> "SearchConfig":
        """The same search without exploration: no noise, always the most visited action (the
        best-scored one with the Gumbel root, whose c_visit becomes ``gumbel_eval_c_visit``)."""
        c_visit = self.gumbel_c_visit if self.gumbel_eval_c_visit < 0 else self.gumbel_eval_c_visit
        return replace(self, add_noise=False, temperature=0.0, gumbel_c_visit=c_visit, gumbel_eval_c_visit=-1.0)

    @property
    def plays_out(self) -> bool:
        """Its leaves are played out by a built-in player (not a network's or world value)."""
        return self.rollout not in LEAF_VALUES

    @property
    def uses_world_values(self) -> bool:
        """Its evaluator must answer world values: rollout "world", or play-outs blended with
        them (world_share > 0)."""
        return self.rollout == "world" or (self.world_share > 0 and self.plays_out)

    def leaf_weights(self) -> tuple[float, float]:
        """(lambda at bidding decisions, lambda at card-play decisions)."""
        bid = self.rollout_weight if self.bid_rollout_weight < 0 else self.bid_rollout_weight
        return bid, self.rollout_weight

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for reports, e.g. "3x30, gumbel root, expert play-outs, bids beliefs"."""
        leaf = {"none": "network values", "world": "world values"}.get(self.rollout, f"{self.rollout} play-outs")
        if self.plays_out and self.world_share > 0:
            leaf += f" {1 - self.world_share:g}:{self.world_share:g} with world values"
        return (f"{self.determinizations}x{self.simulations}, {self.root} root, {leaf}, "
                f"{self.beliefs} beliefs")

    def sized(self, preset: str) -> "SearchConfig":
        """The same search at a preset's size (determinizations x simulations), with the
        settings the preset implies (``PRESET_SETTINGS``)."""
        if preset not in SIZES:
            raise ValueError(f"unknown search preset {preset!r}; choose one of {', '.join(SIZES)}")
        determinizations, simulations = SIZES[preset]
        return replace(self, determinizations=determinizations, simulations=simulations,
                       **PRESET_SETTINGS.get(preset, {}))


def batch_capacity(n_slots: int, config: SearchConfig) -> int:
    """Rows one ``SearchPool.collect()`` may return for a pool of ``n_slots`` rounds: each
    round's leaves (a round adds at most ``leaves_per_game`` rows of search per batch, its root
    evaluation included), plus, with policy-based beliefs, a share only their rows may use:
    room for one round's candidate rows (K x the most actions a round has) and two more per
    round (a decision's rows come once per D x S simulations, so they rarely need more; a
    round that finds no room starts its decision in the next batch)."""
    k = config.policy_inference
    rows = n_slots * config.leaves_per_game + (k * MAX_ROUND_ACTIONS + 2 * n_slots if k > 0 else 0)
    return rows + (n_slots if config.beliefs == "learned" else 0)   # one belief row per decision


#: The search sizes by name: (determinizations, simulations per determinization).
SIZES = {"easy": (1, 4), "normal": (1, 24), "light": (2, 20), "medium": (3, 30), "heavy": (5, 50)}
#: Settings a preset implies over the configured search (``sized`` and the config's ``build``
#: apply them): the two weak levels play out leaves with random moves (``easy`` also searches
#: one world only; ``normal`` spends its 24 simulations with the PUCT root), so that they play
#: between ``random`` and ``greedy`` and about ``greedy``, trained network or not.
PRESET_SETTINGS = {"easy": {"rollout": "random"}, "normal": {"rollout": "random", "root": "puct"}}
#: The agent's difficulty levels, weakest first: the presets the play page offers (``GET
#: /api/info``), the agent plays for a model seat, and ``blobzero ladder`` rates as
#: ``level:<name>``. Spaced as evenly as the search's range allows, random → strongest
#: (docs/players.md, "Ratings": about 155, 255 and 370 with ``random`` at 0, a trained network);
#: ``light`` and ``medium`` stay presets (``medium`` the default search of self-play and the
#: agent's API) but are no levels: ``light`` plays as strong as ``heavy`` with a trained network.
LEVELS = ("easy", "normal", "heavy")
#: The plain search's settings over the product's: PUCT root, the network's value at the
#: leaves, uniform beliefs (AlphaZero's search; the benchmarks and tests name it "plain").
PLAIN_SETTINGS = dict(root="puct", rollout="none", rollout_weight=0.5, beliefs="uniform",
                      inference_candidates=1, inference_temperature=2.0)
#: Searches a benchmark or a test may ask for by name: settings over the configured search.
NAMED_SEARCHES = {"default": {}, "plain": PLAIN_SETTINGS}
#: Every field name, for code that passes settings through by name.
FIELDS = tuple(f.name for f in fields(SearchConfig))


def _named_searches() -> dict:
    return {
        # the product's search at each size (the default is "medium")
        "PRESETS": {name: SearchConfig().sized(name) for name in SIZES},
        "PLAIN": SearchConfig(**PLAIN_SETTINGS),
    }


def __getattr__(name: str):
    """``PRESETS`` and ``PLAIN`` are made on first use: a SearchConfig checks its play-out
    player against the compiled table of built-in players, which importing this module must
    not load."""
    if name in ("PRESETS", "PLAIN"):
        globals().update(_named_searches())
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
