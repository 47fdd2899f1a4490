"""``benchmarks/gpu_check.py --dry-run`` runs its parts' code on the CPU, so a GPU machine's rare, short lease is
not spent finding a broken script: the training, FAISS and aisfx parts here (the others load full-size models
and take minutes on 2 cores); a part that fails is recorded with its error and the results are still written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _dry_run(out: Path, only: str, budget_s: int) -> dict:
    """Run the check's dry run of the parts ``only`` into ``out``; its JSON results (exit 0 asserted)."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--only", only,
                           "--out-dir", str(out), "--budget-s", str(budget_s)],
                          capture_output=True, text=True, timeout=600, cwd=out)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "gpu_check.json").read_text())


@pytest.mark.slow
def test_dry_run_measures_the_training_and_faiss_parts_and_writes_results(tmp_path: Path) -> None:
    doc = _dry_run(tmp_path, "training,faiss,nonesuch", 600)
    assert doc["gpu"] == "CPU (dry run)"
    assert sorted(doc["parts"]) == ["faiss", "training"]
    assert doc["parts"]["training"].startswith("ok in "), doc["parts"]
    assert doc["parts"]["faiss"].startswith("ok in "), doc["parts"]
    assert doc["train_gpu_fp32"]["device"] == "cpu" and doc["train_gpu_fp32"]["seconds_per_10k_pairs"] > 0
    assert doc["train_cpu_fp32"]["steps_timed"] >= 1
    assert doc["faiss_gpus"] == 0 and doc["faiss_kmeans_cpu_s"] > 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| DiffGAP training, D = 512, cpu, fp32 |" in table
    assert "| FAISS k-means on the GPU | not measured |" in table


@pytest.mark.slow
def test_a_part_out_of_budget_is_skipped_and_said(tmp_path: Path) -> None:
    doc = _dry_run(tmp_path, "train_cli", 1)
    assert doc["parts"]["train_cli"].startswith("skipped: "), doc["parts"]
    assert "| train_cli | not measured | out of time" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.slow
def test_dry_run_measures_aisfx_in_fp32_and_bf16_and_their_agreement(tmp_path: Path) -> None:
    pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")
    doc = _dry_run(tmp_path, "aisfx", 600)
    assert doc["parts"]["aisfx"].startswith("ok in "), doc["parts"]
    assert (doc["aisfx_gpu_precision"], doc["aisfx_gpu_bf16_precision"]) == ("fp32", "bf16")
    assert doc["aisfx_cpu_precision"] in ("fp32", "bf16")  # auto: what this CPU takes
    assert doc["aisfx_gpu_bf16_min_cosine"] >= 0.999
    assert min(doc[f"aisfx_{r}_windows_per_s"] for r in ("gpu", "gpu_bf16", "cpu")) > 0
    assert "| aisfx bf16 vs fp32 on the GPU, min cosine |" in (tmp_path / "gpu_check.md").read_text()
