"""Paired embeddings for training and evaluating a DiffGAP bridge: from an index, or from an ``.npz`` file.

From an index (no labels needed):
- audio–text: every captioned file gives one pair per (audio window, caption): search bridges single
  windows (a text query against each window, each window's ``audio_as_text``), so the bridge learns at
  that granularity (on the synthetic benchmark training on clip means instead loses R@1: README).
  ``captions`` picks which captions: ``sidecars`` (the real ones, from sidecar files), ``names`` (weak
  captions: the cleaned file name and tag values, ``media/weak_captions.py``, for every file), ``all``
  (both) or ``per-file`` (a file's sidecar captions where it has any, else its weak captions: ``sidecars`` on
  a library captioned throughout, ``names`` on one without a sidecar). Weak captions are derived here, at
  train time, never stored: they are a function of the file's current name and tags, so a rename or a
  re-tag needs no re-indexing, and search hits and the keyword index never show a file's own name back as
  if it were a caption. Each text pair remembers its source
  (``Pairs.sources``) so ``dgsearch eval`` scores weak-caption pairs apart from real ones;
- audio–video: every video window with both vectors gives (its soundtrack's embedding, its frames').

A pairs file is an ``.npz`` whose arrays are named by modality (``audio``, ``text``, ``video``), row i of
each being one pair (NaN rows: that modality is missing from the pair), with an optional ``group`` array
(``(N,)`` integers or strings: the clip each pair comes from; without it, rows with identical audio
vectors form a group).

Every pair belongs to a *group*: its clip (the source file's content hash in an index). Every split is
by group: for an index, a fixed tenth of the groups, chosen by a hash that does not depend on the rest of
the data, is held out for ``dgsearch eval`` and never trained on, so adding files to an index never moves
a test pair into training; a pairs file is trained on, or evaluated, whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffgap_search.bridge.index_bridge import audio_source
from diffgap_search.config import Captions
from diffgap_search.encoders.base import Encoder, EncoderLoader, identity_of
from diffgap_search.errors import InputNotFoundError, QueryNotSupportedError, UsageError
from diffgap_search.gap.groups import audio_groups
from diffgap_search.media.weak_captions import weak_captions
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.pair_rows import paired_vectors
from diffgap_search.store.rows import FileRow
from diffgap_search.store.settings import bind_encoder, embeds, stored_encoder, stored_encoder_config
from diffgap_search.store.similarity_rows import file_segment_ids
from diffgap_search.store.tags import tags_of as stored_tags

MODALITIES = ("audio", "text", "video")
TEST_MODULUS = 10  # one group in ten is held out
# what ``auto`` resolves to, and the rest
CAPTION_CHOICES = (Captions.SIDECARS, Captions.NAMES, Captions.ALL, Captions.PER_FILE)
SIDECAR, NAME = "sidecar", "name"  # Pairs.sources of a text pair; "" for a video pair
TagReader = Callable[[FileRow], Sequence[str]]
# the embedded tags that describe a sound, in this order, become weak captions; artist and library do not,
# nor comments: in real files they are mostly tool notes and links ("Processed by SoX", a freesound URL, as
# Debian's sonic-pi-samples carry), which would teach the bridge that such words describe a sound
WEAK_CAPTION_TAGS = ("title", "description", "keywords", "category")


@dataclass(frozen=True)
class Pairs:
    """``arrays``: modality -> ``(N, D) float32`` (NaN rows where missing); ``groups``: ``(N,)`` str keys;
    ``sources``: ``(N,)`` str, where a text pair's caption comes from (``"sidecar"``, ``"name"``; ``""`` for
    other pairs), or None (a pairs file: all real)."""

    arrays: dict[str, np.ndarray]
    groups: np.ndarray
    sources: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.groups)

    def take(self, mask: np.ndarray) -> Pairs:
        """The pairs where ``mask (N,) bool`` is set."""
        return Pairs({k: v[mask] for k, v in self.arrays.items()}, self.groups[mask],
                     None if self.sources is None else self.sources[mask])

    def weak_mask(self) -> np.ndarray:
        """``(N,) bool``: the pairs whose caption is a weak one (a file name or tag, not a sidecar caption)."""
        return np.zeros(len(self), bool) if self.sources is None else self.sources == NAME

    def caption_counts(self) -> dict[str, int]:
        """Text pairs per caption source: ``{"sidecar": n, "name": m}`` (zeros included)."""
        text = self.arrays.get("text")
        if text is None or self.sources is None:
            n = 0 if text is None else int(np.isfinite(text).all(1).sum())
            return {SIDECAR: n, NAME: 0}
        return {src: int((self.sources == src).sum()) for src in (SIDECAR, NAME)}

    def counts(self) -> dict[str, int]:
        """Pairs per pair set (``audio-text``, ``audio-video``) with both sides present."""
        audio_ok = np.isfinite(self.arrays["audio"]).all(1)
        return {f"audio-{m}": int((audio_ok & np.isfinite(self.arrays[m]).all(1)).sum())
                for m in ("text", "video") if m in self.arrays}

    def n_groups(self) -> int:
        """How many groups (clips) the pairs come from."""
        return len(set(self.groups.tolist()))

    def split(self) -> tuple[Pairs, Pairs]:
        """``(train, test)`` by the fixed hash of each pair's group."""
        test = np.array([is_test_group(g) for g in self.groups], dtype=bool)
        return self.take(~test), self.take(test)


