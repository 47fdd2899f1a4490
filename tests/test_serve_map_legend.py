"""The library map of a library with many folders, in a real headless Chromium: the results come before the map,
and its legend names the ten largest folders (a colour each) and counts the rest as one grey "other" group, so a
colour always means one folder (before: 12 colours cycled over every folder, 91 legend entries on Debian's sound
packages, each colour standing for eight of them)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import chromium, require_chromium
from serve_server import Served, start_serve

from real_sounds import REAL_SOUNDS, require_real_sounds

# folder -> how many recordings it holds: 13 folders, so 10 are named and 3 share "other"
FOLDERS = {"a": 3, "b": 3, "c": 2, **{name: 1 for name in "defghijklm"}}


@pytest.fixture(scope="module")
def many_folders(tmp_path_factory: pytest.TempPathFactory, tiny_clap_dir: Path) -> Iterator[Served]:
    from diffgap_search.config import EncoderConfig, IndexingConfig, VideoConfig
    from diffgap_search.encoders.loading import load_encoder
    from diffgap_search.indexing import index_folder

    require_chromium()
    sounds = iter(require_real_sounds())
    root = tmp_path_factory.mktemp("folders")
    for folder, count in FOLDERS.items():
        (root / "library" / folder).mkdir(parents=True)
        for _ in range(count):
            sound = next(sounds)
            shutil.copyfile(sound.path, root / "library" / folder / sound.path.name)
    index_folder(root / "library", root / "index", load_encoder=lambda cfg: load_encoder(cfg, progress=False),
                 encoder_cfg=EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=8),
                 video_cfg=VideoConfig(frames=False), indexing_cfg=IndexingConfig(decode_workers=0))
    server = start_serve(root / "index")
    yield server
    server.stop()


def test_results_come_first_and_the_legend_names_the_largest_folders(many_folders: Served) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium() as browser:
        browser.get(many_folders.url)
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(
            "return document.querySelector('#map').dataset.points === '18'"))
        legend = browser.execute_script("""return Array.from(document.querySelectorAll('#map-legend .key'))
            .map((k) => [k.textContent, getComputedStyle(k.querySelector('i')).backgroundColor])""")
        assert [text for text, _ in legend] == ["a 3", "b 3", "c 2", *[f"{f} 1" for f in "defghij"],
                                                "3 other folders 3"]
        colours = [colour for _, colour in legend]
        assert len(set(colours)) == 11 and colours[-1] == "rgb(201, 196, 193)"  # ten colours and the grey
        assert browser.execute_script("""return document.querySelector('#hits')
            .compareDocumentPosition(document.querySelector('#map-panel')) & Node.DOCUMENT_POSITION_FOLLOWING""")
        browser.execute_script("document.querySelector('#map-colour').value = 'tag';"
                               "document.querySelector('#map-colour').dispatchEvent(new Event('change'))")
        # by first tag: two groups, largest first (two of these recordings carry SoX's comment, as Debian ships them)
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('#map-legend .key')).map((k) => k.textContent).join('|')"
            " === '(none) 16|Processed by SoX 2'"))


def test_many_folders_serve_keeps_them_all_in_the_map_document(many_folders: Served) -> None:
    import httpx

    doc: dict[str, Any] = httpx.get(many_folders.url + "api/map").json()
    assert doc["keys"] == sorted(FOLDERS) and doc["count"] == sum(FOLDERS.values())
