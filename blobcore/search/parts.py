"""The named parts of the search: the one registry a ``SearchConfig`` names them from.

A part is a Cython module under ``blobcore/search/`` whose ``part()`` returns a capsule
holding its struct of C functions (the interfaces are in ``blobcore/search/core.pxd``). To add
one, write the module and add one line to the table of its kind below; the schema
(``blobcore.search_config``, ``[search]`` in the config) then accepts its name, and every
command that searches can use it. docs/search.md walks through an example.

This module is pure Python and imports nothing compiled until ``load_parts`` is called.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

#: search.root: how the root spends the D x S simulations and picks the move.
ROOT_RULES = {
    "puct": "blobcore.search.root_puct",
    "gumbel": "blobcore.search.root_gumbel",
}

#: search.beliefs: where the hidden cards are, for the decision's determinizations and the
#: play-outs' worlds.
BELIEFS = {
    "uniform": "blobcore.search.belief_uniform",
    "bids": "blobcore.search.belief_bids",
    "policy": "blobcore.search.belief_policy",
    "learned": "blobcore.search.belief_learned",
}

#: search.rollout: what a new leaf is worth. "none" is the network's value alone; "world" a
#: world-value model's value of the leaf's sampled deal (selfplay_client/world_values.py); every built-in
#: player's name (blobcore/builtin.pyx) is a play-out by that player.
LEAF_VALUES = {
    "none": "blobcore.search.leaf_network",
    "world": "blobcore.search.leaf_world",
}
PLAYOUT = "blobcore.search.leaf_playout"


def leaf_value_names() -> tuple[str, ...]:
    """Every value ``search.rollout`` accepts: the leaf values above, then a play-out by each
    built-in player (this imports the compiled table of players)."""
    from blobcore.builtin import ENTRIES
    return (*LEAF_VALUES, *(name for name, _, _ in ENTRIES))


@dataclass(frozen=True)
class LoadedParts:
    """The capsules of one search's parts (kept alive by the pool that copies them), and for
    each the option and module it came from (for error messages)."""
    root: object
    leaf: object
    beliefs: object
    where: dict


def load_parts(config) -> LoadedParts:
    """Import the parts ``config`` (a ``SearchConfig``) names and take their capsules."""
    modules = {"root": ("root", config.root, ROOT_RULES[config.root]),
               "leaf": ("rollout", config.rollout, LEAF_VALUES.get(config.rollout, PLAYOUT)),
               "beliefs": ("beliefs", config.beliefs, BELIEFS[config.beliefs])}
    capsules = {kind: importlib.import_module(module).part()
                for kind, (_, _, module) in modules.items()}
    return LoadedParts(**capsules, where={kind: f"search.{option} = {name!r} ({module})"
                                          for kind, (option, name, module) in modules.items()})
