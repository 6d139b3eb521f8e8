"""BlobNet: the policy/value network (PyTorch), a pre-norm residual MLP.

Shapes (B = positions in the batch):
    state (B, 256) float32 --embed--> trunk (B, width) --depth x residual block--> (B, width)
        -> policy logits (B, 52)   raw, unmasked; training applies ``masked_log_softmax`` once
        -> value (B, 8) in [0, 1]  per-seat expected normalised round score (seat 0 = to move)

Why an MLP and not the reference's transformer: the reference fed the 256 features as one
token, so attention over a length-1 sequence was an identity-like projection. Here the same
parameter/FLOP budget goes into wider feed-forward blocks; docs/network.md has the counts.

Serving uses ``ServingNet``, which bakes the masked softmax into the exported graph so Triton
returns probabilities; training never sees it (softmax is applied exactly once, in the loss).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from plumbing.netspec import NUM_ACTIONS, STATE_DIM, VALUE_DIM

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

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every Linear layer, in forward order."""
        w = self.width
        shapes = [(self.state_dim, w)]
        shapes += [(w, self.hidden), (self.hidden, w)] * self.depth
        shapes += [(w, self.num_actions), (w, self.value_hidden), (self.value_hidden, self.value_dim)]
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


def preset(name: str) -> BlobNetConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown BlobNet preset {name!r}; choose one of {sorted(PRESETS)}") from None


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
    """Policy/value network. ``forward(state) -> (logits (B,52), value (B,8) in [0,1])``."""

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
        with torch.no_grad():  # start near a uniform policy and a 0.5 value
            self.policy_head.weight.mul_(0.1)
            self.policy_head.bias.zero_()
            self.value_out.bias.zero_()

    def forward(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """state (B, 256) float32 -> (policy logits (B, 52) unmasked, value (B, 8) in [0, 1])."""
        h = self.norm(self.blocks(self.embed(state)))
        logits = self.policy_head(h)
        value = torch.sigmoid(self.value_out(F.relu(self.value_hidden(h))))
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


def build(name_or_config: str | BlobNetConfig, seed: int | None = None) -> BlobNet:
    """A freshly initialised BlobNet (deterministic when ``seed`` is given), in eval mode."""
    config = preset(name_or_config) if isinstance(name_or_config, str) else name_or_config
    if seed is None:
        return BlobNet(config).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BlobNet(config).eval()
