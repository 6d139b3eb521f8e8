"""The sliding window of recent training positions (a ring buffer of ``Examples``).

Its capacity grows with the data seen, KataGo style: small at first (so early, weak games
leave quickly), larger later (so the network does not overfit recent games):
``capacity = min(window_max, max(window_min, window_growth * positions_seen))``.
"""
from __future__ import annotations

import numpy as np

from trainer.examples import FIELDS as _FIELDS
from trainer.examples import Examples


def window_capacity(positions_seen: int, window_min: int, window_max: int, growth: float) -> int:
    return int(min(window_max, max(window_min, growth * positions_seen)))


class Window:
    """Fixed backing store of ``window_max`` rows; only the newest ``capacity`` are sampled."""

    def __init__(self, window_max: int):
        self.store = Examples.empty(window_max)
        self.max = window_max
        self.next = 0          # row the next position goes to
        self.filled = 0        # rows holding data
        self.capacity = window_max

    def __len__(self) -> int:
        return min(self.filled, self.capacity)

    def add(self, ex: Examples) -> None:
        n = len(ex)
        if n >= self.max:       # keep only the newest max rows
            ex = Examples(*(getattr(ex, f)[-self.max:] for f in _FIELDS))
            n = self.max
        end = self.next + n
        for f in _FIELDS:
            dst, src = getattr(self.store, f), getattr(ex, f)
            if end <= self.max:
                dst[self.next:end] = src
            else:
                split = self.max - self.next
                dst[self.next:] = src[:split]
                dst[:end - self.max] = src[split:]
        self.next = end % self.max
        self.filled = min(self.max, self.filled + n)

    def sample(self, batch: int, rng: np.random.Generator) -> Examples:
        """``batch`` rows drawn uniformly (with replacement) from the newest ``len(self)``."""
        size = len(self)
        if size == 0:
            raise ValueError("the window is empty")
        back = rng.integers(1, size + 1, size=batch)        # 1 = newest row
        rows = (self.next - back) % self.max
        return Examples(*(getattr(self.store, f)[rows] for f in _FIELDS))

