"""BlobNet: the policy/value network (PyTorch), a pre-norm residual MLP.

Shapes (B = positions in the batch):
    state (B, 256) float32 --embed--> trunk (B, width) --depth x residual block--> (B, width)
        -> policy logits (B, 52)   raw, unmasked; training applies ``masked_log_softmax`` once
        -> value (B, 8) in [0, 1]  per-seat expected normalised round score (seat 0 = to move)
        -> tricks (B, 8, 18)       logits of each seat's final trick count 0..17 (``tricks`` head)

Value heads (``value_head``):
    "scalar": a sigmoid per seat, trained by MSE against the normalised round score.
    "tricks": the same scalar head for seats that have not bid yet, and for every seat that has,
        the value *derived* from a predicted distribution of its final trick count:
        ``P(final tricks == bid) * (10 + bid) / (10 + C)``, the exact expected score under that
        distribution. The distribution is trained by cross-entropy against the tricks each seat
        really took — a dense, low-noise target every round gives for every seat, where the
        score only says hit or miss. Impossible counts (fewer than already won, more than
        won + tricks left, more than C) get probability 0, so a busted bid is worth exactly 0.
        The logits are a residual on a prior: the tricks still to play are split like coin flips
        that a seat wins with probability 1/N (binomial). An untrained head therefore bids and
        plays like a naive human (about C/N tricks) instead of chasing high bids, and training
        only learns how this hand and this history differ from the naive split.
        The wire contract does not change: the head is folded into ``value`` inside the graph.

Why an MLP and not the reference's transformer: the reference fed the 256 features as one
token, so attention over a length-1 sequence was an identity-like projection. Here the same
parameter/FLOP budget goes into wider feed-forward blocks; docs/network.md has the counts.

Serving uses ``ServingNet``, which bakes the masked softmax into the exported graph so Triton
returns probabilities; training never sees it (softmax is applied exactly once, in the loss).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from plumbing.netspec import NUM_ACTIONS, STATE_DIM, VALUE_DIM

VALUE_HEADS = ("tricks", "scalar")
#: Final trick counts a seat can end with: 0..17 (17 = the most cards a seat holds, 3 players).
TRICK_CLASSES = 18
#: Observation slots the ``tricks`` value head reads (docs/observation.md); checked against the
#: encoder's SLOTS table in tests/test_blobnet.py.
OBS_BIDS, OBS_TRICKS_WON, OBS_CARDS, OBS_PLAYERS, OBS_TRICKS_DONE = 156, 164, 237, 238, 239
#: Logit given to illegal actions. Finite (not -inf) so a zero target times its log-prob is 0, not NaN.
ILLEGAL_LOGIT = -1.0e9


@dataclass(frozen=True)
class BlobNetConfig:
    """Sizes of one BlobNet.

    width:        trunk width (features per position between blocks)
    depth:        number of residual blocks
    hidden:       inner width of each block's feed-forward layer
    value_hidden: width of the value head's hidden layer
    state_dim / num_actions / value_dim: the wire contract (plumbing.netspec); not tunable.
    """

    width: int
    depth: int
    hidden: int
    value_hidden: int
    state_dim: int = STATE_DIM
    num_actions: int = NUM_ACTIONS
    value_dim: int = VALUE_DIM
    value_head: str = "tricks"

    def __post_init__(self):
        if self.value_head not in VALUE_HEADS:
            raise ValueError(f"value_head must be one of {VALUE_HEADS}, got {self.value_head!r}")

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every Linear layer, in forward order."""
        w = self.width
        shapes = [(self.state_dim, w)]
        shapes += [(w, self.hidden), (self.hidden, w)] * self.depth
        shapes += [(w, self.num_actions), (w, self.value_hidden), (self.value_hidden, self.value_dim)]
        if self.value_head == "tricks":
            shapes += [(self.value_hidden, self.value_dim * TRICK_CLASSES)]
        return shapes

    @property
    def parameters(self) -> int:
        """Trainable parameters: Linear weights + biases, LayerNorm scales + shifts."""
        linear = sum(i * o + o for i, o in self.linear_shapes())
        layer_norms = (self.depth + 1) * 2 * self.width
        return linear + layer_norms

    @property
    def flops_per_position(self) -> int:
        """Multiply-adds x 2 of the Linear layers for one position (norms/activations excluded: <1%)."""
        return 2 * sum(i * o for i, o in self.linear_shapes())


