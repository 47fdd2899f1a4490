"""Embedding models behind the ``Encoder`` protocol."""
