"""The BlobZero application: the ``blobzero`` command, the local loop, the arena, benchmarks, the demo.

The top layer (docs/architecture.md, "Layers"): it composes the services (``selfplay_client``,
``trainer``, ``services``) over the shared plumbing (``plumbing``) and the game core
(``blobcore``). Nothing below imports it.
"""
