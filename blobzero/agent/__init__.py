"""``blobzero agent``: the trained agent as a service — gRPC ``blobzero.v1.BlobAgent`` (Advise and
hosted games), a web page to play against it, metrics. docs/agent.md describes it.

Modules: ``position`` (a seat's knowledge -> a Round), ``engine`` (concurrent searches, one network
batch per step), ``models`` (Triton or ONNX Runtime), ``games`` (hosted games), ``api`` (the
service, transport-free), ``service`` (gRPC), ``web`` (the page and JSON), ``server`` (the command).
"""
