"""`benchmarks/confirm_record.py` counts the confirmed residuals that lost on unseen galleries: on lines whose answer
is known, it reads each task's own α's and counts exactly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

CELL = {"family": "mlp", "level": "mild", "dim": 64, "captions": 1, "clips": 1000, "modality": "text"}


def _gallery(t2a: float, a2t: float) -> dict:
    """One gallery: DiffGAP + fusion ``t2a``/``a2t`` points above ridge + fusion (Procrustes + fusion 5 below it)."""
    return {task: {"diffgap_fusion": 50.0 + d, "ridge_fusion": 50.0, "procrustes_fusion": 45.0}
            for task, d in (("text->audio", t2a), ("audio->text", a2t))}


def _line(seed: int, alpha_query: dict, alpha_items: dict, share: float, galleries: list[dict]) -> dict:
    return {"cell": CELL, "seed": seed, "alpha": {"query": alpha_query, "items": alpha_items},
            "val": {"text->audio": {"task_confidence": share}, "audio->text": {"task_confidence": 0.5}},
            "sizes": {"600": {"results": galleries[0], "each": galleries}}}


def test_each_task_is_judged_by_its_own_alphas_and_losses_are_counted(tmp_path: Path) -> None:
    import confirm_record

    # text->audio serves audio|text for its query (0.5) and text|audio for its items (0); audio->text serves
    # text|audio for queries and audio|text for items, both 0 here: it served the anchor
    served = {"audio|text": 0.5, "text|audio": 0.0}
    assert confirm_record.served_alphas({"query": served, "items": served}, "text->audio") == (0.5, 0.0)
    assert confirm_record.served_alphas({"query": served, "items": served}, "audio->text") == (0.0, 0.5)
    lost = _line(0, {"audio|text": 1.0}, {}, 0.93, [_gallery(-1.0, 0.0), _gallery(-2.0, 0.0), _gallery(1.0, 0.0)])
    won = _line(1, {}, {"text|audio": 0.25}, 0.995, [_gallery(3.0, 0.0)] * 3)
    anchor = _line(2, {}, {}, 0.4, [_gallery(0.0, 0.0)] * 3)
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(x) + "\n" for x in (lost, won, anchor)))
    (tmp_path / "b.jsonl").write_text(json.dumps(_line(0, {}, {}, 0.1, [_gallery(9.0, 9.0)])) + "\n")  # seed 0 again
    assert confirm_record.main(["--files", "a.jsonl", "b.jsonl", "--results", str(tmp_path), "--out-dir",
                                str(tmp_path)]) == 0
    out = json.loads((tmp_path / "confirm_record.json").read_text())["summary"]
    assert (out["runs"], out["served"], out["lost_on_average"]) == (6, 2, 1)
    assert [b["served"] for b in out["by_share"]] == [1, 0, 1]
    assert out["by_share"][0] == {"share": "0.90-0.95", "served": 1, "lost_on_average": 1, "lost_on_most_galleries": 1,
                                  "mean_margin": round(-2 / 3, 2)}
    assert out["worst"][0]["galleries_below"] == 2 and out["worst"][0]["seed"] == 0


def test_the_tally_counts_each_direction_of_the_family_cells_once(tmp_path: Path) -> None:
    """text->audio: seeds -2/3, +3, 0 (mean 0.78, sd 1.9: above within a sd); audio->text 0, 0, 0: tied."""
    import confirm_record

    lost = _line(0, {"audio|text": 1.0}, {}, 0.93, [_gallery(-1.0, 0.0), _gallery(-2.0, 0.0), _gallery(1.0, 0.0)])
    won = _line(1, {}, {"text|audio": 0.25}, 0.995, [_gallery(3.0, 0.0)] * 3)
    anchor = _line(2, {}, {}, 0.4, [_gallery(0.0, 0.0)] * 3)
    other = {**_line(0, {}, {}, 0.4, [_gallery(-5.0, -5.0)]), "cell": {**CELL, "clips": 4000}}  # not a tally cell
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(x) + "\n" for x in (lost, won, anchor, other)))
    (tmp_path / "family_gap_crossfit.jsonl").write_text(json.dumps({"cell": CELL, "seed": 0}) + "\n")
    assert confirm_record.main(["--files", "a.jsonl", "--results", str(tmp_path), "--out-dir", str(tmp_path)]) == 0
    tally = json.loads((tmp_path / "confirm_record.json").read_text())["tally"]
    assert (tally["directions"], tally["cells"], tally["of_cells"]) == (2, 1, 1)
    assert tally["counts"] == {"above by more than a sd": 0, "above within a sd": 1, "tied": 1, "below": 0}
    assert "| 0 | 1 | 1 | 0 |" in (tmp_path / "confirm_record.md").read_text()
