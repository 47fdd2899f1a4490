"""A chained Ogg (several Ogg streams one after the other: a radio rip whose title changed, ``cat a.ogg b.ogg``)
is decoded link by link, whole, each link with its own rate, channels and codec.

libsndfile reads the first link only and ffmpeg fails at a link that changes codec and cannot seek past the
first link (measured: ``media/ogg_links.py``). Before this, dgsearch indexed the first link of such a file and
said nothing. The links here are the project's CC0 example recordings (Vorbis, as freesound.org's uploaders
encoded them) and Debian's CC0 sonic-pi tabla loop re-encoded by ffmpeg.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from browser import chromium
from cli_runner import dg
from fixtures_media import FFMPEG, needs_ffmpeg
from real_sounds import SAMPLES_DIR, require_real_sounds
from serve_server import start_serve

from diffgap_search.media.audio import iter_audio_blocks, load_audio, load_span
from diffgap_search.media.audio_conditioning import stream_facts
from diffgap_search.media.cut import cut_window
from diffgap_search.media.byte_range import ByteRange
from diffgap_search.media.ogg_links import ogg_links

RATE = 48_000
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "clips"
BELL, GUITAR, GLASS = (EXAMPLES / f"{n}.ogg" for n in ("bell", "guitar_slide", "glass_rub"))


def _chain(path: Path, *links: Path) -> Path:
    path.write_bytes(b"".join(link.read_bytes() for link in links))
    return path


def test_links_start_at_each_new_stream(tmp_path: Path) -> None:
    chain = _chain(tmp_path / "chain.ogg", BELL, GUITAR, GLASS)
    a, b, c = (p.stat().st_size for p in (BELL, GUITAR, GLASS))
    assert ogg_links(chain) == [(0, a), (a, a + b), (a + b, a + b + c)]
    assert ogg_links(BELL) == [(0, a)]
    assert ogg_links(EXAMPLES / "bell.txt") == [(0, (EXAMPLES / "bell.txt").stat().st_size)]  # not Ogg: one range
    damaged = bytearray(chain.read_bytes())
    damaged[a // 2 : a // 2 + 500] = bytes(500)  # a bad copy inside the first link: skipped to the next page
    (tmp_path / "damaged.ogg").write_bytes(bytes(damaged))
    assert ogg_links(tmp_path / "damaged.ogg") == [(0, a), (a, a + b), (a + b, a + b + c)]


def test_a_byte_range_reads_as_a_file_of_its_own(tmp_path: Path) -> None:
    chain = _chain(tmp_path / "chain.ogg", BELL, GUITAR)
    a, size = BELL.stat().st_size, chain.stat().st_size
    with ByteRange(chain, a, size) as view:
        assert (view.read(4), view.seek(0, 2), view.tell()) == (b"OggS", size - a, size - a)
        assert view.seek(0) == 0 and view.read() == GUITAR.read_bytes()


def test_every_link_is_decoded_in_order(tmp_path: Path) -> None:
    chain = _chain(tmp_path / "chain.ogg", BELL, GUITAR, GLASS)
    want = np.concatenate([load_audio(p, RATE) for p in (BELL, GUITAR, GLASS)])
    got = load_audio(chain, RATE)
    assert len(got) / RATE == pytest.approx(6.72 + 4.33 + 3.15, abs=0.02)  # libsndfile alone: 6.72 s, the bell
    assert np.array_equal(got, want)


def _seconds(link: Path) -> float:
    info = sf.info(str(link))
    return info.frames / info.samplerate


def _from(link: Path, start: float, length: float | None) -> np.ndarray:
    return np.concatenate(list(iter_audio_blocks(link, RATE, start_s=start, length_s=length)))


def test_a_span_is_read_from_the_link_it_falls_in(tmp_path: Path) -> None:
    """A span (what ``--pinpoint`` and the web page's player read) is counted over the links end to end and read
    from the link it starts in (seeking there), on into the next: the samples a span of each link alone gives."""
    chain = _chain(tmp_path / "chain.ogg", BELL, GUITAR, GLASS)
    bell, guitar = _seconds(BELL), _seconds(GUITAR)  # 6.72 s, 4.33 s
    inside_second = load_span(chain, RATE, 7.0, 9.5)
    assert np.array_equal(inside_second, load_span(GUITAR, RATE, 7.0 - bell, 9.5 - bell))
    across = load_span(chain, RATE, 6.0, 8.0)
    want = np.concatenate([_from(BELL, 6.0, None), _from(GUITAR, 0.0, 2.0 - (bell - 6.0))])[: 2 * RATE]
    assert np.array_equal(across, want)
    past_the_end = load_span(chain, RATE, 12.0, 20.0)
    assert np.array_equal(past_the_end, _from(GLASS, 12.0 - bell - guitar, None))
    assert len(past_the_end) / RATE == pytest.approx(bell + guitar + 3.15 - 12.0, abs=0.02)


@needs_ffmpeg
def test_links_may_change_rate_channels_and_codec(tmp_path: Path) -> None:
    """Vorbis 44.1 kHz mono, then Vorbis 22.05 kHz stereo, then Opus 48 kHz (ffmpeg alone stops at the Opus link
    with "failed to create or replace stream"); the file's stream facts are its first link's."""
    require_real_sounds()
    tabla = SAMPLES_DIR / "loop_tabla.flac"
    vorbis = tmp_path / "tabla22.ogg"
    opus = tmp_path / "tabla.opus"
    run = [FFMPEG, "-nostdin", "-v", "error", "-t", "3", "-i", tabla]
    subprocess.run([*run, "-c:a", "libvorbis", "-ar", "22050", "-ac", "2", vorbis], check=True)
    subprocess.run([*run, "-c:a", "libopus", "-b:a", "64k", opus], check=True)
    chain = _chain(tmp_path / "chain.ogg", BELL, vorbis, opus)
    got = load_audio(chain, RATE)
    parts = [load_audio(p, RATE) for p in (BELL, vorbis, opus)]
    assert [len(p) / RATE for p in parts] == pytest.approx([6.72, 3.0, 3.0], abs=0.02)
    assert np.array_equal(got, np.concatenate(parts))
    assert stream_facts(chain) == (44100, 1)


def test_an_index_run_embeds_every_link_and_the_page_plays_them(tmp_path: Path, tiny_clap_dir: Path) -> None:
    """Indexed whole; then ``dgsearch serve`` sends it for playback as its decode (16-bit FLAC, mono 48 kHz): a
    real Chromium, given the file itself, says 12.0 s for these 14.2 s (measured), given what serve sends, 14.2."""
    library = tmp_path / "library"
    library.mkdir()
    chain = _chain(library / "radio rip.ogg", BELL, GUITAR, GLASS)  # 14.2 s: two 10 s windows; the first link one
    r = dg("index", library, "--index", tmp_path / "ix", "--model", tiny_clap_dir, "--workers", "1", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (report["embedded_files"], report["failed"], report["windows_embedded"]) == (1, [], 2)
    served = start_serve(tmp_path / "ix")
    try:
        (hit,) = httpx.get(served.url + "api/search", params={"q": "radio", "k": 5}).json()["hits"][:1]
        url = f"{served.url}files/{hit['file_id']}/audio"
        sent = httpx.get(url, timeout=60)
        assert (sent.status_code, sent.headers["content-type"]) == (200, "audio/flac")
        (tmp_path / "sent.flac").write_bytes(sent.content)
        samples, rate = sf.read(tmp_path / "sent.flac", dtype="float32")
        assert rate == RATE and np.abs(samples - load_audio(chain, RATE)).max() <= 1 / 32768  # 16-bit steps
        with chromium() as browser:
            browser.get(served.url)
            duration = browser.execute_async_script(
                "const done = arguments[arguments.length - 1]; const a = new Audio(arguments[0]);"
                " a.onloadedmetadata = () => done(a.duration); a.onerror = () => done(-1);", url)
        assert duration == pytest.approx(len(samples) / RATE, abs=0.01)
    finally:
        served.stop()


def test_a_window_cut_from_a_later_link_holds_its_sound(tmp_path: Path) -> None:
    """``query --save`` and the page's "save window" cut with ffmpeg, which lands on nothing past the first link
    (the cut was an empty WAV): a chained file's window is cut from its decode, mono 48 kHz 24-bit."""
    chain = _chain(tmp_path / "chain.ogg", BELL, GUITAR, GLASS)
    out = cut_window(chain, 7.0, 9.5, tmp_path / "cut.wav")
    info = sf.info(str(out))
    assert (info.frames, info.samplerate, info.channels, info.subtype) == (int(2.5 * RATE), RATE, 1, "PCM_24")
    samples, _ = sf.read(out, dtype="float32")
    assert np.abs(samples - load_span(chain, RATE, 7.0, 9.5)).max() <= 1 / 2**23
    assert np.abs(samples).max() > 0.05  # the guitar slide, not silence
