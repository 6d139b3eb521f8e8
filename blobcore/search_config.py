"""Search settings shared by self-play, evaluation and benchmarks (one schema)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


PERSPECTIVES = ("mover", "searcher")
ROLLOUTS = ("none", "expert", "greedy")
ROOTS = ("puct", "gumbel")


@dataclass(frozen=True)
class SearchConfig:
    """Determinized PUCT search (see docs/search.md).

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
    rollout: play-outs at the leaves: "none" (the network's value alone), or "expert" /
        "greedy" (every seat plays that built-in player to the end of the round from the leaf).
    rollout_weight: lambda in [0, 1]; a leaf's value is (1 - lambda) * network + lambda *
        play-out score (AlphaGo's mixing). Ignored with rollout "none".
    bid_rollout_weight: lambda for the searches of bidding decisions; -1 = ``rollout_weight``.
        0 makes every bid the network's: each candidate bid is valued by the value head, which
        derives it from the predicted distribution of the bidder's trick count after that bid
        (``P(tricks = bid) * (10 + bid)``; trainer/blobnet.py), instead of by play-outs.
    rollout_resample: play each leaf out in a world drawn afresh for the searcher's
        information at that leaf (so D x S leaves see D x S deals of the hidden cards) rather
        than in the determinization the tree was built in.
    inference_candidates: hidden hands are drawn from this many uniform consistent deals,
        weighted by how likely each other seat's bid was with that hand
        (blobcore/inference.pyx); 1 = uniform determinization.
    inference_temperature: softness of that bidding model, in points.
    policy_inference: policy-based inference with the network's own policy: at each decision
        this many uniform consistent deals are drawn, each weighted by the likelihood of every
        other seat's past choices this round under the searcher's network (one evaluation per
        deal and choice, as that seat saw it in that deal), and the decision's D
        determinizations are drawn from them by weight. 0 = off (determinizations come from
        ``inference_candidates``). Leaf play-outs still draw their worlds as
        ``inference_candidates`` says. Costs K x (the other seats' choices so far) evaluations
        per decision.
    policy_inference_temperature: the likelihood is raised to 1 / this (larger = trusts the
        network's model of the other seats less).
    root: how the root spends the D x S simulations: "puct" (as every other node; the policy
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
    rollout: str = "none"
    rollout_weight: float = 0.5
    bid_rollout_weight: float = -1.0
    rollout_resample: bool = True
    inference_candidates: int = 1
    inference_temperature: float = 2.0
    policy_inference: int = 0
    policy_inference_temperature: float = 1.0
    root: str = "puct"
    gumbel_actions: int = 16
    gumbel_c_visit: float = 50.0
    gumbel_c_scale: float = 1.0
    gumbel_eval_c_visit: float = -1.0

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
            (self.rollout in ROLLOUTS, f"rollout must be one of {ROLLOUTS}"),
            (0 <= self.rollout_weight <= 1, "rollout_weight must be in [0, 1]"),
            (self.bid_rollout_weight == -1 or 0 <= self.bid_rollout_weight <= 1,
             "bid_rollout_weight must be in [0, 1], or -1 for rollout_weight"),
            (1 <= self.inference_candidates <= 64, "inference_candidates must be 1..64"),
            (self.inference_temperature > 0, "inference_temperature must be positive"),
            (0 <= self.policy_inference <= 32, "policy_inference must be 0..32 (0 = off)"),
            (self.policy_inference_temperature > 0, "policy_inference_temperature must be positive"),
            (self.root in ROOTS, f"root must be one of {ROOTS}"),
            (2 <= self.gumbel_actions <= 18, "gumbel_actions must be 2..18"),
            (self.gumbel_c_visit >= 0 and self.gumbel_c_scale > 0,
             "gumbel_c_visit must be >= 0 and gumbel_c_scale positive"),
            (self.gumbel_eval_c_visit == -1 or self.gumbel_eval_c_visit >= 0,
             "gumbel_eval_c_visit must be >= 0, or -1 for gumbel_c_visit"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SearchConfig: {message}")

    def for_evaluation(self) -> "SearchConfig":
        """The same search without exploration: no noise, always the most visited action (the
        best-scored one with the Gumbel root, whose c_visit becomes ``gumbel_eval_c_visit``)."""
        c_visit = self.gumbel_c_visit if self.gumbel_eval_c_visit < 0 else self.gumbel_eval_c_visit
        return replace(self, add_noise=False, temperature=0.0, gumbel_c_visit=c_visit, gumbel_eval_c_visit=-1.0)

    def leaf_weights(self) -> tuple[float, float]:
        """(lambda at bidding decisions, lambda at card-play decisions)."""
        bid = self.rollout_weight if self.bid_rollout_weight < 0 else self.bid_rollout_weight
        return bid, self.rollout_weight

    def to_dict(self) -> dict:
        return asdict(self)


LIGHT = SearchConfig(determinizations=2, simulations=20)
MEDIUM = SearchConfig(determinizations=3, simulations=30)
HEAVY = SearchConfig(determinizations=5, simulations=50)
PRESETS = {"light": LIGHT, "medium": MEDIUM, "heavy": HEAVY}