#: Named sizes. ``full`` matches the reference workload's cost (≈4.9M params, ≈9.7 MFLOP/position);
#: ``small`` is the CPU default for the local loop; ``tiny`` keeps tests fast.
PRESETS: dict[str, BlobNetConfig] = {
    "full": BlobNetConfig(width=256, depth=6, hidden=1536, value_hidden=256),
    "small": BlobNetConfig(width=128, depth=4, hidden=512, value_hidden=128),
    "tiny": BlobNetConfig(width=32, depth=2, hidden=64, value_hidden=32),
}


def preset(name: str, value_head: str = "tricks") -> BlobNetConfig:
    try:
        config = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown BlobNet preset {name!r}; choose one of {sorted(PRESETS)}") from None
    return config if config.value_head == value_head else replace(config, value_head=value_head)


class ResidualBlock(nn.Module):
    """x + W2 relu(W1 LayerNorm(x)); (B, width) -> (B, width)."""

    def __init__(self, width: int, hidden: int, depth: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, hidden)
        self.down = nn.Linear(hidden, width)
        # Shrink each block's write into the residual stream so the sum of `depth` blocks keeps
        # unit scale at initialisation (GPT-2 style scaling).
        with torch.no_grad():
            self.down.weight.mul_(1.0 / math.sqrt(2 * depth))
            self.down.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(F.relu(self.up(self.norm(x))))


