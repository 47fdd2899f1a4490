"""diffgap-search: a search engine for sound, bridging modalities with DiffGAP.

The package is cut by stage of the data flow: ``media`` (discover, decode, window) -> ``encoders``
(LAION-CLAP) -> ``gap`` (the DiffGAP bridge) -> ``store`` (SQLite catalog + FAISS) -> ``search`` ->
``cli``. Heavy modules (torch, faiss, transformers) are imported lazily by the stages that need them.
"""

__version__ = "0.1.0"
