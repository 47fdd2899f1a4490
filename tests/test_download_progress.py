"""Download progress: a rich bar per file on a terminal, two plain lines in a log, bytes counted once.

huggingface_hub drives ``tqdm_bridge``'s class exactly as it drives any ``tqdm_class``: one bar per plain
HTTP download, two per Xet download ("reconstructing" and "downloading bytes"). The real HTTP path runs in
``test_published_layouts``; here the bars are driven by hand to pin the counting and the rendering.
"""

from __future__ import annotations

import io

from rich.console import Console

from diffgap_search.encoders.weights.progress import RichDownloadProgress, tqdm_bridge


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def begin(self, label: str, total: int | None) -> None:
        self.events.append(("begin", (label, total)))

    def advance(self, n: int) -> None:
        self.events.append(("advance", n))

    def end(self) -> None:
        self.events.append(("end", None))


def test_the_bridge_counts_the_file_bar_and_skips_xets_transfer_bar() -> None:
    sink = _Recorder()
    bar_class = tqdm_bridge(sink)
    with bar_class(total=300, initial=100, desc="pytorch_model.bin", unit="B", unit_scale=True) as http_bar:
        http_bar.update(150)
        http_bar.update(50)
    reconstruct = bar_class(total=300, desc="pytorch_model.bin: reconstructing file", unit="B")
    transfer = bar_class(total=300, desc="pytorch_model.bin: downloading bytes", unit="B")
    reconstruct.update(300)
    transfer.update(280)
    reconstruct.close()
    transfer.close()
    assert sink.events == [("advance", 100), ("advance", 150), ("advance", 50), ("advance", 300)]


def test_in_a_log_one_line_when_a_file_starts_and_one_when_it_ends() -> None:
    out = io.StringIO()
    progress = RichDownloadProgress(Console(file=out, force_terminal=False, width=100))
    progress.begin("laion/clap-htsat-unfused: pytorch_model.bin", 615_973_601)
    for _ in range(1000):
        progress.advance(615_973)
    progress.end()
    lines = out.getvalue().splitlines()
    assert lines[0] == "downloading laion/clap-htsat-unfused: pytorch_model.bin (616.0 MB)"
    assert lines[1].startswith("  done: laion/clap-htsat-unfused: pytorch_model.bin in ") and lines[1].endswith(" s")
    assert len(lines) == 2 and "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_on_a_terminal_one_rich_bar_per_file() -> None:
    out = io.StringIO()
    progress = RichDownloadProgress(Console(file=out, force_terminal=True, width=120, color_system=None))
    progress.begin("openai/clip-vit-base-patch32: pytorch_model.bin", 605_247_071)
    progress.advance(605_247_071)
    progress.end()
    screen = out.getvalue()
    assert "downloading openai/clip-vit-base-patch32: pytorch_model.bin" in screen
    assert "605.2/605.2 MB" in screen and "━" in screen
    assert "done:" not in screen  # the bar is the record; no extra line
