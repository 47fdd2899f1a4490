"""LAION-CLAP through transformers: audio and text into one space."""