def is_test_group(group: str) -> bool:
    """Whether ``group`` is in the index's held-out tenth (a hash of the group id alone)."""
    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % TEST_MODULUS == 0


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _file_captions(catalog: Catalog, files: dict[int, FileRow], captions: Captions,
                   tags_of: TagReader | None) -> dict[int, list[tuple[str, str]]]:
    """file id -> its ``(caption, source)`` list for the ``captions`` choice (sidecar ones first)."""
    out: dict[int, list[tuple[str, str]]] = {}
    if captions in (Captions.SIDECARS, Captions.ALL, Captions.PER_FILE):
        for fid, caps in catalog.captions_of(files).items():
            out.setdefault(fid, []).extend((c, SIDECAR) for c in caps)
    if captions in (Captions.NAMES, Captions.ALL, Captions.PER_FILE):
        stored = stored_tags(catalog, files) if tags_of is None else {}
        for fid, row in files.items():
            if captions is Captions.PER_FILE and out.get(fid):
                continue  # per-file: a file's own sidecar captions stand for it
            if tags_of is not None:
                tags: Sequence[str] = tags_of(row)
            else:  # the tags read from the file when it was indexed (title, description, keywords ...)
                tags = [v for key in WEAK_CAPTION_TAGS for v in stored.get(fid, {}).get(key, [])]
            out.setdefault(fid, []).extend((c, NAME) for c in weak_captions(row.path, tags))
    return out


def index_pairs(catalog: Catalog, text_encoder: Encoder | None, kinds: Sequence[str], *,
                captions: Captions | str = Captions.SIDECARS, tags_of: TagReader | None = None) -> Pairs:
    """Pairs the index holds, for ``kinds`` among ``"text"``, ``"video"`` (text needs the CLAP encoder).

    ``captions`` (``CAPTION_CHOICES``: not ``auto``, resolved before) picks the text pairs' captions;
    ``tags_of(file)`` gives a file's tag values (title, description, keywords …) for its weak captions (None:
    the tags stored when the file was indexed)."""
    error = f"--captions must be one of {', '.join(CAPTION_CHOICES)}, got {{!r}}"
    chosen = Captions.parse(captions, error)
    if chosen not in CAPTION_CHOICES:
        raise UsageError(error.format(str(captions)))
    rows: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
    groups: list[str] = []
    sources: list[str] = []
    dim = int(catalog.get_meta("encoder")["dim"])
    nan = np.full(dim, np.nan, np.float32)
    if "text" in kinds and text_encoder is not None:
        files = {f.id: f for f in catalog.files(status="ok")}
        for fid, caps in sorted(_file_captions(catalog, files, chosen, tags_of).items()):
            seg_ids = file_segment_ids(catalog, fid)
            audio = list(catalog.vectors_of("audio", seg_ids).values())
            if not audio or not caps:
                continue
            texts = text_encoder.embed_text([c for c, _src in caps])
            for window in audio:  # one pair per (window, caption): the granularity search serves
                for t, (_c, src) in zip(texts, caps):
                    rows["audio"].append(_unit(np.asarray(window, np.float32)))
                    rows["text"].append(t)
                    rows["video"].append(nan)
                    groups.append(files[fid].sha256 or str(fid))
                    sources.append(src)
    if "video" in kinds:  # CAVP: the soundtrack in CAVP's space (``audio_source``)
        for pair in paired_vectors(catalog, audio_source(catalog, "video"), "video"):
            if len(pair.second) != dim:
                raise UsageError(
                    f"video embeddings are {len(pair.second)}-d but audio ones are {dim}-d: a DiffGAP bridge needs"
                    " one dimension; index with a --video-model whose projection size matches the audio model's"
                )
            rows["audio"].append(pair.first)
            rows["video"].append(pair.second)
            rows["text"].append(nan)
            groups.append(f"{pair.sha256}")
            sources.append("")
    arrays = {m: (np.stack(v) if v else np.zeros((0, dim), np.float32)) for m, v in rows.items()}
    return Pairs({m: a for m, a in arrays.items() if m == "audio" or np.isfinite(a).all(1).any()},
                 np.array(groups, dtype=object), np.array(sources, dtype=object))


