"""Embedding models by family (``clap/``, ``aisfx/``, ``clip/``, ``cavp/``; ``weights/``: finding, fetching and
converting their weights), one protocol per role in ``base.py``, loaded from a configuration by ``loading.py``."""
