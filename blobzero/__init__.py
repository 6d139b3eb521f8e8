"""BlobZero command line, configuration and benchmarks (the services' shared shell)."""
