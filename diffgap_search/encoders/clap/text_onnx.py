"""A word query on a CLAP index without torch or transformers: the text tower exported once to ONNX, run by ONNX
Runtime behind the folder's own ``tokenizer.json`` (the ``tokenizers`` library).

A cold ``dgsearch query "words"`` on a CLAP index built transformers' ``ClapModel`` to embed one text: importing
torch and transformers' modelling code and building both towers took 6-8 s of an 8 s query on 2 cores. The text
tower (RoBERTa and its projection) is all a word needs; once it has been exported here, the query reads the
tokenizer with ``tokenizers`` (8 ms) and runs an ONNX Runtime session on the export (about 1 s to open 500 MB for
the full-size model, tens of ms per text).

The export is made and checked by the first process on this machine that loads a CLAP model folder eagerly with
``--precision auto`` on the CPU and finds onnxruntime and onnx installed (usually ``dgsearch index``):
``TextTower`` in float32 (the text tower and its projection) through torch's TorchScript exporter (opset 17,
batch and length dynamic), written to a temporary name, and kept only if, on the text probe's texts
(``text_path.PROBE_TEXTS``), the ``tokenizers`` ids equal transformers' tokenizer's and every vector is within
cosine 0.999 of torch's float32 one. The verdict is remembered in ``precision-probes.json`` as an ``auto`` choice
(``dgsearch info``: ``text query on cpu, ...: onnx``; ``fp32`` where the check failed, and then word queries load
the model as before). Folders without a ``tokenizer.json`` (vocab and merges only) and LAION ``.pt`` checkpoints
keep the torch path. The file is keyed by the weights' sha256, ``EXPORT_VERSION`` and the torch, transformers and
onnxruntime versions.

Imports neither torch nor onnxruntime at import; ``OnnxClapText`` imports onnxruntime and tokenizers,
``export_text_checked`` torch.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.atomic_files import temporary_beside
from diffgap_search.encoders.base import checked_texts
from diffgap_search.encoders.onnx_session import cpu_session, installed_version, runtime_version
from diffgap_search.encoders.precision import MIN_LOW_PRECISION_COSINE, Precision, cached_choice, settle_export
from diffgap_search.encoders.weights.fingerprint import cache_dir
from diffgap_search.notices import notice

EXPORT_VERSION = 1  # 1 (2026-12-06): TextTower in float32, opset 17, input_ids and attention_mask (batch, length)
TOKENIZER_FILE = "tokenizer.json"
INPUTS = ("input_ids", "attention_mask")
log = logging.getLogger(__name__)


def runtime_ready() -> bool:
    """Whether onnxruntime and tokenizers can be imported (read from the installed packages, nothing imported)."""
    return runtime_version() is not None and importlib.util.find_spec("tokenizers") is not None


def _versions() -> str:
    return f"torch {installed_version('torch')}|tf {installed_version('transformers')}|ort {runtime_version() or 'none'}"


def text_query_key(fingerprint: str) -> str:
    """``"<sha256>|text query|cpu|torch <v>|tf <v>, ort <v>|clap text onnx <n>|auto"``: where the export's verdict
    is remembered (an ``auto`` choice of seven parts: ``dgsearch info`` lists it)."""
    torch_v, tf_v, ort_v = _versions().split("|")
    return f"{fingerprint}|text query|cpu|{torch_v}|{tf_v}, {ort_v}|clap text onnx {EXPORT_VERSION}|auto"


def text_onnx_file(fingerprint: str) -> Path:
    """Where the export of these weights' text tower lives (``<cache_dir>/onnx/<sha256>-text-x<n>-….onnx``)."""
    versions = _versions().replace(" ", "").replace("|", "-")
    return cache_dir() / "onnx" / f"{fingerprint}-text-x{EXPORT_VERSION}-{versions}.onnx".replace("+", "_")


class OnnxClapText:
    """CLAP's ``embed_text`` on an ONNX Runtime session of the exported text tower, tokenised by ``tokenizers``
    as transformers' tokenizer does it for ``ClapEncoder._tokens`` (cut at ``max_tokens``, padded to the longest).
    """

    def __init__(self, path: Path, tokenizer_file: Path, max_tokens: int, batch_size: int = 16) -> None:
        from tokenizers import Tokenizer

        self.max_tokens, self.batch_size = max_tokens, batch_size
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(max_length=max_tokens)
        pad = _pad_token(tokenizer_file)
        self._tokenizer.enable_padding(pad_id=self._tokenizer.token_to_id(pad) or 0, pad_token=pad)
        self._session = cpu_session(path)
        width = self._session.get_outputs()[0].shape[-1]
        self.dim = width if isinstance(width, int) else 0  # the projection's size (static in the export)

    def tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """B strings -> ``(input_ids, attention_mask)``, each ``(B, L) int64``, L <= ``max_tokens``."""
        encoded = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        return ids, mask

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """N non-empty strings -> ``(N, D) float32``, unit rows (``ClapEncoder.embed_text``'s checks)."""
        items = checked_texts(texts)
        parts = []
        for lo in range(0, len(items), self.batch_size):
            ids, mask = self.tokens(items[lo : lo + self.batch_size])
            parts.append(self._session.run(None, {INPUTS[0]: ids, INPUTS[1]: mask})[0])
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.concatenate(parts, axis=0).astype(np.float32, copy=False)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), np.float32(1e-12))


