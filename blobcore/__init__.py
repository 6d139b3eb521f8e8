"""Shared pure-compute core of BlobZero: rules, observation encoder, determinization,
inference over hidden hands.

Compiled with Cython; no I/O. Every service imports the game from here and only here.
"""
from blobcore.rules import (  # noqa: F401
    DECK_SIZE, MAX_PLAYERS, MIN_PLAYERS, NO_TRUMP, NUM_SUITS, NUM_RANKS,
    PHASE_BID, PHASE_PLAY, PHASE_DONE, Round, Rng, card_name, card_index, max_cards,
    game_schedule, trump_for_round,
)
from blobcore.encode import OBS_SIZE, encode, encode_into, encode_view_into  # noqa: F401
from blobcore.determinize import determinize, count_consistent_deals  # noqa: F401
from blobcore.inference import sample_hidden_hands  # noqa: F401
from blobcore.game import Game  # noqa: F401
