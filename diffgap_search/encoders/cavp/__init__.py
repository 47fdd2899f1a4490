"""CAVP (Diff-Foley): video windows and sound into one space."""
