"""Shared pure-compute core of BlobZero: rules, observation encoder, determinization,
inference over hidden hands, the search.

Compiled with Cython; no I/O. Every service imports the game from here and only here. The
names below load their compiled module on first use, so that importing a pure-Python part of
the package (``blobcore.search_config``, which the config schema reads) loads nothing
compiled.
"""
import importlib
import sys
import types

_EXPORTS = {
    "blobcore.rules": ("DECK_SIZE", "MAX_PLAYERS", "MIN_PLAYERS", "NO_TRUMP", "NUM_SUITS",
                       "NUM_RANKS", "PHASE_BID", "PHASE_PLAY", "PHASE_DONE", "Round", "Rng",
                       "card_name", "card_index", "max_cards", "game_schedule",
                       "trump_for_round"),
    "blobcore.encode": ("OBS_SIZE", "encode", "encode_into", "encode_view_into"),
    "blobcore.determinize": ("determinize", "count_consistent_deals"),
    "blobcore.inference": ("sample_hidden_hands",),
    "blobcore.game": ("Game",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'blobcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """``blobcore.encode`` and ``blobcore.determinize`` are functions, named like the modules
    they live in: importing such a module must not put the module in the function's place
    (the import system sets the parent's attribute after loading a submodule)."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _MODULE_OF.get(name) == value.__name__:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
