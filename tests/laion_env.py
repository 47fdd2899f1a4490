"""A separate environment holding LAION-CLAP's own package (``laion_clap`` 1.1.7 from PyPI), for reference checks.

laion_clap pins numpy < 2 and pulls wandb, torchaudio and a CUDA torchvision, none of which its inference path
uses; installing it into the project's environment would downgrade numpy under everything else. So it lives in
a venv of its own under the user cache (``$DGSEARCH_LAION_ENV``, default
``~/.cache/diffgap-search-tests/laion_clap-1.1.7``), created on first use with ``pip install --no-deps`` of the
pinned packages below; torch, transformers, librosa, numpy and soundfile come from the interpreter running the
tests (a ``.pth`` file lists its site-packages after the venv's own), so the reference runs the same torch.

``torchvision`` is imported by laion_clap's modules (``clap_module/utils.py``: ``FrozenBatchNorm2d``;
``training/data.py``: dataset classes) but used on no path the checks run; 0.16.2 is the newest whose import
survives a torch without its compiled operators (a CPU-only torch, or another torch version): its meta
registrations are guarded by ``extension._has_ops()``.

``training/data.py`` loads three tokenizers at import (``bert-base-uncased``, ``roberta-base``,
``facebook/bart-base``) and ``CLAP_Module`` loads ``RobertaModel.from_pretrained('roberta-base')``: ``hf_cache``
writes small stand-ins of those repositories into an offline Hugging Face cache (the tests have no hub); only
the audio path is compared, and the checkpoint handed to our loader is the one this model saves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

LAION_PACKAGES = (
    "laion_clap==1.1.7", "torchlibrosa==0.1.0", "torchvision==0.16.2", "braceexpand==0.1.7", "webdataset==1.0.2",
    "wget==3.2", "ftfy==6.3.1", "wcwidth==0.2.13", "progressbar==2.5", "h5py==3.16.0", "pandas==3.1.1",
    "python-dateutil==2.9.0.post0", "six==1.17.0", "tzdata==2025.2",
)
_COMMIT = "0" * 40  # the one snapshot of each stand-in repository


def env_dir() -> Path:
    """Where the laion_clap environment lives."""
    if os.environ.get("DGSEARCH_LAION_ENV"):
        return Path(os.environ["DGSEARCH_LAION_ENV"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "diffgap-search-tests" / "laion_clap-1.1.7"


def laion_python() -> Path:
    """The environment's interpreter, created (once, from PyPI) when missing; layered on the running one."""
    root = env_dir()
    python = root / "bin" / "python"
    marker = root / "installed.json"
    if not (marker.is_file() and json.loads(marker.read_text()) == list(LAION_PACKAGES)):
        base = getattr(sys, "_base_executable", None) or sys.executable  # the interpreter under any venv
        subprocess.run([str(base), "-m", "venv", "--clear", str(root)], check=True, capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", *LAION_PACKAGES], check=True)
        marker.write_text(json.dumps(list(LAION_PACKAGES)))
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    ours = [p for p in sys.path if p.endswith("site-packages")] or [sysconfig.get_paths()["purelib"]]
    (site / "_dgsearch_tests_layer.pth").write_text("\n".join(ours) + "\n")
    return python


def hf_cache(hub: Path, tokenizer_dir: Path) -> Path:
    """An offline Hugging Face cache under ``hub`` with stand-ins of the repositories laion_clap loads by name:
    ``roberta-base`` (a 1-layer RoBERTa, 768 wide as LAION's text projection expects, with the tiny BPE
    tokenizer of ``tokenizer_dir``), ``facebook/bart-base`` (the same BPE) and ``bert-base-uncased`` (a word
    vocabulary). Returns ``hub``."""
    import torch
    from transformers import RobertaConfig, RobertaModel

    model = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]  # byte-level BPE
    merges = ["#version: 0.2", *(" ".join(m) if isinstance(m, list) else m for m in model["merges"])]
    bpe = {"vocab.json": json.dumps(model["vocab"]).encode(), "merges.txt": ("\n".join(merges) + "\n").encode()}
    vocab_size = len(model["vocab"])
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=vocab_size, hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                           intermediate_size=128, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                           eos_token_id=2, type_vocab_size=1, layer_norm_eps=1e-5)
    roberta = hub / "models--roberta-base" / "snapshots" / _COMMIT
    RobertaModel(config).save_pretrained(str(roberta))
    bart = hub / "models--facebook--bart-base" / "snapshots" / _COMMIT
    bart.mkdir(parents=True)
    for folder in (roberta, bart):
        for name, data in bpe.items():
            (folder / name).write_bytes(data)
    bert = hub / "models--bert-base-uncased" / "snapshots" / _COMMIT
    bert.mkdir(parents=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "rain", "bell", "the", "of"]
    (bert / "vocab.txt").write_text("\n".join(words) + "\n")
    for repo in ("roberta-base", "facebook--bart-base", "bert-base-uncased"):
        refs = hub / f"models--{repo}" / "refs"
        refs.mkdir(parents=True, exist_ok=True)
        (refs / "main").write_text(_COMMIT)
    return hub


def run_reference(script: Path, *args: str, hub: Path, timeout: float = 600) -> None:
    """Run ``script`` with the laion_clap environment's interpreter, offline against ``hub``; its stderr on failure."""
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(laion_python()), str(script), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{script.name} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
