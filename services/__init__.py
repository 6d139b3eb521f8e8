"""Services beside the loop: the local Triton launcher and publishing.

The agent (``blobzero agent``) lives in ``blobzero/agent/``: it is an application of the
search, above this layer."""
