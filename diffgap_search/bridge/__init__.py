"""The DiffGAP bridge of an index: the glue between ``gap/`` (pure tensors) and an index (pairs, train, eval)."""
