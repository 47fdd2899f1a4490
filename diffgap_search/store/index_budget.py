"""The memory budget in the index-type rule: flat → IVF-Flat → (above the budget) a compressed index.

A space's index must fit ``budget`` megabytes (10⁶ bytes) of RAM in a query process. Flat and IVF-Flat hold
every vector as float32 (``4·D`` bytes, plus 8-byte ids in the inverted lists and 8 in ``IndexIDMap2``'s
map); when that is over the budget the rule chooses ``OPQ{m},IVF{nlist},PQ{m}`` (autofaiss's and the FAISS
guidelines' choice between 10⁶ and 10⁹ vectors): an OPQ rotation, an inverted file, and ``m``-byte product
codes (``m`` ≈ 64, ``D/m`` dimensions per sub-quantiser), so about ``m + 16`` bytes per vector. The coarse
quantiser is flat up to :data:`FLAT_COARSE_MAX_LISTS` lists (the guidelines' ``IVF4096`` below 10⁶) and an
HNSW32 graph above (``IVF65536_HNSW32`` between 10⁶ and 10⁷), so assigning a query stays sub-millisecond.

Product codes are approximate: every compressed search re-scores its candidates exactly from the float32
vectors (``search/rescore.py``). PQ with 8-bit codes trains 256 centroids per sub-quantiser, which k-means
wants ≥ 39 points each for: below :data:`PQ_MIN_TRAIN` vectors the rule says so and keeps flat / IVF-Flat.

The budget's default (:func:`default_budget_mb`) is an eighth of the machine's RAM (``MemTotal``): a query
process may load all five spaces (``audio``, ``audio_as_text``, ``audio_as_video``, ``cavp_audio``,
``video``), and ``dgsearch serve`` two of them twice over a reload, beside the models (~1-2 GB) and the page
cache the re-scoring reads go through; 5/8 of RAM for indexes at worst leaves the rest to those. On the
24 GB machine of the benchmarks that is 3 GB per space: IVF-Flat up to ≈ 1.4·10⁶ vectors at D = 512.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from diffgap_search.config import FaissConfig
from diffgap_search.errors import UsageError

BUDGET_ENV = "DGSEARCH_INDEX_BUDGET_MB"
BUDGET_FRACTION = 1 / 8  # of MemTotal, per space (module docstring)
PQ_CENTROIDS = 256  # 8-bit codes
PQ_MIN_TRAIN = PQ_CENTROIDS * 39  # 9984: k-means' 39 points per centroid
FLAT_COARSE_MAX_LISTS = 4096  # above this many lists, an HNSW32 coarse quantiser
MB = 1_000_000

_COMPRESSED = re.compile(r"^opq(\d+)_ivf(\d+)(_hnsw32)?_pq(\d+)$")


@dataclass(frozen=True)
class IndexChoice:
    """The index type the rule chose for ``n`` vectors, and why (one line, for logs and ``info``)."""

    kind: str
    reason: str


@dataclass(frozen=True)
class Compressed:
    """A compressed kind's parts: ``m`` code bytes, ``nlist`` lists, HNSW or flat coarse quantiser."""

    m: int
    nlist: int
    hnsw: bool

    @property
    def kind(self) -> str:
        """``opq64_ivf4096_pq64`` / ``opq64_ivf16384_hnsw32_pq64``."""
        return f"opq{self.m}_ivf{self.nlist}{'_hnsw32' if self.hnsw else ''}_pq{self.m}"

    def factory(self) -> str:
        """The ``faiss.index_factory`` string (``OPQ64,IVF4096,PQ64np``; polysemous training is off: it only
        serves Hamming filtering, which inner-product search does not use, and costs minutes)."""
        return f"OPQ{self.m},IVF{self.nlist}{'_HNSW32' if self.hnsw else ''},PQ{self.m}np"  # np: no polysemous training


def parse_compressed(kind: str) -> Compressed | None:
    """The parts of a compressed kind, or None for ``flat`` / ``ivf<n>``."""
    m = _COMPRESSED.match(kind)
    return None if m is None else Compressed(int(m.group(1)), int(m.group(2)), m.group(3) is not None)


def is_compressed(kind: str) -> bool:
    """True for an OPQ/IVF-PQ kind (its vectors are codes: scores must be re-scored)."""
    return parse_compressed(kind) is not None


def code_bytes(dim: int, wanted: int) -> int:
    """The PQ code size for ``dim``: the largest divisor of ``dim`` that is ≤ ``wanted`` (64 at D = 512)."""
    return max(m for m in range(1, min(dim, wanted) + 1) if dim % m == 0)


