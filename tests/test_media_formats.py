"""The formats studios and archives keep sound in, found, decoded and indexed: AIFF/AIFF-C, CAF, Broadcast WAVE,
RF64, Wave64, Sun au, WavPack, MPEG-1 Layer II, AAC, WMA, Dolby AC-3/E-AC-3, DTS, TTA, AAC audiobooks and
ringtones, Speex, WebM audio, RealAudio, AMR, Creative VOC, Amiga 8SVX/16SV, NIST SPHERE; and video as MPEG
program/transport streams, MXF, .m4v, .wmv (transport streams told from TypeScript and schematics by their bytes:
test_media_sniff.py).

Two kinds of real file we did not write: CPython's own test recordings (one pluck as AIFF, AIFF-C a-law/u-law, au
and WAV at 8-32 bits; Debian's libpython3.X-testsuite, unpacked by ``scripts/install.sh`` into tests/.media), and
a CC0 recording of Debian's sonic-pi-samples encoded by ffmpeg's own muxers and encoders (libsndfile's where ffmpeg
writes none) into every other format.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_runner import dg
from fixtures_video import ffmpeg

from real_sounds import SAMPLES_DIR

from diffgap_search.media.audio import load_audio
from diffgap_search.media.discover import media_kind

AUDIODATA = Path(__file__).parent / ".media" / "cpython-audiodata"
PLUCKS = ("pcm8.aiff", "pcm16.aiff", "pcm24.aiff", "pcm32.aiff", "alaw.aifc", "ulaw.aifc",
          "pcm8.au", "pcm16.au", "pcm24.au", "pcm32.au", "ulaw.au", "pcm8.wav", "pcm24.wav", "pcm32.wav")
SOURCE = SAMPLES_DIR / "loop_amen.flac"  # CC0 (freesound), 1.75 s, 44.1 kHz stereo
AUDIO_ENCODES = {  # name -> ffmpeg output options
    "amen.aif": [], "amen_24bit.aiff": ["-c:a", "pcm_s24be"], "amen.caf": ["-c:a", "alac"],
    "amen.bwf": ["-write_bext", "1", "-metadata", "description=Amen break drum loop", "-f", "wav"],
    "amen.rf64": ["-rf64", "always", "-f", "wav"], "amen.w64": [], "amen.au": [], "amen.wv": [],
    "amen.mp2": [], "amen.aac": [], "amen.wma": ["-c:a", "wmav2"], "amen.mka": ["-c:a", "libopus"],
    "amen.ac3": [], "amen.eac3": [], "amen.dts": ["-strict", "-2", "-c:a", "dca", "-ar", "48000"], "amen.tta": [],
    "amen.m4b": ["-c:a", "aac", "-f", "mp4"], "amen.m4r": ["-c:a", "aac", "-b:a", "96k", "-f", "mp4"],
    "amen.spx": ["-c:a", "libspeex", "-ar", "16000", "-ac", "1"], "amen.weba": ["-c:a", "libopus", "-f", "webm"],
    "amen.ra": ["-c:a", "real_144", "-ar", "8000", "-ac", "1", "-f", "rm"],
}
# Formats ffmpeg does not write (Amiga IFF, NIST SPHERE) or writes only at its rates (VOC: 43,478 Hz for 44.1 kHz):
# written by libsndfile. name -> (libsndfile format, subtype)
LIBSNDFILE_WRITES = {"amen.voc": ("VOC", "PCM_16"), "amen.8svx": ("SVX", "PCM_S8"), "amen.16sv": ("SVX", "PCM_16"),
                     "amen.sph": ("NIST", "PCM_16")}
PICTURE = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=25"]
VIDEO_ENCODES = {  # name -> ffmpeg output options (the recording as the soundtrack of a test pattern)
    "amen.m4v": ["-c:v", "mpeg4", "-c:a", "aac", "-f", "mp4"], "amen.mpg": ["-c:v", "mpeg2video", "-c:a", "mp2"],
    "amen.mpeg": ["-c:v", "mpeg1video", "-c:a", "mp2"], "amen.mts": ["-c:v", "mpeg2video", "-c:a", "mp2"],
    "amen.m2ts": ["-c:v", "mpeg2video", "-c:a", "mp2", "-f", "mpegts"],  # 192-byte packets (m2ts mode: auto)
    "amen.ts": ["-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", "-c:a", "aac"],  # a DVB/IPTV-style recording: 188-byte packets
    "amen.mxf": ["-c:v", "mpeg2video", "-c:a", "pcm_s16le", "-ar", "48000"],
    "amen.wmv": ["-c:v", "wmv2", "-c:a", "wmav2"], "amen.vob": ["-c:v", "mpeg2video", "-c:a", "ac3", "-f", "vob"],
    "amen.dv": ["-c:v", "dvvideo", "-s", "720x576", "-r", "25", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le",
                "-ar", "48000"],
    "amen.ogv": ["-c:v", "libtheora", "-c:a", "libvorbis"], "amen.flv": ["-c:v", "flv1", "-c:a", "aac"],
    "amen.3gp": ["-c:v", "h263", "-s", "176x144", "-c:a", "aac", "-ar", "16000", "-ac", "1"],
    "amen.3g2": ["-c:v", "h263", "-s", "176x144", "-c:a", "aac", "-ar", "16000", "-ac", "1"],
}


@pytest.mark.parametrize("name", PLUCKS)
def test_cpythons_recordings_decode_to_the_same_pluck(name: str) -> None:
    path = AUDIODATA / f"pluck-{name}"
    if not path.is_file():
        pytest.skip(f"{AUDIODATA} lacks CPython's test recordings: scripts/install.sh unpacks them (needs apt)")
    assert media_kind(path) == "audio"
    reference = load_audio(AUDIODATA / "pluck-pcm16.wav", 11025)  # 3,307 samples, 11.025 kHz stereo
    got = load_audio(path, 11025)
    assert got.shape == reference.shape == (3307,) and got.dtype == np.float32
    tolerance = 1e-4 if "pcm8" not in name and "law" not in name else 0.02  # 8-bit and G.711: coarser steps
    assert float(np.abs(got - reference).max()) < tolerance
    assert float(np.corrcoef(got, reference)[0, 1]) > 0.9999


def amr_nb(seconds: float) -> bytes:
    """An AMR-NB file (RFC 4867 section 5: ``#!AMR`` then 20 ms frames) of 12.2 kbit/s frames with seeded random
    bits, ffmpeg's AMR encoder being absent from Debian's build: a noise, but a file only an AMR decoder reads."""
    rng = np.random.default_rng(0)
    frames = [bytes([0x3C]) + rng.integers(0, 256, 31, dtype=np.uint8).tobytes() for _ in range(round(seconds / 0.02))]
    return b"#!AMR\n" + b"".join(frames)


@pytest.fixture(scope="module")
def encoded_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recording in each audio format above and as the soundtrack of each video format."""
    if not SOURCE.is_file():
        pytest.skip(f"{SOURCE} is absent (apt-get install sonic-pi-samples)")
    folder = tmp_path_factory.mktemp("formats") / "library"
    folder.mkdir()
    for name, options in AUDIO_ENCODES.items():
        ffmpeg("-i", str(SOURCE), *options, str(folder / name))
    samples, rate = sf.read(SOURCE, dtype="float32")
    for name, (fmt, subtype) in LIBSNDFILE_WRITES.items():  # Amiga samples are mono: libsndfile writes no other
        sf.write(folder / name, samples.mean(axis=1) if fmt == "SVX" else samples, rate, subtype, format=fmt)
    (folder / "amen.amr").write_bytes(amr_nb(seconds=1.75))
    for name, options in VIDEO_ENCODES.items():
        ffmpeg(*PICTURE, "-i", str(SOURCE), "-shortest", *options, str(folder / name))
    return folder


def test_every_format_is_found_indexed_and_found_again(encoded_library: Path, tmp_path: Path) -> None:
    names = sorted(p.name for p in encoded_library.iterdir())
    assert [media_kind(encoded_library / n) for n in names].count("video") == len(VIDEO_ENCODES)
    ix = tmp_path / "ix"
    r = dg("index", encoded_library, "--index", ix, "--model", "aisfx", "--no-frames", "--workers", "0", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (report["found"], report["embedded_files"], report["failed"]) == (len(names), len(names), [])
    q = dg("query", "--audio", SOURCE, "--index", ix, "--mode", "semantic", "-k", len(names), "--jsonl")
    assert q.exit_code == 0, q.output
    hits = {Path(h["path"]).name: h["score"] for h in map(json.loads, q.stdout.splitlines())}
    assert sorted(hits) == names  # every format's copy of the recording comes back
    lossless = [n for n in names if n.rsplit(".", 1)[1] in
                ("aif", "aiff", "caf", "bwf", "rf64", "w64", "au", "wv", "tta", "voc", "16sv", "sph")]
    assert min(hits[n] for n in lossless) > 0.999, hits
    noise, narrowband = hits.pop("amen.amr"), hits.pop("amen.ra")  # random AMR bits; RealAudio 1.0: 8 kHz, 14.4k
    assert min(hits.values()) > 0.9 and narrowband > 0.8 > noise, hits  # MPEG, AAC, WMA, Dolby, DTS: lossy, the same
    assert len(load_audio(encoded_library / "amen.amr", 8000)) == 88 * 160  # 88 frames of 20 ms at 8 kHz
    words = dg("query", "amen break drum loop", "--index", ix, "--mode", "keyword", "--jsonl")
    assert [Path(json.loads(line)["path"]).name for line in words.stdout.splitlines()][0] == "amen.bwf"  # its bext


def test_the_pages_file_picker_offers_every_format() -> None:
    """Browsers filter the picker by MIME type, and know none for .mxf, .wv, .caf, .w64, .mts …: the page names
    every extension an index reads."""
    import re
    from importlib import resources

    page = resources.files("diffgap_search.serve").joinpath("static", "index.html").read_text(encoding="utf-8")
    accept = re.search(r'<input id="file" type="file" accept="([^"]+)"', page)
    assert accept is not None
    from diffgap_search.media.discover import MEDIA_EXTENSIONS

    assert set(accept.group(1).split(",")) == {"audio/*", "video/*", *MEDIA_EXTENSIONS}
