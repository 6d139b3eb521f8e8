"""Where the trainer computes: ``trainer.device`` = auto | cpu | cuda.

The choice is a pure function of the setting and what torch reports (``resolve_device``), so
its logic is tested on machines without a GPU; the CUDA-only lines are the few in
``TrainDevice`` that move tensors and enable autocast.

On CUDA the trainer runs the forward/backward under bf16 autocast (the weights and the
optimiser stay float32) where the GPU computes bf16 natively — compute capability 8.0 and later
(Ampere, Ada, Hopper, Blackwell) — and in float32 on older GPUs (Pascal, Volta, Turing: T4, V100),
where bf16 is emulated and slower than float32 (``autocast_dtype``; the start-up line says which).
Each batch is staged in pinned host memory, copied to the GPU asynchronously. On the CPU it is
exactly the float32 path it always was.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from plumbing.config import ConfigError
from trainer.examples import FIELDS, Examples


def resolve_device(setting: str, cuda_available: bool, cuda_devices: int = 1) -> str:
    """"cuda" or "cpu" for ``trainer.device`` = ``setting``. auto takes CUDA when present;
    cuda without a usable CUDA device is a start-up error naming the key."""
    if setting == "auto":
        return "cuda" if cuda_available and cuda_devices > 0 else "cpu"
    if setting == "cuda" and not (cuda_available and cuda_devices > 0):
        raise ConfigError("config key 'trainer.device' is \"cuda\" but torch sees no CUDA device "
                          "(no GPU passed to this container/pod, no driver, or a CPU-only torch "
                          "build); use \"auto\" or \"cpu\", or give the trainer a GPU")
    if setting not in ("cpu", "cuda"):
        raise ConfigError(f"config key 'trainer.device' must be auto, cpu or cuda, got {setting!r}")
    return setting


#: the first compute capability with native bf16 (Ampere)
BF16_CAPABILITY = (8, 0)


def autocast_dtype(cuda: bool, capability: tuple[int, int] | None) -> str | None:
    """"bfloat16" on a GPU of compute capability >= 8.0; None (float32, no autocast) on older
    GPUs and on the CPU. fp16 would need loss scaling, which the trainer does not do."""
    if cuda and capability is not None and tuple(capability) >= BF16_CAPABILITY:
        return "bfloat16"
    return None


@dataclass
class Staging:
    """Two sets of batch buffers, alternated so the next batch is written while the previous
    one may still be copying to the GPU. Each holds ``Examples`` numpy views of (pinned, on
    CUDA) torch tensors: the window encodes straight into them."""
    tensors: list[dict]
    arrays: list[Examples]
    turn: int = 0

    def next(self) -> tuple[Examples, dict]:
        self.turn ^= 1
        return self.arrays[self.turn], self.tensors[self.turn]


class TrainDevice:
    """The resolved device, its autocast context and batch staging."""

    def __init__(self, torch, setting: str):
        self.torch = torch
        self.name = resolve_device(setting, torch.cuda.is_available(),
                                   torch.cuda.device_count() if torch.cuda.is_available() else 0)
        self.cuda = self.name == "cuda"
        self.device = torch.device(self.name)
        self.staging: Staging | None = None
        self.capability = None
        if self.cuda:                               # CUDA only
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            self.capability = tuple(torch.cuda.get_device_capability(0))
        self.amp = autocast_dtype(self.cuda, self.capability)

    def describe(self) -> str:
        if self.cuda:                               # CUDA only
            major, minor = self.capability
            precision = ("bf16 autocast" if self.amp else
                         f"float32: no native bf16 below compute capability 8.0, this GPU is {major}.{minor}")
            return (f"cuda ({self.torch.cuda.get_device_name(0)}, CUDA runtime {self.torch.version.cuda}, "
                    f"{precision})")
        return "cpu (float32)"

    def autocast(self):
        """bf16 autocast on a GPU with native bf16; nothing elsewhere."""
        if self.amp:                                # CUDA only
            return self.torch.autocast(device_type="cuda", dtype=getattr(self.torch, self.amp))
        return nullcontext()

    def buffers(self, batch: int) -> Examples:
        """Host buffers for the next batch of ``batch`` rows (pinned on CUDA), to fill in place."""
        if self.staging is None or len(self.staging.arrays[0]) != batch:
            self.staging = self._make_staging(batch)
        return self.staging.next()[0]

    def _make_staging(self, batch: int) -> Staging:
        torch = self.torch
        template = Examples.empty(batch)
        tensors, arrays = [], []
        for _ in range(2):
            t = {f: torch.from_numpy(getattr(template, f)).clone() for f in FIELDS}
            if self.cuda:                           # CUDA only: page-locked for async copies
                t = {f: x.pin_memory() for f, x in t.items()}
            tensors.append(t)
            arrays.append(Examples(*(t[f].numpy() for f in FIELDS)))
        return Staging(tensors, arrays)

    def to_device(self, batch: Examples) -> dict:
        """The batch as tensors on the device (``batch`` must be the latest ``buffers``)."""
        torch = self.torch
        if self.staging is not None and batch is self.staging.arrays[self.staging.turn]:
            host = self.staging.tensors[self.staging.turn]
        else:
            host = {f: torch.from_numpy(np.ascontiguousarray(getattr(batch, f))) for f in FIELDS}
        if not self.cuda:
            return host
        return {f: x.to(self.device, non_blocking=True) for f, x in host.items()}   # CUDA only