def bytes_in_ram(kind: str, n: int, dim: int) -> int:
    """Estimated bytes one index of ``kind`` holding ``n`` vectors of ``dim`` takes in RAM."""
    if kind == "flat":
        return n * (4 * dim + 8)
    comp = parse_compressed(kind)
    if comp is None:  # ivf<nlist>
        return n * (4 * dim + 16) + int(kind[3:]) * 4 * dim
    graph = comp.nlist * 32 * 2 * 4 if comp.hnsw else 0  # HNSW32: 2·32 int32 links per list at level 0
    return n * (comp.m + 16) + comp.nlist * 4 * dim + graph + 4 * dim * dim  # codes, centroids, graph, OPQ


def index_kind_for(n: int, cfg: FaissConfig) -> str:
    """``"flat"`` or ``"ivf<nlist>"`` for ``n`` vectors under the size rule of ``cfg``."""
    if n <= cfg.flat_max:
        return "flat"
    return f"ivf{ivf_lists(n, cfg)}"


def ivf_lists(n: int, cfg: FaissConfig) -> int:
    """Number of inverted lists for ``n`` vectors: ≈ lists_per_sqrt·√n, a power of two, ≥ 16.

    Capped so that every list has at least the 39 training points k-means asks for.
    """
    target = cfg.ivf_lists_per_sqrt * math.sqrt(max(n, 1))
    nlist = 1 << int(round(math.log2(target)))
    while nlist > 16 and nlist * 39 > n:
        nlist //= 2
    return max(16, nlist)


def choose_index(n: int, dim: int, cfg: FaissConfig, budget_mb: float | None) -> IndexChoice:
    """The rule (module docstring): the size rule's ``flat`` / ``ivf<nlist>`` while it fits ``budget_mb``
    (None: no budget), else a compressed kind when there are enough vectors to train it."""
    base = index_kind_for(n, cfg)
    need = bytes_in_ram(base, n, dim)
    if budget_mb is None or need <= budget_mb * MB:
        return IndexChoice(base, f"{base}: {need / MB:.1f} MB in RAM, within the budget")
    over = f"{base} would take {need / MB:.1f} MB, over the {budget_mb:g} MB budget"
    if n < PQ_MIN_TRAIN:
        return IndexChoice(base, f"{over}, but {n} vectors are too few to train a compressed index "
                                 f"(it needs {PQ_MIN_TRAIN}): {base} kept")
    nlist = ivf_lists(n, cfg)
    comp = Compressed(code_bytes(dim, cfg.pq_bytes), nlist, nlist > FLAT_COARSE_MAX_LISTS)
    est = bytes_in_ram(comp.kind, n, dim)
    return IndexChoice(comp.kind, f"{over}: {comp.kind}, {est / MB:.1f} MB in RAM")


def default_budget_mb(meminfo: str = "/proc/meminfo") -> float:
    """:data:`BUDGET_FRACTION` of the machine's RAM in MB (``MemTotal``; ``sysconf`` where there is no
    ``/proc``)."""
    try:
        with open(meminfo) as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return math.floor(int(line.split()[1]) * 1024 * BUDGET_FRACTION / MB)
    except OSError:
        pass
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return math.floor(total * BUDGET_FRACTION / MB)


def budget_from(option: float | None, env: dict[str, str] | None = None) -> float | None:
    """The budget a writer was given: ``--memory-budget``, else ``$DGSEARCH_INDEX_BUDGET_MB``, else None
    (publishing then keeps the budget recorded with the space, or :func:`default_budget_mb`).

    UsageError for a budget that is not a positive number."""
    text = (env if env is not None else os.environ).get(BUDGET_ENV) if option is None else None
    if option is None and not text:
        return None
    try:
        value = float(option if option is not None else text)  # type: ignore[arg-type]
    except ValueError:
        raise UsageError(f"{BUDGET_ENV} must be a number of megabytes, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        source = "--memory-budget" if option is not None else BUDGET_ENV
        raise UsageError(f"{source} must be a positive number of megabytes, got {value:g}")
    return value


def faiss_config(option: float | None, env: dict[str, str] | None = None) -> FaissConfig:
    """The writers' ``FaissConfig`` with the budget :func:`budget_from` gives (``dgsearch index`` / ``train``)."""
    return FaissConfig(memory_budget_mb=budget_from(option, env))
