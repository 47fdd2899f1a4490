"""How ``--precision auto``'s probe times a path (``encoders/clap/path_choice.py``): on the CPU on the probe's two
windows as before; on a GPU on the windows repeated to the encoder's batch size and waited for (on an H200 the
unsynchronised two-window timing kept fp32 though bf16 agreed at 0.99998), with a GPU's remembered choices keyed
apart from those made before."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from diffgap_search.encoders.clap.path_choice import best_time, choice_key, timing_batch


def _features() -> torch.Tensor:
    return torch.arange(2 * 1 * 4 * 3, dtype=torch.float32).reshape(2, 1, 4, 3)


def test_the_cpu_times_the_probe_windows_themselves() -> None:
    features = _features()
    assert timing_batch(SimpleNamespace(device=torch.device("cpu"), batch_size=32), features) is features


def test_a_gpu_times_the_probe_windows_repeated_to_the_batch_size() -> None:
    features = _features()
    gpu = torch.device("cuda")  # only its type is read: no GPU needed
    batch = timing_batch(SimpleNamespace(device=gpu, batch_size=5), features)
    assert batch.shape == (5, 1, 4, 3)
    for row, source in enumerate([0, 1, 0, 1, 0]):
        assert torch.equal(batch[row], features[source])
    assert timing_batch(SimpleNamespace(device=gpu, batch_size=2), features) is features


def test_best_time_runs_once_untimed_then_the_repeats_and_keeps_the_fastest() -> None:
    calls: list[int] = []
    seconds = best_time(lambda: calls.append(1) or torch.zeros(1), repeats=3)
    assert len(calls) == 4 and 0.0 <= seconds < 1.0


def test_a_gpu_choice_is_keyed_apart_from_the_cpu_and_from_unsynchronised_probes() -> None:
    cpu_key = choice_key("f" * 64, torch.device("cpu"), "audio")
    gpu_key = choice_key("f" * 64, torch.device("cuda"), "audio")
    # "<weights>|audio|<device type>|torch <ver>|<capability>|<runtime stamp>|auto"
    assert cpu_key.split("|")[4] == torch.backends.cpu.get_cpu_capability()
    assert gpu_key.split("|")[2:5:2] == ["cuda", "cuda synced"]
