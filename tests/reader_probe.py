"""A reader process for ``test_reliability_readers.py``: one vector search through a real :class:`Searcher`.

    python reader_probe.py INDEX_DIR QUERY_JSON FLAT_MAX NPROBE TOP_K [WORK]

Opens a Searcher with ``FaissConfig(flat_max=FLAT_MAX, nprobe=NPROBE)`` and an encoder loader that fails
(the query vector is given, no model is needed), runs one ``search_vectors`` over the ``audio`` space
(``TOP_K`` windows, not grouped) and prints one JSON line: ``hits`` (``[segment id, score]`` best first)
and what the searcher loaded: the ``generation`` of the record it holds (None without one), ``rebuilt``
and ``kind``.

With ``WORK``, it first opens a read transaction and reads from it, which pins its SQLite snapshot, then
creates ``WORK/ready`` and waits for ``WORK/go`` before searching inside that same transaction: a reader
whose snapshot is older than a writer's commit.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.config import FaissConfig, SearchConfig, SearchMode
from diffgap_search.search import Searcher


def _no_encoder(cfg: Any) -> Any:
    raise AssertionError("a vector search must not load an encoder")


def main(argv: list[str]) -> None:
    index_dir, query, flat_max, nprobe, top_k = argv[:5]
    work = Path(argv[5]) if len(argv) > 5 else None
    q = np.asarray(json.loads(query), dtype=np.float32).reshape(1, -1)
    cfg = FaissConfig(flat_max=int(flat_max), nprobe=int(nprobe))
    with Searcher(Path(index_dir), _no_encoder, faiss_cfg=cfg) as s:
        if work is not None:
            s.catalog.conn.execute("BEGIN")
            s.catalog.conn.execute("SELECT count(*) FROM vectors").fetchone()  # the snapshot starts here
            (work / "ready").write_text("")
            while not (work / "go").exists():
                time.sleep(0.02)
        hits, _, _ = s.search_vectors(q, "audio", SearchConfig(mode=SearchMode.SEMANTIC, top_k=int(top_k), group_by_file=False))
        record, loaded = s.opened._indexes["audio"]
        if work is not None:
            s.catalog.conn.execute("COMMIT")
    print(json.dumps({"hits": [[h.segment_id, h.score] for h in hits],
                      "generation": None if record is None else record.generation,
                      "rebuilt": loaded.rebuilt, "kind": loaded.kind}))


if __name__ == "__main__":
    main(sys.argv[1:])
