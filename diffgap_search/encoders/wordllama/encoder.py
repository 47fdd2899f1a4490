"""``--text-model wordllama``: the static text embedding inside the ``wordllama`` package (text only).

WordLlama 0.4.0.post1 (MIT; Lee Miller, https://github.com/dleemiller/WordLlama) ships one model in its
wheel: ``wordllama/weights/l2_supercat_256.safetensors`` (``embedding.weight``, ``(32000, 256) float16``:
the token embedding of Llama-2's vocabulary, trained as a matryoshka embedding and shipped truncated to its
first 256 dimensions) and ``wordllama/tokenizers/l2_supercat_tokenizer_config.json`` (a ``tokenizers``
file for Llama-2's tokenizer).

This module is our own loader; it never imports the package (whose import configures the root logger,
loads compiled helpers and can fetch files from the network). It reads the two files with ``safetensors``
and ``tokenizers``: nothing is unpickled. ``WordLlamaInference.embed`` (``wordllama/inference.py``), which
it equals (``tests/test_encoder_wordllama.py``: cosine >= 0.9999 against the package's vectors):

1. tokenise with ``encode_batch(texts, add_special_tokens=False)``, padding on, no truncation;
2. clamp the ids into the vocabulary, look up ``embedding.astype(float32)[ids]``;
3. average-pool over the real tokens (the attention mask; a text with no tokens would divide by 1);
4. (``norm=True``) L2-normalise. We always normalise: every encoder here returns unit rows.

Padding tokens only fill the batch, so step 3 is the mean of each text's own token rows, which is what we
compute text by text. The 256-d vector is then zero-padded to ``out_dim`` (the audio encoder's D, 512 for
aisfx) so that one DiffGAP bridge, which maps vectors of one size, can join the two spaces: padding with
zeros changes no cosine between texts and no norm.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.encoders.weights.fingerprint import file_sha256
from diffgap_search.errors import ModelUnavailableError, QueryNotSupportedError

WORDLLAMA = "wordllama"
VERSION = "0.4.0.post1"
INSTALL_HINT = f"pip install --no-deps wordllama=={VERSION} (its model ships inside the package)"
WEIGHTS_IN_PACKAGE = ("weights", "l2_supercat_256.safetensors")
TOKENIZER_IN_PACKAGE = ("tokenizers", "l2_supercat_tokenizer_config.json")
TENSOR_KEY = "embedding.weight"
_LOADED: dict[tuple[Any, ...], WordLlamaEncoder] = {}  # the loaded model, by its files' state and out_dim
_LOADED_LOCK = threading.Lock()
NATIVE_DIM = 256


class WordLlamaEncoder:
    """Texts -> ``(N, out_dim) float32`` unit rows: WordLlama's mean token embedding, zero-padded.

    Attributes:
        model_id: ``"wordllama"``.
        fingerprint: sha256 hex digest over the weights file's and the tokenizer file's digests.
        dim: ``out_dim``, D of the vectors it returns (the first 256 carry WordLlama's embedding).
        modalities: ``("text",)``.
        provenance: where the files came from (``source: package``, the package version, the native size).
    """

    model_id = WORDLLAMA
    modalities: tuple[str, ...] = ("text",)

    def __init__(self, table: np.ndarray, tokenizer: Any, *, fingerprint: str, out_dim: int = NATIVE_DIM,
                 provenance: dict[str, Any] | None = None) -> None:
        if out_dim < table.shape[1]:
            raise ValueError(f"out_dim {out_dim} is below WordLlama's {table.shape[1]} dimensions")
        self.table = np.ascontiguousarray(table, dtype=np.float32)  # (V, 256) float32
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint
        self.dim = out_dim
        self.provenance = dict(provenance or {})

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """N non-empty strings -> ``(N, dim) float32``, L2-normalised (columns past 256 are zero)."""
        if isinstance(texts, str):
            raise TypeError("embed_text takes a sequence of strings, not one string")
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        native = self.table.shape[1]
        for row, enc in enumerate(encodings):
            real = np.asarray(enc.attention_mask, bool)  # the batch pads shorter texts: mask 0
            ids = np.clip(np.asarray(enc.ids, np.int64)[real], 0, len(self.table) - 1)
            if len(ids) == 0:
                raise QueryNotSupportedError(f"WordLlama found no words in {texts[row]!r}")
            mean = self.table[ids].sum(axis=0, dtype=np.float32) / np.float32(len(ids))
            out[row, :native] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return out


def package_files() -> tuple[Path, Path]:
    """``(weights, tokenizer)`` paths inside the installed ``wordllama`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec(WORDLLAMA)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelUnavailableError(f"text model 'wordllama' needs the wordllama package: {INSTALL_HINT}")
    root = Path(locations[0])
    paths = (root.joinpath(*WEIGHTS_IN_PACKAGE), root.joinpath(*TOKENIZER_IN_PACKAGE))
    for path, parts in zip(paths, (WEIGHTS_IN_PACKAGE, TOKENIZER_IN_PACKAGE)):
        if not path.is_file():
            raise ModelUnavailableError(f"text model 'wordllama': the package at '{root}' has no "
                                        f"{'/'.join(parts)}; reinstall it: {INSTALL_HINT}")
    return paths


def read_table(path: Path) -> np.ndarray:
    """The ``(V, 256) float32`` token table of a WordLlama safetensors file (``ModelUnavailableError`` if
    the file is not one)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            if TENSOR_KEY not in f.keys():
                raise ModelUnavailableError(f"text model 'wordllama': '{path}' holds no {TENSOR_KEY}; {INSTALL_HINT}")
            table = f.get_tensor(TENSOR_KEY)
    except (SafetensorError, OSError) as exc:
        raise ModelUnavailableError(f"text model 'wordllama': '{path}' is not readable ({exc}); {INSTALL_HINT}") from None
    if table.ndim != 2 or table.shape[1] != NATIVE_DIM:
        raise ModelUnavailableError(f"text model 'wordllama': '{path}' holds a {table.shape} table, not (V, {NATIVE_DIM})")
    return table.astype(np.float32)


def read_tokenizer(path: Path) -> Any:
    """The ``tokenizers.Tokenizer`` of ``path``, set as WordLlama's inference sets it (padding, no truncation)."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises its own Exception subclass for a bad file
        raise ModelUnavailableError(f"text model 'wordllama': '{path}' is not a tokenizer file ({exc})") from None
    tokenizer.enable_padding()
    tokenizer.no_truncation()
    return tokenizer


def load_wordllama_encoder(out_dim: int = NATIVE_DIM, files: tuple[Path, Path] | None = None) -> WordLlamaEncoder:
    """WordLlama from the installed package (or ``files``: ``(weights, tokenizer)``), its vectors padded to
    ``out_dim``. Raises ``ModelUnavailableError`` (package or file missing or unreadable).

    Loaded once per process while its two files stay as they were (path, size, mtime, inode): a process that
    asks again (each look of ``index --watch`` checks the index's text model; a server's queries) gets the
    same encoder instead of hashing and reading 18 MB again (76 ms here); the table takes 33 MB."""
    weights, tokenizer_file = files or package_files()
    key = (out_dim, _file_state(weights), _file_state(tokenizer_file))
    with _LOADED_LOCK:
        if key in _LOADED:
            return _LOADED[key]
    encoder = _load(out_dim, weights, tokenizer_file)
    with _LOADED_LOCK:
        _LOADED.clear()  # one model, as the package has one: an upgraded package's files replace the old
        _LOADED[key] = encoder
    return encoder


def _file_state(path: Path) -> tuple[str, int, int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelUnavailableError(f"text model 'wordllama': '{path}' is not readable ({exc}); {INSTALL_HINT}") from None
    return str(path), st.st_size, st.st_mtime_ns, st.st_ino


def _load(out_dim: int, weights: Path, tokenizer_file: Path) -> WordLlamaEncoder:
    digest = hashlib.sha256(f"{file_sha256(weights)}:{file_sha256(tokenizer_file)}".encode()).hexdigest()
    try:
        version = metadata.version(WORDLLAMA)
    except metadata.PackageNotFoundError:
        version = None
    provenance = {"source": "package", "package_version": version, "weights": WEIGHTS_IN_PACKAGE[1],
                  "native_dim": NATIVE_DIM}
    return WordLlamaEncoder(read_table(weights), read_tokenizer(tokenizer_file), fingerprint=digest,
                            out_dim=out_dim, provenance=provenance)