class BlobNet(nn.Module):
    """Policy/value network. ``forward(state) -> (logits (B,52), value (B,8) in [0,1])``;
    ``heads(state)`` adds the trick logits (B,8,18) that training needs."""

    def __init__(self, config: BlobNetConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Linear(config.state_dim, config.width)
        self.blocks = nn.Sequential(*(ResidualBlock(config.width, config.hidden, config.depth)
                                      for _ in range(config.depth)))
        self.norm = nn.LayerNorm(config.width)
        self.policy_head = nn.Linear(config.width, config.num_actions)
        self.value_hidden = nn.Linear(config.width, config.value_hidden)
        self.value_out = nn.Linear(config.value_hidden, config.value_dim)
        self.tricks_out = (nn.Linear(config.value_hidden, config.value_dim * TRICK_CLASSES)
                           if config.value_head == "tricks" else None)
        # log C(n, k) for n, k in 0..17 (0 where k > n: masked anyway); a constant of the graph
        log_comb = torch.zeros(TRICK_CLASSES, TRICK_CLASSES)
        for n in range(TRICK_CLASSES):
            for k in range(n + 1):
                log_comb[n, k] = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        self.register_buffer("log_comb", log_comb.flatten(), persistent=False)
        with torch.no_grad():  # start near a uniform policy, a 0.5 value, uniform trick counts
            self.policy_head.weight.mul_(0.1)
            self.policy_head.bias.zero_()
            self.value_out.bias.zero_()
            if self.tricks_out is not None:
                self.tricks_out.weight.mul_(0.1)
                self.tricks_out.bias.zero_()

    def heads(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """state (B,256) -> (policy logits (B,52), value (B,8), trick log-probs (B,8,18) or None).

        Trick log-probabilities are masked to the counts still possible (others ~ -1e9)."""
        h = self.norm(self.blocks(self.embed(state)))
        logits = self.policy_head(h)
        v = F.relu(self.value_hidden(h))
        value = torch.sigmoid(self.value_out(v))
        if self.tricks_out is None:
            return logits, value, None
        seats = self.config.value_dim
        trick_logits = self.tricks_out(v).view(-1, seats, TRICK_CLASSES)
        # What the observation says (counts are stored divided by C; rounding recovers them).
        cards = torch.round(state[:, OBS_CARDS:OBS_CARDS + 1] * 17.0)                  # (B,1)
        bid_code = state[:, OBS_BIDS:OBS_BIDS + seats]                                 # (B,8)
        has_bid = bid_code > 0
        bid = (torch.round(bid_code * (cards + 1.0)) - 1.0).clamp(0, TRICK_CLASSES - 1)
        won = torch.round(state[:, OBS_TRICKS_WON:OBS_TRICKS_WON + seats] * cards)     # (B,8)
        left = cards - torch.round(state[:, OBS_TRICKS_DONE:OBS_TRICKS_DONE + 1] * cards)
        counts = torch.arange(TRICK_CLASSES, dtype=state.dtype, device=state.device)
        extra = counts - won.unsqueeze(-1)                                               # (B,8,18)
        left = left.unsqueeze(-1)                                                        # (B,1,1)
        possible = (extra >= 0) & (extra <= left)
        # binomial prior: each of the ``left`` tricks is won with probability 1/N
        p_win = (1.0 / torch.round(state[:, OBS_PLAYERS:OBS_PLAYERS + 1] * 8.0).clamp(min=1.0)).unsqueeze(-1)
        k = torch.where(possible, extra, torch.zeros_like(extra))
        index = (left * TRICK_CLASSES + k).long().clamp(0, TRICK_CLASSES * TRICK_CLASSES - 1)
        prior = (self.log_comb[index] + k * torch.log(p_win)
                 + (left - k) * torch.log((1.0 - p_win).clamp(min=1e-6)))
        trick_logp = F.log_softmax(torch.where(possible, trick_logits + prior,
                                               torch.full_like(trick_logits, ILLEGAL_LOGIT)), dim=-1)
        hit = torch.gather(trick_logp.exp(), 2, bid.long().unsqueeze(-1)).squeeze(-1)  # (B,8)
        derived = hit * (10.0 + bid) / (10.0 + cards)
        return logits, torch.where(has_bid, derived, value), trick_logp

    def forward(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """state (B, 256) float32 -> (policy logits (B, 52) unmasked, value (B, 8) in [0, 1])."""
        logits, value, _ = self.heads(state)
        return logits, value

    def describe(self) -> dict:
        """Config plus the counted size (used in ONNX metadata and benchmark output)."""
        return {**asdict(self.config), "parameters": sum(p.numel() for p in self.parameters()),
                "flops_per_position": self.config.flops_per_position}


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Replace illegal entries (mask < 0.5) by ILLEGAL_LOGIT; shapes (B, 52)."""
    return torch.where(mask > 0.5, logits, torch.full_like(logits, ILLEGAL_LOGIT))


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-probabilities over legal actions (B, 52): the one softmax the training loss applies."""
    return F.log_softmax(masked_logits(logits, mask), dim=-1)


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Probabilities over legal actions (B, 52); exactly 0 on illegal ones, all-0 if none is legal."""
    return F.softmax(masked_logits(logits, mask), dim=-1) * (mask > 0.5).to(logits.dtype)


class ServingNet(nn.Module):
    """The exported graph: ``(state (B,256), mask (B,52)) -> (policy (B,52), value (B,8))``."""

    def __init__(self, net: BlobNet):
        super().__init__()
        self.net = net

    def forward(self, state: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, value = self.net(state)
        return masked_softmax(logits, mask), value


def build(name_or_config: str | BlobNetConfig, seed: int | None = None,
          value_head: str = "tricks") -> BlobNet:
    """A freshly initialised BlobNet (deterministic when ``seed`` is given), in eval mode.
    ``value_head`` applies when a preset name is given."""
    config = (preset(name_or_config, value_head) if isinstance(name_or_config, str)
              else name_or_config)
    if seed is None:
        return BlobNet(config).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BlobNet(config).eval()
