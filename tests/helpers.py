"""Small helpers shared by the test modules."""
import random
import time
from pathlib import Path


def advance(rnd, steps, seed=0):
    """Play up to ``steps`` uniformly random legal actions (seeded); stops at the end."""
    rng = random.Random(seed)
    for _ in range(steps):
        if rnd.is_terminal:
            break
        rnd.apply(rng.choice(rnd.legal_actions()))
    return rnd


def wait_until(predicate, timeout, what, procs=()):
    """Poll ``predicate`` every 0.5 s until it returns something truthy (returned); fail after
    ``timeout`` s, or as soon as one of ``procs`` ((Popen, log path) pairs) exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc, log in procs:
            if proc.poll() is not None:
                raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}:\n"
                                     + Path(log).read_text()[-3000:])
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
