"""Model weights shared by every family: the hub cache, repository layouts, fingerprints, conversion, progress."""
