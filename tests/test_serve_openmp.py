"""``dgsearch serve`` makes GNU OpenMP's idle threads sleep (``serve.run.passive_openmp``): set before torch and
faiss load their libgomp (which read ``OMP_WAIT_POLICY`` once), never over a policy the user chose. Each case
runs in a fresh interpreter, since this test process has torch loaded already. Why it matters (a spinning
server beside a writer answered 4-9 queries/s against 20 passive): ``benchmarks/results/serve_load_ab.md``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import os, sys
{before}
from diffgap_search.serve.run import passive_openmp
took = passive_openmp()
import faiss, torch
print(took, os.environ["OMP_WAIT_POLICY"])
"""


def _run(before: str = "", **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(before=before)], capture_output=True, text=True,
                         env={**clean, **env}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_the_server_sets_a_passive_wait_before_torch_and_faiss_load() -> None:
    assert _run() == "True PASSIVE"


@pytest.mark.parametrize("policy", ["ACTIVE", "passive"])
def test_a_policy_the_user_set_is_kept(policy: str) -> None:
    assert _run(OMP_WAIT_POLICY=policy) == f"True {policy}"


def test_too_late_once_torch_is_loaded() -> None:
    assert _run(before="import torch") == "False PASSIVE"
