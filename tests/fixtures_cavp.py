"""A tiny CAVP of the real module classes (``encoders/cavp/model.py``) with random weights, saved the way Diff-Foley's
trainer saves ``cavp_epoch66.ckpt``: a dict with ``epoch``, ``name``, ``state_dict`` (keys prefixed ``module.``
by DDP) and the optimizer's state (``training/open_cavp_main/src/training/main.py:389-396``), published in the
layout of the hub repository ``SimianLuo/Diff-Foley`` (``diff_foley_ckpt/cavp_epoch66.ckpt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from diffgap_search.encoders.cavp.encoder import CAVP_FILE

TINY_CAVP_DIM = 32  # the tiny CLAP's dim, so one DiffGAP bridge serves both


def tiny_cavp_model(seed: int = 0, dim: int = TINY_CAVP_DIM) -> Any:
    """The real classes at toy widths, random weights and BatchNorm statistics (seeded)."""
    import torch

    from diffgap_search.encoders.cavp.model import CavpConfig, CavpModel

    torch.manual_seed(seed)
    model = CavpModel(CavpConfig(base_channels=2, stage_blocks=(1, 1, 1, 1), cnn_widths=(4, 4, 8, 8, 8, 8),
                                 embed_dim=dim))
    # Calibrate BatchNorm statistics on seeded inputs (as training leaves them matched to the data) and zero the
    # heads' biases: with toy widths, raw random statistics leave every embedding equal to the biases.
    gen = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model.encode_video(torch.rand((2, 16, 3, 224, 224), generator=gen))
            model.encode_spec(torch.rand((4, model.cfg.n_mels, 256), generator=gen))
        for head in (model.video_project_head, model.spec_encoder.fc1, model.spec_encoder.final_project):
            head.bias.zero_()
    return model.eval()


def save_cavp_checkpoint(path: Path, seed: int = 0, *, extra: dict[str, Any] | None = None,
                         prefix: str = "module.") -> Path:
    """Write a tiny CAVP checkpoint as the trainer does; ``extra`` adds top-level entries."""
    import torch

    model = tiny_cavp_model(seed)
    state = {prefix + k: v for k, v in model.state_dict().items()}
    params = [p for p in model.parameters()]
    optimizer = torch.optim.AdamW(params, lr=8e-4)
    checkpoint = {"epoch": 66, "name": "lr_8e-4_cnn14_pretrained_intra_loss", "state_dict": state,
                  "optimizer": optimizer.state_dict(), **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


def publish_diff_foley(dest: Path, seed: int = 0) -> Path:
    """A repository folder like ``SimianLuo/Diff-Foley``: the CAVP checkpoint under ``diff_foley_ckpt/``."""
    save_cavp_checkpoint(dest / CAVP_FILE, seed)
    (dest / "README.md").write_text("---\nlicense: mit\n---\n# Diff-Foley (tiny test copy)\n", encoding="utf-8")
    (dest / ".gitattributes").write_text("*.ckpt filter=lfs diff=lfs merge=lfs -text\n", encoding="utf-8")
    return dest


@pytest.fixture(scope="session")
def tiny_cavp_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CAVP checkpoint file (seed 0)."""
    return save_cavp_checkpoint(tmp_path_factory.mktemp("tiny-cavp") / "cavp_epoch66.ckpt", seed=0)
