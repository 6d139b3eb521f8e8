"""The search, as parts (docs/search.md, "The search as parts").

``pool`` is the driver (``SearchPool``); ``tree`` the nodes, edges, PUCT and backup; the
root rules (``root_puct``, ``root_gumbel``), leaf values (``leaf_network``, ``leaf_playout``)
and beliefs (``belief_uniform``, ``belief_bids``, ``belief_policy``) are one module each,
named in ``parts``; ``seats`` says who decides at a seat. Importing this package loads
nothing compiled.
"""
