"""discover: order, kinds, hidden/exclude rules, symlinks, odd names, unreadable folders; hashing."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from diffgap_search.errors import InputNotFoundError
from diffgap_search.media import discover as discover_mod
from diffgap_search.media.discover import DiscoveredFile, discover, display_path, media_kind, path_key
from diffgap_search.media.hashing import sha256_file


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def rel(root: Path, files: list[DiscoveredFile]) -> list[str]:
    return [str(f.path.relative_to(root)) for f in files]


def test_clips_dir_exact_order_and_kinds(clips_dir: Path) -> None:
    found = list(discover(clips_dir))
    assert rel(clips_dir, found) == [
        "birds/Yabc123.mp3",
        "birds/chirp.ogg",
        "dog_bark.wav",
        "long/siren.wav",
        "rain.flac",
    ]
    assert {f.kind for f in found} == {"audio"}
    first = found[0]
    st = os.stat(first.path)
    assert first.path.is_absolute()
    assert (first.size, first.mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert first.key == os.fsencode(str(first.path))


def test_order_is_byte_order_of_full_paths(tmp_path: Path) -> None:
    # "a.wav" < "a/x.wav" in bytes ('.' 0x2e < '/' 0x2f), "a-b.wav" (0x2d) before both; "B" < "a".
    for name in ["a/x.wav", "a.wav", "a-b.wav", "B.wav", "a/b/c.wav", "a/ab.wav", "é.wav"]:
        touch(tmp_path / name)
    got = [path_key(f.path) for f in discover(tmp_path)]
    assert got == sorted(got)
    assert rel(tmp_path, list(discover(tmp_path))) == [
        "B.wav", "a-b.wav", "a.wav", "a/ab.wav", "a/b/c.wav", "a/x.wav", "é.wav",
    ]


def test_extensions_case_insensitive_and_video_kind(tmp_path: Path) -> None:
    names = ["a.WAV", "b.Flac", "c.ogg", "d.oga", "e.MP3", "f.m4a", "g.opus", "h.mp4", "i.MKV", "j.webm",
             "k.mov", "l.avi", "m.txt", "n.wav.bak", "noext"]
    for name in names:
        touch(tmp_path / name)
    found = {f.path.name: f.kind for f in discover(tmp_path)}
    assert found == {
        "a.WAV": "audio", "b.Flac": "audio", "c.ogg": "audio", "d.oga": "audio", "e.MP3": "audio",
        "f.m4a": "audio", "g.opus": "audio", "h.mp4": "video", "i.MKV": "video", "j.webm": "video",
        "k.mov": "video", "l.avi": "video",
    }
    assert media_kind("x.Mp4") == "video" and media_kind("x.csv") is None


def test_hidden_excluded_and_dir_named_like_audio(tmp_path: Path) -> None:
    touch(tmp_path / "keep.wav")
    touch(tmp_path / ".hidden.wav")
    touch(tmp_path / ".git" / "x.wav")
    touch(tmp_path / "index" / "catalog.wav")
    touch(tmp_path / "clip.wav" / "inner.flac")  # a folder named like an audio file
    found = rel(tmp_path, list(discover(tmp_path, exclude=[tmp_path / "index", tmp_path / "missing"])))
    assert found == ["clip.wav/inner.flac", "keep.wav"]


def test_exclude_matches_by_identity_not_spelling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "keep.wav")
    touch(tmp_path / "idx" / "a.wav")
    monkeypatch.chdir(tmp_path)
    assert rel(tmp_path, list(discover(tmp_path, exclude=[Path("idx")]))) == ["keep.wav"]


def test_symlink_loop_terminates_and_links_keep_their_path(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "a.wav")
    os.symlink(tmp_path / "real", tmp_path / "real" / "loop")
    os.symlink(tmp_path, tmp_path / "real" / "up")
    os.symlink(tmp_path / "real" / "a.wav", tmp_path / "link.wav")
    os.symlink(tmp_path / "nowhere.wav", tmp_path / "broken.wav")
    errors: list[tuple[Path, str]] = []
    found = list(discover(tmp_path, on_error=lambda p, r: errors.append((p, r))))
    assert rel(tmp_path, found) == ["link.wav", "real/a.wav"]
    assert found[0].path == tmp_path / "link.wav"  # not resolved through the symlink
    assert errors == [(tmp_path / "broken.wav", "broken symlink")]


def test_symlinked_folder_is_followed_once(tmp_path: Path) -> None:
    touch(tmp_path / "store" / "s.wav")
    os.symlink(tmp_path / "store", tmp_path / "alias")
    assert rel(tmp_path, list(discover(tmp_path))) == ["alias/s.wav"]


def test_odd_names_round_trip(tmp_path: Path) -> None:
    raw_dir = os.fsencode(tmp_path)
    odd = [b"with space.wav", b"quote'\".wav", b"new\nline.wav", b"latin1-\xe9\xff.wav", b"-dash.wav"]
    for name in odd:
        with open(os.path.join(raw_dir, name), "wb") as fh:
            fh.write(b"x")
    found = list(discover(tmp_path))
    assert sorted(os.fsencode(f.path.name) for f in found) == sorted(odd)
    for f in found:
        assert os.path.exists(f.path)
        assert path_key(f.path) == os.path.join(raw_dir, os.fsencode(f.path.name))
    assert [path_key(f.path) for f in found] == sorted(path_key(f.path) for f in found)


def test_display_path_is_printable() -> None:
    p = Path(os.fsdecode(b"/x/latin1-\xe9\xff.wav"))
    assert display_path(p) == "/x/latin1-\\xe9\\xff.wav"
    assert display_path(Path("/x/new\nline\t.wav")) == "/x/new\\nline\\t.wav"
    assert display_path(Path("/x/bell\x07.wav")) == "/x/bell\\x07.wav"
    assert display_path(Path("/x/été 🐕.wav")) == "/x/été 🐕.wav"
    assert display_path(b"/raw/\x80") == "/raw/\\x80"


def test_unreadable_folder_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "ok.wav")
    touch(tmp_path / "locked" / "x.wav")
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if Path(os.fspath(path)).name == "locked":  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(discover_mod.os, "scandir", scandir)
    errors: list[tuple[Path, str]] = []
    assert rel(tmp_path, list(discover(tmp_path, on_error=lambda p, r: errors.append((p, r))))) == ["ok.wav"]
    assert errors == [(tmp_path / "locked", "cannot read folder: Permission denied")]


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_folder_for_real(tmp_path: Path) -> None:
    touch(tmp_path / "locked" / "x.wav")
    (tmp_path / "locked").chmod(0)
    try:
        errors: list[tuple[Path, str]] = []
        assert list(discover(tmp_path, on_error=lambda p, r: errors.append((p, r)))) == []
        assert [p for p, _ in errors] == [tmp_path / "locked"]
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_root_missing_file_root_and_fifo(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="no such file or folder"):
        list(discover(tmp_path / "nope"))
    single = touch(tmp_path / "one.flac")
    assert [f.path for f in discover(single)] == [single]
    os.mkfifo(tmp_path / "pipe.wav")
    assert rel(tmp_path, list(discover(tmp_path))) == ["one.flac"]


def test_relative_root_gives_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "d" / "a.wav")
    monkeypatch.chdir(tmp_path)
    assert [f.path for f in discover(Path("d/../d"))] == [tmp_path / "d" / "a.wav"]


def test_sha256_file_streams_exactly(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    path = touch(tmp_path / "big.bin", data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(touch(tmp_path / "empty.bin", b"")) == hashlib.sha256(b"").hexdigest()


def test_files_in_formats_not_read_are_counted_and_reported(tmp_path: Path, clips_dir: Path,
                                                             tiny_clap_dir: Path) -> None:
    """A folder of Monkey's Audio or MIDI files is not passed over in silence: the run counts them by extension
    (hidden files, folders named like them and other files not counted) and says what to do."""
    from cli_runner import dg

    from diffgap_search.media.listing import list_library

    library = tmp_path / "library"
    (library / "sub" / "folder.ape").mkdir(parents=True)
    (library / "sub" / "dog.wav").write_bytes((clips_dir / "dog_bark.wav").read_bytes())
    for name in ("a.ape", "sub/B.APE", "song.mid", ".hidden.ape", "notes.txt", "cover.jpg"):
        (library / name).write_bytes(b"not read")
    assert list_library(library).unread == {".ape": 2, ".mid": 1}
    r = dg("index", library, "--index", tmp_path / "ix", "--model", tiny_clap_dir, "--workers", "0")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[1] == (
        "3 files in formats dgsearch does not read left out: .ape ×2 (Monkey's Audio), .mid ×1 (MIDI: notes, not"
        " sound); convert recordings to FLAC (ffmpeg -i IN OUT.flac) to index them")
    again = dg("index", library, "--index", tmp_path / "ix", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["unread_formats"] == {".ape": 2, ".mid": 1}
