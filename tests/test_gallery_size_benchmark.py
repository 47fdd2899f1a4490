"""`benchmarks/gallery_size.py` re-judges a `family_gap` cell on many test galleries: it must rebuild the very bridge
`family_gap` trained (its figures on the family table's test draw equal `family_gap.run`'s), cut disjoint galleries
of the sizes asked, and re-score from the saved bridge without training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

CELL = "mlp/strong/64/1/1000/text"


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    import gallery_size

    out = tmp_path_factory.mktemp("gallery")
    assert gallery_size.main(["--cells", CELL, "--seeds", "0", "--sizes", "150,300", "--draw", "600",
                              "--max-galleries", "3", "--threads", "1", "--out-dir", str(out), "--name", "g"]) == 0
    return out, json.loads((out / "g.jsonl").read_text().splitlines()[0])


def test_the_rebuilt_bridge_scores_the_family_tables_draw_exactly_as_family_gap_did(judged: tuple[Path, dict]) -> None:
    import family_gap
    import gallery_size

    _, line = judged
    expected = family_gap.run(gallery_size.parse_cell(CELL), 0, 40)["results"]
    assert {k: {m: round(v, 2) for m, v in ms.items()} for k, ms in line["table"].items()} == \
        {k: {m: v for m, v in ms.items() if m in gallery_size.KEEP} for k, ms in expected.items()}


def test_galleries_are_disjoint_cuts_of_the_draw_capped_as_asked(judged: tuple[Path, dict]) -> None:
    _, line = judged
    assert {s: (v["galleries"], len(v["each"])) for s, v in line["sizes"].items()} == {"150": (3, 3), "300": (2, 2)}
    for v in line["sizes"].values():  # the mean over galleries is what the table reports
        for key, methods in v["results"].items():
            for m, r1 in methods.items():
                assert r1 == pytest.approx(sum(g[key][m] for g in v["each"]) / len(v["each"]))


def test_a_run_with_the_saved_bridges_rescores_without_training_and_a_rerun_adds_nothing(judged: tuple[Path, dict]) -> None:
    import gallery_size

    out, line = judged
    assert line["seconds"] is not None and len(list((out / "g_bridges").glob("*.safetensors"))) == 1
    common = ["--cells", CELL, "--seeds", "0", "--draw", "600", "--max-galleries", "3", "--out-dir", str(out)]
    assert gallery_size.main(common + ["--sizes", "150,300", "--name", "g"]) == 0
    assert len((out / "g.jsonl").read_text().splitlines()) == 1
    assert gallery_size.main(common + ["--sizes", "300", "--name", "h", "--bridges", str(out / "g_bridges")]) == 0
    again = json.loads((out / "h.jsonl").read_text())
    assert again["seconds"] is None and again["table"] == line["table"] and again["sizes"] == {"300": line["sizes"]["300"]}
    assert not (out / "h_bridges").exists()
    table = (out / "g.md").read_text()
    assert "| mlp-strong D64 1cap 1000 clips text | 150 | text->audio | 1 × 3 |" in table
