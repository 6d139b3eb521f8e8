# cython: language_level=3
"""Inference when sampling hidden hands: worlds weighted by what the bids reveal.

``blobcore/determinize.pyx`` samples the other seats' hands uniformly among the deals
consistent with the public record (cards played, suits shown out of). That ignores the bids:
a seat that bid 3 of 5 in hearts holds the high hearts far more often than a uniform sample
says. Here the hidden hands are drawn by sampling-importance-resampling: ``candidates``
uniform consistent deals, each weighted by the product over the other seats of the chance
that a soft expert (``expert_bid_likelihood``: P(bid) proportional to exp(expected score /
temperature)) holding that hand would have bid what the seat bid; one candidate is kept with
probability proportional to its weight. With one candidate (or temperature 0) this is the
uniform sampler. As ``candidates`` grows the draw tends to the posterior of the deal under
that bidding model (docs/determinization.md, "Inference from the bids").

Cost: one uniform sample plus one expert bid evaluation per bidder per candidate
(a few microseconds each at 4 x 5).
"""
from libc.string cimport memcpy

from blobcore.rules cimport RoundState, Round, Rng
from blobcore.rng cimport RngState, rng_uniform
from blobcore.determinize cimport determinize_state
from blobcore.expert cimport expert_bid_likelihood

cdef enum:
    MAX_CANDIDATES = 64


cdef double world_weight(const RoundState* world, int viewer, double temperature) noexcept nogil:
    """Likelihood of the other seats' bids given their hands in ``world``."""
    cdef double w = 1.0
    cdef int seat
    for seat in range(world.n_players):
        if seat != viewer and world.bids[seat] >= 0:
            w *= expert_bid_likelihood(world, seat, temperature)
    return w


cdef void sample_world(const RoundState* s, int viewer, RngState* rng, RoundState* out,
                       int candidates, double temperature) noexcept nogil:
    """Copy ``s`` into ``out`` with the other seats' hidden hands drawn as the module doc says."""
    cdef RoundState cand[2]
    cdef double total = 0.0, w
    cdef int i, keep = 0
    if candidates <= 1 or temperature <= 0.0 or s.n_bids == 0:
        determinize_state(s, viewer, rng, out)
        return
    if candidates > MAX_CANDIDATES:
        candidates = MAX_CANDIDATES
    # Streaming weighted reservoir of size one: candidate i replaces the kept one with
    # probability w_i / (w_1 + ... + w_i), so the kept one is drawn proportionally to weight.
    for i in range(candidates):
        determinize_state(s, viewer, rng, &cand[1 - keep])
        w = world_weight(&cand[1 - keep], viewer, temperature)
        total += w
        if i == 0 or (total > 0.0 and rng_uniform(rng) * total < w):
            keep = 1 - keep
    memcpy(out, &cand[keep], sizeof(RoundState))


def sample_hidden_hands(Round rnd, viewer=None, rng=None, int candidates=8, double temperature=2.0):
    """A copy of ``rnd`` whose other seats' hands are drawn with inference from the bids.

    viewer: the seat whose information is kept (default: the player to move).
    rng: an ``Rng`` (advanced in place), an int seed, or None for seed 0.
    candidates: uniform consistent deals weighed per draw (1 = uniform determinization).
    temperature: softness of the bidding model, in points (larger = trusts the bids less)."""
    cdef int v = rnd.st.current if viewer is None else viewer
    if v < 0:
        raise ValueError("the round is over: pass the viewer seat explicitly")
    if not 0 <= v < rnd.st.n_players:
        raise ValueError(f"viewer must be a seat 0..{rnd.st.n_players - 1}, got {v}")
    if not 1 <= candidates <= MAX_CANDIDATES:
        raise ValueError(f"candidates must be 1..{MAX_CANDIDATES}, got {candidates}")
    cdef Rng r = rng if isinstance(rng, Rng) else Rng(0 if rng is None else rng)
    cdef Round out = Round.__new__(Round)
    with nogil:
        sample_world(&rnd.st, v, &r.s, &out.st, candidates, temperature)
    return out
