"""An index opened for reading: its catalog, its encoders and bridge (loaded on first use), its FAISS indexes.

Readers never wait for the writer: the published FAISS generation is searched, plus an exact search over
vectors committed since it was published, and every hit is joined with the catalog, so a hit never names a
file or window that is not there at that moment. A reader never trains or builds an approximate index:
without a usable published file it searches the catalog's vectors exactly (``store/vector_index.load_index``).
The bridge and the FAISS records are re-read from the catalog on each access, so a long-running reader
(``dgsearch serve``) follows a ``dgsearch index`` or ``train`` running beside it without a restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from diffgap_search.config import CAVP_SPACE, Device, EncoderConfig, EncoderRole, FaissConfig, WindowConfig
from diffgap_search.encoders.base import Encoder, EncoderLoader, FrameEncoder, QueryVideoLoader, identity_of
from diffgap_search.encoders.paired import text_identity_of
from diffgap_search.errors import BridgeUnavailableError, IndexNotReadyError
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import (
    bind_encoder,
    embeds,
    space_dim,
    stored_encoder,
    stored_encoder_config,
    stored_window,
    text_shares_audio,
)
from diffgap_search.store.vector_index import LoadedIndex, Published, load_index

if TYPE_CHECKING:
    from diffgap_search.gap.bridge import Bridge
    from diffgap_search.gap.served_bridge import ServedBridge

_UNSET: object = object()


class OpenIndex:
    """One index open for queries. ``model`` overrides the index's recorded model id (its weights must still
    be the index's: checked by fingerprint); ``device`` is where its encoders run; ``precision`` the path its
    CLAP encoder runs on (``encoders/clap/precision.Precision``)."""

    def __init__(self, index_dir: Path, load_encoder: EncoderLoader, *, model: str | None = None,
                 device: str = Device.AUTO, faiss_cfg: FaissConfig = FaissConfig(),
                 load_video_encoder: QueryVideoLoader | None = None, precision: str = "auto") -> None:
        self.index_dir = index_dir
        self._precision = precision
        self.catalog = Catalog.open(index_dir)
        self.faiss_cfg = faiss_cfg
        self._load_encoder = load_encoder
        self._load_video_encoder = load_video_encoder
        self._model = model
        self._device = device
        self._encoder: Encoder | None = None
        self._video_encoder: FrameEncoder | None = None
        self._bridge: Bridge | ServedBridge | None | object = _UNSET
        self._bridge_record: object = None
        self._indexes: dict[str, tuple[Published | None, LoadedIndex]] = {}

    def close(self) -> None:
        self.catalog.close()

    # -- what the index records ------------------------------------------------------------------------
    def require_ready(self) -> None:
        """Raise IndexNotReadyError while the catalog exists but records no model or windowing yet: its first
        ``dgsearch index`` run has committed nothing to search (it may still be loading its model)."""
        if stored_encoder(self.catalog) is None or stored_window(self.catalog) is None:
            raise IndexNotReadyError(
                f"index {self.index_dir} is being built and has nothing to search yet: its first `dgsearch index`"
                " run has not committed any files; query again once it has"
            )

    def window(self) -> WindowConfig:
        """The index's windowing (its sample rate is its audio encoder's). Raises IndexNotReadyError while
        none is recorded (the first indexing run records it with its model, before its first files)."""
        self.require_ready()
        window = stored_window(self.catalog)
        assert window is not None  # checked by require_ready
        return window

    def embeds_text(self) -> bool:
        """Whether the index's recorded model embeds words (False for audio-only models such as aisfx)."""
        return embeds(self.catalog, "text")

    def words_searchable(self) -> bool:
        """False when the index's recorded model embeds audio only; True while none is recorded yet."""
        return stored_encoder(self.catalog) is None or self.embeds_text()

    def text_shares_audio(self) -> bool:
        """Whether the index's words and sounds share one space (CLAP); False with a text encoder of its own
        (``--text-model``), whose vectors reach the audio only through a bridge."""
        return text_shares_audio(self.catalog)

    def words_need_bridge(self, use_bridge: bool = True) -> str | None:
        """Why words cannot be searched semantically here without a bridge, when the index's words come from
        a text encoder of their own and no bridge with a text direction is in use; None otherwise."""
        if self.text_shares_audio():
            return None
        trained = "audio|text" in self.bridge_directions()
        if trained and use_bridge:
            return None
        text_model = (stored_encoder(self.catalog, EncoderRole.TEXT) or {}).get("model")
        why = "it is off (--no-bridge)" if trained else "the index has none for text yet: run `dgsearch train`"
        return f"the index's words ({text_model}) reach its sounds only through a DiffGAP bridge, and {why}"

    def bridge_directions(self) -> set[str]:
        """The directions (``"audio|text"``) of the index's bridge as its catalog record names them: no need to
        load the bridge (and torch) to know; the loaded bridge's own where a record lacks them."""
        record = self.catalog.get_meta("bridge")
        if record is None:
            return set()
        if "directions" in record:
            return set(record["directions"])
        return {d.value for d in self.bridge.directions} if self.bridge is not None else set()

    def cavp_video(self) -> bool:
        """Whether the index's video encoder is CAVP (its windows' sound is in the ``cavp_audio`` space)."""
        return CAVP_SPACE in (stored_encoder(self.catalog, EncoderRole.VIDEO) or {}).get("modalities", ())

    # -- models ------------------------------------------------------------------------------------------
    @property
    def encoder_cfg(self) -> EncoderConfig:
        """What loads the index's encoder: its recorded model (read again until the encoder is loaded, so an
        index opened during the first indexing run picks up the model that run records)."""
        return stored_encoder_config(self.catalog, model=self._model, device=self._device, precision=self._precision)

    @property
    def encoder(self) -> Encoder:
        """The index's audio encoder, loaded once. Raises IndexNotReadyError while no model is recorded."""
        if self._encoder is None:
            self.require_ready()
            encoder = self._load_encoder(self.encoder_cfg)
            bind_encoder(self.catalog, identity_of(encoder), str(self.index_dir))
            text = text_identity_of(encoder)
            if text is not None:  # the text model's weights must still be the recorded ones
                bind_encoder(self.catalog, text, str(self.index_dir), role=EncoderRole.TEXT)
            self._encoder = encoder
        return self._encoder

    @property
    def video_encoder(self) -> FrameEncoder:
        """The index's video encoder (CLIP frames or CAVP), loaded once from its record. Raises
        BridgeUnavailableError when the index has none (no video indexed) or no loader was given."""
        if self._video_encoder is None:
            stored = stored_encoder(self.catalog, EncoderRole.VIDEO)
            if stored is None or self._load_video_encoder is None:
                raise BridgeUnavailableError("this index has no video encoder: index some videos first")
            revision = stored.get("commit") or stored.get("revision")
            encoder = self._load_video_encoder(stored["model"], self.encoder_cfg.device, revision)
            bind_encoder(self.catalog, identity_of(encoder), str(self.index_dir), role=EncoderRole.VIDEO)
            self._video_encoder = encoder
        return self._video_encoder

    @property
    def bridge(self) -> Bridge | ServedBridge | None:
        """The index's DiffGAP bridge (checked against its encoders), or None when it has none.

        Reloaded when the catalog's ``meta["bridge"]`` record changes (a ``dgsearch train`` committed a new
        one): one small meta read per access."""
        record = self.catalog.get_meta("bridge")
        if self._bridge is _UNSET or record != self._bridge_record:
            from diffgap_search.bridge.index_bridge import load_index_bridge

            self._bridge = load_index_bridge(self.index_dir, self.catalog, served=True)
            self._bridge_record = record
        return self._bridge

    # -- vector spaces -----------------------------------------------------------------------------------
    def index_for(self, space: str) -> LoadedIndex:
        """The space's index, reloaded when the catalog's record of it changes: the published FAISS generation,
        or, when none is usable, an exact (flat) index of the catalog's vectors. Never trains anything."""
        pub = Published.read(self.catalog, space)
        cached = self._indexes.get(space)
        if cached is None or cached[0] != pub:
            dim = space_dim(self.catalog, space) or 0
            loaded = load_index(self.index_dir, self.catalog, space, dim, self.faiss_cfg)
            self._indexes[space] = (loaded.record, loaded)
        return self._indexes[space][1]
