"""The optimisation loop of a DiffGAP bridge: CDM loss, AdamW with warm-up and cosine decay, an EMA of the
weights, and the checkpoint kept by validation (one track per clip set: see ``optimise``).

Split from ``training`` (which prepares the data, the anchors and what is served around this loop).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch

from .denoiser import Denoiser
from .diffusion import denoising_loss, info_nce, q_sample
from .schedule import NoiseSchedule
from .train_config import OnStep, TrainConfig
from .training_data import Batch, Batcher


def _loss(net: Denoiser, schedule: NoiseSchedule, cfg: TrainConfig, batch: Batch, gen: torch.Generator) -> torch.Tensor:
    """x0 MSE + ``infonce_weight`` x InfoNCE (per direction half, conditioned rows only); scalar."""
    x0 = batch.x0
    n, device = x0.shape[0], x0.device
    # every random draw from the one CPU generator, then moved: the same stream on every device
    keep = (torch.rand(n, generator=gen) >= cfg.cond_drop_prob).to(device)
    if cfg.objective == "regression":  # the sampler's first step from the zero start, and nothing else
        t = torch.full((n,), schedule.num_steps - 1, dtype=torch.int64, device=device)
        x_t = torch.zeros_like(x0)
    else:
        t = torch.randint(0, schedule.num_steps, (n,), generator=gen).to(device)
        x_t = q_sample(x0, t, torch.randn(x0.shape, generator=gen).to(device), schedule)
    x0_hat = net(x_t, t, batch.cond, batch.direction, keep)
    loss = denoising_loss(x0_hat, x0)
    if cfg.infonce_weight > 0:
        terms = []
        for g in batch.halves:
            k = keep[g]
            if int(k.sum()) >= 2:
                terms.append(info_nce(x0_hat[g][k], x0[g][k], cfg.infonce_temperature, batch.codes[g][k]))
        if terms:
            loss = loss + cfg.infonce_weight * torch.stack(terms).mean()
    return loss


Check = Callable[[Denoiser], list[tuple[float, float]]]


def optimise(
    net: Denoiser, schedule: NoiseSchedule, cfg: TrainConfig, batcher: Batcher, on_step: OnStep | None,
    check: Check | None = None,
) -> tuple[Denoiser, list[float], int, int, float, dict[str, object], dict[str, torch.Tensor] | None]:
    """The training loop -> ``(ema network, loss per epoch, steps, pairs seen, seconds, checkpoint, mirror)``.

    With ``check`` (``selection.progress_score`` on the validation clips) the EMA network is rated every
    ``cfg.eval_every`` epochs by its served R@1 plus its bridged-query R@1 (the served score alone sits near
    its ceiling and stays flat for epochs while the network still improves: it stopped a run at epoch 5 that
    40 epochs took 11 points further on test, ``benchmarks/diagnose_gap.py``); the best-rated weights are
    returned (ties to the earlier) and the loop stops after ``cfg.patience`` ratings without improvement. ``checkpoint``: ``{"epoch", "epochs_run", "stopped_early", "scores"}``
    (``scores``: ``[epoch, served R@1, bridged R@1]`` per rating; ``epoch`` counts from 1).
    ``check`` rates one track per clip set (the choice half, and for cross-fitting the confirmation half): each
    keeps its own best weights and closes after ``cfg.patience`` ratings without improvement (a closed track's
    choice never changes, so the first track keeps what it would alone); the loop stops when every track is
    closed. ``mirror``: the second track's best weights (``checkpoint["mirror"]``: its epoch and scores), else None.
    The loop and the ratings run on ``cfg.device``, and the network comes back there: the caller moves it to the CPU
    once validation has chosen what is served.
    """
    device = cfg.torch_device()
    net.to(device)
    ema = copy.deepcopy(net).requires_grad_(False)
    bf16 = cfg.use_bf16()
    gen = torch.Generator().manual_seed(cfg.seed)
    total = cfg.epochs * batcher.steps_per_epoch
    # fused: one kernel for all 31 tensors instead of torch's per-tensor CPU default: 2.2 vs 13.7 ms a step at
    # D = 512 on 2 Zen 4 cores, weights within 1.2e-7 after 50 steps (benchmarks/bench_adam.py); the loop 1.10-1.15x
    # in bf16 there (results/train-avx512-epyc-20261205-*)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    warm = max(1, min(cfg.warmup_steps, total // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.55 + 0.45 * math.cos(math.pi * min(1.0, s / total)))
    )
    history: list[float] = []
    seen, t_start, step = 0, time.perf_counter(), 0
    scores: list[list[float]] = []
    best: list[tuple[tuple[float, float], int, dict[str, torch.Tensor]] | None] = []
    stale: list[int] = []
    mirror_scores: list[list[float]] = []
    params, ema_params = list(net.parameters()), list(ema.parameters())
    net.train()
    for epoch in range(cfg.epochs):
        batcher.new_epoch()
        epoch_loss = 0.0
        for i in range(batcher.steps_per_epoch):
            batch = batcher.batch(i).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = _loss(net, schedule, cfg, batch, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                decay = min(cfg.ema_decay, (1 + step) / (10 + step))
                torch._foreach_lerp_(ema_params, params, 1.0 - decay)
            seen += batch.x0.shape[0]
            step += 1
            value = loss.item()
            epoch_loss += value
            if on_step is not None:
                on_step(epoch, step - 1, value, seen / max(time.perf_counter() - t_start, 1e-9))
        history.append(epoch_loss / batcher.steps_per_epoch)
        if check is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            rated = check(ema)
            best, stale = best or [None] * len(rated), stale or [0] * len(rated)
            for i, score in enumerate(rated):
                if cfg.patience and stale[i] >= cfg.patience:
                    continue  # a closed track
                (scores if i == 0 else mirror_scores).append([epoch + 1, round(score[0], 4), round(score[1], 4)])
                kept = best[i]
                if kept is None or sum(score) > sum(kept[0]):
                    best[i], stale[i] = (score, epoch + 1, copy.deepcopy(ema.state_dict())), 0
                else:
                    stale[i] += 1
            if cfg.patience and all(n >= cfg.patience for n in stale):
                break
    seconds = time.perf_counter() - t_start
    chosen: dict[str, object] = {"epoch": len(history), "epochs_run": len(history), "stopped_early": False,
                                 "scores": scores}
    first = best[0] if best else None
    if first is not None:
        ema.load_state_dict(first[2])
        chosen.update(epoch=first[1], stopped_early=len(history) < cfg.epochs)
    second = best[1] if len(best) > 1 else None
    if second is not None:
        chosen["mirror"] = {"epoch": second[1], "scores": mirror_scores}
    return ema, history, step, seen, seconds, chosen, second[2] if second is not None else None


__all__ = ["Check", "optimise"]
