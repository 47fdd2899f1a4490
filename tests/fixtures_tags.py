"""Media files carrying real tag blocks, written by tagging tools we did not write.

Audio is encoded by ffmpeg (from a real CC0 recording when Debian's sonic-pi-samples is installed, else a
sine); tags are then written by mutagen in each container's own format (ID3v2 in mp3, Vorbis comments in
ogg/opus/flac, MP4 atoms in m4a), and by ffmpeg's WAV muxer for the RIFF ``LIST/INFO`` chunk and the
Broadcast-WAV ``bext`` chunk (mutagen writes neither).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from real_sounds import SAMPLES_DIR

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def encode(dest: Path, *, seconds: float = 1.0, sample_rate: int = 44_100, channels: int = 1,
           source: str | None = "elec_bell", extra: list[str] | None = None) -> Path:
    """``dest`` encoded by ffmpeg (format from its suffix) from a real recording, or a sine when absent."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    real = SAMPLES_DIR / f"{source}.flac" if source else None
    if real is not None and real.is_file():
        src = ["-i", str(real)]
    else:
        src = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sample_rate}"]
    codec = {".ogg": ["-c:a", "libvorbis"], ".opus": ["-c:a", "libopus"], ".m4a": ["-c:a", "aac"],
             ".mp3": ["-c:a", "libmp3lame"], ".flac": ["-c:a", "flac"], ".wav": ["-c:a", "pcm_s16le"]}[dest.suffix]
    rate = ["-ar", str(sample_rate)] if dest.suffix != ".opus" else []
    cmd = ["ffmpeg", "-v", "error", "-y", *src, "-map_metadata", "-1", "-t", str(seconds), "-ac", str(channels), *rate, *codec,
           *(extra or []), str(dest)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return dest


def tag_mp3(path: Path, **tags: str) -> None:
    """ID3v2.4 frames by mutagen: TIT2 title, COMM comment, TCON genre, TPE1 artist, TALB album, TXXX."""
    from mutagen.id3 import COMM, ID3, TALB, TCON, TIT2, TPE1, TXXX

    id3 = ID3()
    frames = {"title": TIT2, "genre": TCON, "artist": TPE1, "album": TALB}
    for key, value in tags.items():
        if key in frames:
            id3.add(frames[key](encoding=3, text=[value]))
        elif key == "comment":
            id3.add(COMM(encoding=3, lang="eng", desc="", text=[value]))
        else:
            id3.add(TXXX(encoding=3, desc=key.upper(), text=[value]))
    id3.save(path)


def tag_vorbis(path: Path, **tags: str) -> None:
    """Vorbis comments by mutagen (ogg vorbis, opus, flac): NAME=value, names upper-cased."""
    import mutagen

    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    for key, value in tags.items():
        audio.tags[key.upper()] = [value]
    audio.save()


def tag_mp4(path: Path, **tags: str) -> None:
    """MP4 atoms by mutagen: ©nam, ©cmt, ©gen, ©ART, ©alb, desc, and freeform iTunes atoms for the rest."""
    from mutagen.mp4 import MP4, MP4FreeForm

    atoms = {"title": "\xa9nam", "comment": "\xa9cmt", "genre": "\xa9gen", "artist": "\xa9ART",
             "album": "\xa9alb", "description": "desc"}
    audio = MP4(path)
    for key, value in tags.items():
        if key in atoms:
            audio[atoms[key]] = [value]
        else:
            audio[f"----:com.apple.iTunes:{key.upper()}"] = [MP4FreeForm(value.encode("utf-8"))]
    audio.save()


def wav_with_info_and_bext(dest: Path, *, info: dict[str, str], description: str | None = None,
                           **encode_args: object) -> Path:
    """A WAV whose RIFF INFO chunk (``-metadata INAM=...``; ffmpeg maps title/comment/artist/genre/album to
    INAM/ICMT/IART/IGNR/IPRD and writes other RIFF INFO ids as given) and bext chunk (``-write_bext 1``,
    its ``description`` field) are written by ffmpeg's WAV muxer."""
    extra: list[str] = []
    for key, value in info.items():
        extra += ["-metadata", f"{key}={value}"]
    if description is not None:
        extra += ["-write_bext", "1", "-metadata", f"description={description}"]
    return encode(dest, extra=extra, **encode_args)  # type: ignore[arg-type]


DOOR = "DOOR_Wood_Slam_Heavy_03.wav"
ODD_NAME = 'NEAR AND "quoted" -minus *star (x).wav'


def build_tagged_library(root: Path) -> Path:
    """A small sound library: telling names and real tag blocks in every format, plus untagged fillers
    with uninformative names. Returns ``root``."""
    wav_with_info_and_bext(
        root / "Doors" / DOOR, source="drum_bass_hard", channels=2,
        info={"title": "Wood door slam", "IKEY": "door; wood; slam", "genre": "DOORS", "artist": "Foley Team",
              "album": "Household Vol 1"},
        description="Heavy wooden door slammed shut",
    )
    mp3 = encode(root / "misc" / "Tür-Knall (final).mp3", source="sn_dub")
    tag_mp3(mp3, title="Türknall", comment="a knock at the door", keywords="knock, hit")
    ogg = encode(root / "misc" / "glass_Break-small.ogg", source="elec_chime")
    tag_vorbis(ogg, title="Glass break", description="small glass shatters", category="GLASS")
    opus = encode(root / "misc" / "猫の声 take2.opus", source="misc_crow", channels=2)
    tag_vorbis(opus, title="猫の声", comment="a cat, recorded at night")
    flac = encode(root / "crowd" / "CrowdCheer.flac", source="loop_amen", sample_rate=48_000)
    tag_vorbis(flac, category="CROWD", subcategory="CHEER", library="Stadium Pack")
    m4a = encode(root / "misc" / "engine idle.m4a", source="ambi_drone")
    tag_mp4(m4a, title="Engine idle", artist="Garage", keywords="car motor")
    encode(root / "misc" / ODD_NAME, source="elec_beep")
    for i, source in enumerate(("ambi_choir", "bd_808", "tabla_na", "vinyl_hiss")):
        encode(root / "misc" / f"take_{i:02d}.flac", source=source)
    return root
