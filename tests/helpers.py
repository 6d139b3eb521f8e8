"""Small helpers shared by the test modules."""
import random


def advance(rnd, steps, seed=0):
    """Play up to ``steps`` uniformly random legal actions (seeded); stops at the end."""
    rng = random.Random(seed)
    for _ in range(steps):
        if rnd.is_terminal:
            break
        rnd.apply(rng.choice(rnd.legal_actions()))
    return rnd
