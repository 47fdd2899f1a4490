"""The released noise schedules, q(x_t | x0) and DDIM, checked against closed forms and an exact oracle."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from diffgap_search.gap.diffusion import ddim_invert, ddim_sample, q_sample, to_diffusion_space
from diffgap_search.gap.schedule import NoiseSchedule, ScheduleKind


def test_released_schedule_names_are_stable() -> None:
    assert [k.value for k in ScheduleKind] == ["cosine-v1", "linear-v1"]


@pytest.mark.parametrize(
    ("kind", "first", "middle", "last"),
    [
        (ScheduleKind.COSINE_V1, 0.999958715775178, 0.4938435904406382, 2.4287669070348567e-09),
        (ScheduleKind.LINEAR_V1, 0.9999, 0.07858724288177824, 4.035829765375676e-05),
    ],
)
def test_released_schedules_are_pinned(kind: ScheduleKind, first: float, middle: float, last: float) -> None:
    """A released schedule never changes: old checkpoints must keep their meaning."""
    ac = NoiseSchedule(kind, 1000).alphas_cumprod
    assert ac.shape == (1000,)
    assert ac[0] == pytest.approx(first, rel=1e-12)
    assert ac[499] == pytest.approx(middle, rel=1e-12)
    assert ac[999] == pytest.approx(last, rel=1e-9)


@pytest.mark.parametrize("kind", list(ScheduleKind))
@pytest.mark.parametrize("steps", [50, 100, 1000])
def test_alphas_cumprod_strictly_decreasing_in_unit_interval(kind: ScheduleKind, steps: int) -> None:
    ac = NoiseSchedule(kind, steps).alphas_cumprod
    assert np.all(np.diff(ac) < 0)
    assert ac[0] <= 1.0 and ac[-1] > 0.0


def test_invalid_schedules_are_refused() -> None:
    with pytest.raises(ValueError):
        NoiseSchedule(ScheduleKind.LINEAR_V1, 10)  # betas above 1
    with pytest.raises(ValueError):
        NoiseSchedule(ScheduleKind.COSINE_V1, 0)


def test_ddim_timesteps_trailing() -> None:
    s = NoiseSchedule(ScheduleKind.COSINE_V1, 1000)
    assert s.ddim_timesteps(4).tolist() == [999, 749, 499, 249]
    assert s.ddim_timesteps(1).tolist() == [999]
    with pytest.raises(ValueError):
        s.ddim_timesteps(0)


@pytest.mark.parametrize("t", [50, 300, 700])
def test_q_sample_moments(t: int) -> None:
    """Empirical mean and variance of q(x_t | x0) are sqrt(abar_t) x0 and 1 - abar_t."""
    s = NoiseSchedule(ScheduleKind.COSINE_V1, 1000)
    gen = torch.Generator().manual_seed(0)
    x0 = to_diffusion_space(torch.randn(1, 16, generator=gen)).expand(40_000, 16)
    noise = torch.randn(x0.shape, generator=gen)
    xt = q_sample(x0, torch.full((40_000,), t), noise, s).double()
    a = s.alphas_cumprod[t]
    assert torch.allclose(xt.mean(0), math.sqrt(a) * x0[0].double(), atol=0.02)
    var = xt.var(0)
    assert torch.allclose(var, torch.full_like(var, 1 - a), rtol=0.04)


def test_ddim_eta0_inverts_its_forward_ode_with_exact_oracle() -> None:
    """Gaussian data N(mu, s^2 I): E[x0 | x_t] is closed-form, so DDIM encode -> decode must return x0."""
    sched = NoiseSchedule(ScheduleKind.COSINE_V1, 1000)
    gen = torch.Generator().manual_seed(1)
    mu, sigma = torch.randn(8, generator=gen, dtype=torch.float64), 0.5

    def oracle(x: torch.Tensor, t: int) -> torch.Tensor:
        a = float(sched.alphas_cumprod[t])
        return mu + math.sqrt(a) * sigma**2 / (a * sigma**2 + 1 - a) * (x - math.sqrt(a) * mu)

    x0 = mu + sigma * torch.randn(64, 8, generator=gen, dtype=torch.float64)

    def roundtrip_error(stride: int) -> float:
        ts = np.arange(0, 1000, stride)
        x_t = ddim_invert(oracle, x0, ts, sched)
        assert (x_t - x0).abs().mean() > 0.5  # the latent is (nearly) pure noise, far from the data
        return float((ddim_sample(oracle, x_t, ts[::-1], sched) - x0).abs().max())

    fine, half, coarse = roundtrip_error(1), roundtrip_error(2), roundtrip_error(10)
    assert fine < 1e-2
    # DDIM is a first-order ODE solver: halving the step halves the error (no bias left over).
    assert 0.4 < fine / half < 0.6
    assert 0.08 < fine / coarse < 0.12


def test_gap_package_import_is_light() -> None:
    code = "import sys, diffgap_search.gap; assert 'torch' not in sys.modules; print(diffgap_search.gap.__all__[:1])"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