def _pad_token(tokenizer_file: Path) -> str:
    """The padding token named in ``tokenizer_config.json`` beside ``tokenizer_file`` (RoBERTa's ``<pad>``)."""
    try:
        config = json.loads((tokenizer_file.parent / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    pad = config.get("pad_token", "<pad>")
    return str(pad.get("content", "<pad>") if isinstance(pad, dict) else pad)


def ready_text_file(folder: Path, fingerprint: str) -> Path | None:
    """The checked export of these weights' text tower, when onnxruntime and tokenizers are here, the folder has a
    ``tokenizer.json`` and this machine made and kept the export; else None. Opens nothing."""
    if not (runtime_ready() and (folder / TOKENIZER_FILE).is_file()):
        return None
    if cached_choice(text_query_key(fingerprint)) != Precision.ONNX:
        return None
    path = text_onnx_file(fingerprint)
    return path if path.is_file() else None


def open_ready_text(folder: Path, fingerprint: str, max_tokens: int, batch_size: int = 16) -> OnnxClapText | None:
    """A session on ``ready_text_file``'s export, or None. A file ONNX Runtime cannot open is logged and removed
    (the next eager load exports it again)."""
    path = ready_text_file(folder, fingerprint)
    if path is None:
        return None
    try:
        return OnnxClapText(path, folder / TOKENIZER_FILE, max_tokens, batch_size)
    except Exception as error:  # noqa: BLE001 - onnxruntime and tokenizers raise their own classes
        log.warning("CLAP: ONNX Runtime cannot open %s (%s); this query loads the model", path, error)
        path.unlink(missing_ok=True)
        return None


TokensFn = Callable[[list[str]], tuple[Any, Any]]  # transformers' tokenizer as ClapEncoder._tokens calls it


def export_text_checked(model: Any, folder: Path, fingerprint: str, tokens: TokensFn, max_tokens: int) -> Path | None:
    """Export ``model``'s float32 text tower here once and keep it if it agrees with torch (module docstring): the
    kept file's path, or None (no tokenizer.json, onnx or onnxruntime missing, the check failed now or before, the
    export failed: logged, remembered as ``fp32``). ``tokens``: ``ClapEncoder._tokens`` (transformers' tokenizer);
    ``model``: the float32 ``ClapModel`` on the CPU, before any in-place conversion."""
    from diffgap_search.encoders.clap.text_path import PROBE_TEXTS

    key, target = text_query_key(fingerprint), text_onnx_file(fingerprint)
    remembered = cached_choice(key)
    if not ((folder / TOKENIZER_FILE).is_file() and runtime_ready() and importlib.util.find_spec("onnx")):
        return None
    if remembered == Precision.FP32 or (remembered == Precision.ONNX and target.is_file()):
        return target if remembered == Precision.ONNX else None
    tmp = temporary_beside(target)
    texts = list(PROBE_TEXTS)
    notice(f"CLAP, first use on this machine: exporting the text tower for word queries without torch, once"
           f" (about 10 s on 2 cores, ~500 MB in {target.parent})")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        ids, mask = tokens(texts)
        reference = _export(model, ids, mask, tmp)
        runner = OnnxClapText(tmp, folder / TOKENIZER_FILE, max_tokens)
        same_ids = np.array_equal(runner.tokens(texts)[0], ids.cpu().numpy())
        ours = runner.embed_text(texts)
        cosine = float(np.min(np.sum(ours * reference, axis=1)))
    except Exception as error:  # noqa: BLE001 - an optional speed-up: any failure leaves word queries on torch
        log.warning("CLAP: the text tower's ONNX export failed (%s); word queries load the model", error)
        return settle_export(key, tmp, target, kept=False)
    kept = same_ids and cosine >= MIN_LOW_PRECISION_COSINE
    if not kept:
        log.warning("CLAP: the text tower's ONNX export disagrees (same tokens %s, cosine %.6f); word queries load "
                    "the model", same_ids, cosine)
    return settle_export(key, tmp, target, kept)


def export_for_queries(encoder: Any, folder: Path) -> None:
    """With ``auto`` on the CPU, export and check ``encoder``'s (a ``ClapEncoder`` of ``folder``) float32 text tower
    once per machine, before any text converts it in place (a no-op once the verdict is remembered)."""
    if encoder.precision == Precision.AUTO and encoder.device.type == "cpu" and not encoder._text_converted:
        export_text_checked(encoder.model, folder, encoder.fingerprint, encoder._tokens, encoder.text_max_tokens)


def _export(model: Any, ids: Any, mask: Any, path: Path) -> np.ndarray:
    """``TextTower(model)`` in float32 to ``path`` (batch and length dynamic); returns its unit-row vectors of
    ``(ids, mask)``, ``(B, D) float32``, the reference the export is checked against."""
    import warnings

    import torch

    from diffgap_search.encoders.clap.batches import unit_rows
    from diffgap_search.encoders.clap.text_path import TextTower

    tower = TextTower(model).eval()
    ids, mask = ids.cpu(), mask.cpu()
    dynamic = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
               "embedding": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice, tracer warnings
        reference = unit_rows(tower(ids, mask))
        torch.onnx.export(tower, (ids, mask), str(path), input_names=list(INPUTS), output_names=["embedding"],
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)
    return reference
