"""Shared plumbing: what every service needs to agree on, and nothing that runs a service.

- ``config``: the one configuration schema (every service and the application read it);
- ``netspec``: the wire contract with the network server (tensor names, shapes, dtypes);
- ``storage``: the one interface over a local directory or an ``s3://`` bucket that everything
  stored goes through (``open_store``, ``locations``), and the only module that tells them apart;
- ``records`` / ``records_pb2`` / ``shards``: game records and the crash-safe shards (one writer,
  one reader, one naming);
- ``model_repository`` / ``triton_config``: the model repository (versions published whole, read
  as local files) and the texts of its Triton config;
- ``fsio``: crash-safe writes (temp name, fsync, rename); ``metrics_http``: the metrics endpoint.

Layer 1 of the project (docs/architecture.md, "Layers"): it may import ``blobcore`` and
third-party libraries only, never a service or the application.
"""
