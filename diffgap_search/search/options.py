"""Search options from the flags both faces take: ``dgsearch query``'s options and the web API's parameters
build their ``SearchConfig`` here, with the same checks and the same defaults (``config.DEFAULT_MODE``)."""

from __future__ import annotations

from diffgap_search.config import DEFAULT_MODE, SearchConfig, SearchMode
from diffgap_search.errors import UsageError
from diffgap_search.search.filters import parse_range, parse_tag
from diffgap_search.store.labels import clean_label

KINDS = ("audio", "video")


def search_options(
    top_k: int = 10,
    min_score: float | None = None,
    kind: str | None = None,
    glob: str | None = None,
    segments: bool = False,
    mode: str | SearchMode = DEFAULT_MODE,
    duration: str | None = None,
    sample_rate: int | None = None,
    channels: int | None = None,
    folder: str | None = None,
    no_bridge: bool = False,
    all_copies: bool = False,
    tag: str | None = None,
    label: str | None = None,
    pinpoint: bool = False,
) -> SearchConfig:
    """The ``SearchConfig`` of these options (``duration`` as ``MIN..MAX`` seconds, either bound optional).

    Raises UsageError for a ``kind`` other than audio/video, an unknown ``mode``, a malformed ``duration`` or
    ``tag``, and ``pinpoint`` with the keyword mode (which loads no model)."""
    if kind not in (None, *KINDS):
        raise UsageError(f"--kind must be 'audio' or 'video', got {kind!r}")
    low, high = parse_range(duration) if duration is not None else (None, None)
    if tag is not None:
        parse_tag(tag)
    if pinpoint and SearchMode.of(mode) is SearchMode.KEYWORD:
        raise UsageError("--pinpoint narrows hits by their sound, and --mode keyword loads no model: use --mode hybrid"
                         " or semantic with --pinpoint")
    if label is not None:
        label = clean_label(label)
    return SearchConfig(top_k=top_k, min_score=min_score, kind=kind, path_glob=glob, group_by_file=not segments,
                        mode=SearchMode.of(mode), duration_min=low, duration_max=high, sample_rate=sample_rate,
                        channels=channels, folder=folder, use_bridge=not no_bridge, all_copies=all_copies,
                        tag=tag, label=label, pinpoint=pinpoint)
