"""Self-play client: pooled search, evaluators, game records."""