def gather_pairs(catalog: Catalog, index_dir: Path, load_encoder: EncoderLoader, kinds: Sequence[str],
                 pairs_file: Path | None, captions: Captions | str = Captions.SIDECARS,
                 tags_of: TagReader | None = None) -> Pairs:
    """The pairs to train/evaluate on: from ``pairs_file`` when given, else from the index (text pairs with
    the ``captions`` choice, :func:`index_pairs`; the index's text encoder is loaded with ``load_encoder``)."""
    if pairs_file is not None:
        pairs = file_pairs(pairs_file)
        dim = (stored_encoder(catalog) or {}).get("dim")
        if dim is not None and pairs.arrays["audio"].shape[1] != dim:
            raise UsageError(
                f"{pairs_file} holds {pairs.arrays['audio'].shape[1]}-d embeddings, but index {index_dir} uses"
                f" {dim}-d ones: pairs must come from the index's encoders"
            )
        return pairs
    if stored_encoder(catalog) is None:
        raise UsageError(f"index {index_dir} holds no indexed media, so no pairs of its own: pass --pairs-file")
    encoder = None
    if "text" in kinds and not embeds(catalog, "text"):
        if list(kinds) == ["text"]:
            raise QueryNotSupportedError(
                f"index {index_dir} was built with an audio-only model ({(stored_encoder(catalog) or {}).get('model')!r}):"
                " it has no text embeddings to train a text bridge on; use --pairs video"
            )
        kinds = [kind for kind in kinds if kind != "text"]  # "all": the pairs this index can have
    if "text" in kinds:
        encoder = load_encoder(stored_encoder_config(catalog))
        bind_encoder(catalog, identity_of(encoder), str(index_dir))
    return index_pairs(catalog, encoder, kinds, captions=captions, tags_of=tags_of)


def file_pairs(path: Path) -> Pairs:
    """Pairs from an ``.npz`` file (arrays named by modality, ``audio`` required; optional ``group``)."""
    if not path.is_file():
        raise InputNotFoundError(f"pairs file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k], dtype=np.float32) for k in data.files if k in MODALITIES}
            raw_groups = np.asarray(data["group"]) if "group" in data.files else None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a readable .npz pairs file ({exc})") from None
    if "audio" not in arrays or len(arrays) < 2:
        raise UsageError(f"{path} must hold an 'audio' array and a 'text' and/or 'video' array, row i = pair i")
    n = {v.shape for v in arrays.values()}
    if len(n) != 1 or len(next(iter(n))) != 2:
        raise UsageError(f"{path}: all arrays must be (N, D) of one shape, got { {k: v.shape for k, v in arrays.items()} }")
    if raw_groups is None:
        return Pairs(arrays, audio_groups(arrays["audio"]))
    return Pairs(arrays, _group_ids(path, raw_groups, len(arrays["audio"])))


def _group_ids(path: Path, raw: np.ndarray, n: int) -> np.ndarray:
    """A pairs file's ``group`` array -> ``(N,)`` object array of ids as strings; UsageError when unusable."""
    if raw.shape != (n,):
        raise UsageError(f"{path}: 'group' must be a 1-d array of {n} clip ids (one per pair), got shape {raw.shape}")
    if raw.dtype.kind in "iu":
        return np.array([str(int(g)) for g in raw], dtype=object)
    if raw.dtype.kind == "U":
        return np.array([str(g) for g in raw], dtype=object)
    if raw.dtype.kind == "S":
        try:
            return np.array([g.decode("utf-8") for g in raw], dtype=object)
        except UnicodeDecodeError:
            raise UsageError(f"{path}: 'group' holds bytes that are not UTF-8 text") from None
    raise UsageError(f"{path}: 'group' must hold integer or string clip ids, not {raw.dtype}")
