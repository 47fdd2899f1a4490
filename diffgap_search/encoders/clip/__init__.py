"""CLIP frames: the image tower, frames mean-pooled per window."""
