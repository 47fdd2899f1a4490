"""CaptionIndex: txt/json sidecars, AudioCaps and Clotho CSVs, dedup and order, malformed sidecars."""

from __future__ import annotations

import json
import os
from pathlib import Path

from caption_files import build, touch


def test_clips_dir_exact_captions(clips_dir: Path) -> None:
    index, errors = build(clips_dir)
    assert errors == []
    assert index.captions_for(clips_dir / "dog_bark.wav") == ["a dog barks", "the dog barks twice"]
    assert index.captions_for(clips_dir / "rain.flac") == ["rain falling", "rain on a roof"]
    assert index.captions_for(clips_dir / "birds" / "Yabc123.mp3") == ["birds sing in the morning", "a bird chirps"]
    assert index.captions_for(clips_dir / "birds" / "chirp.ogg") == []
    assert index.captions_for(clips_dir / "long" / "siren.wav") == [
        "a siren wails", "an ambulance passes", "a long siren", "a siren in the street",
    ]


def test_txt_json_variants_and_order(tmp_path: Path) -> None:
    touch(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_text("\ufeff  first  \r\n\r\nsecond\nfirst\n", encoding="utf-8")
    (tmp_path / "a.json").write_text(json.dumps({"caption": "third", "captions": ["second", "fourth"]}))
    touch(tmp_path / "b.mp3")
    (tmp_path / "b.mp3.txt").write_text("long-name sidecar", encoding="utf-8")
    touch(tmp_path / "c.mp4")
    (tmp_path / "c.json").write_text(json.dumps({"captions": "video caption", "other": 1}))
    index, errors = build(tmp_path)
    assert errors == []
    assert index.captions_for(tmp_path / "a.wav") == ["first", "second", "third", "fourth"]
    assert index.captions_for(tmp_path / "b.mp3") == ["long-name sidecar"]
    assert index.captions_for(tmp_path / "c.mp4") == ["video caption"]
    assert index.captions_for(tmp_path / "missing.wav") == []


def test_tux_paint_translation_lines_are_not_captions(tmp_path: Path) -> None:
    # lines of tuxpaint-stamps-default's stamps/animals/mammals/deer/caribou.txt, in its order (67 lines there):
    # the English line, then LOCALE.utf8=TEXT translations, the English variants among them
    touch(tmp_path / "caribou.ogg")
    (tmp_path / "caribou.txt").write_text(
        "A caribou.\nach.utf8=Karibou.\nca@valencia.utf8=Un caribú.\nen_AU.utf8=A caribou. A large deer.\n"
        "en_GB.utf8=A caribou.\nfr.utf8=Un caribou.\npt_BR.utf8=Uma rena.\nsr@latin.utf8=Vrsta jelena.\n"
        "zh_TW.utf8=馴鹿\nen.utf8=\n", encoding="utf-8")
    touch(tmp_path / "meter.wav")
    (tmp_path / "meter.txt").write_text("ratio=3:2\nde=ein Zähler\n", encoding="utf-8")  # not the locale form
    index, errors = build(tmp_path)
    assert errors == []
    assert index.captions_for(tmp_path / "caribou.ogg") == ["A caribou.", "A caribou. A large deer."]
    assert index.captions_for(tmp_path / "meter.wav") == ["ratio=3:2", "de=ein Zähler"]


def test_relative_lookup_path(tmp_path: Path, monkeypatch) -> None:
    touch(tmp_path / "d" / "a.wav")
    (tmp_path / "d" / "a.txt").write_text("hello", encoding="utf-8")
    index, _ = build(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert index.captions_for(Path("d/a.wav")) == ["hello"]


def test_malformed_sidecars_are_reported_not_raised(tmp_path: Path) -> None:
    for name in ["bad_json.wav", "bad_utf8.wav", "wrong_type.wav", "list_json.wav", "good.wav"]:
        touch(tmp_path / name)
    (tmp_path / "bad_json.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "bad_utf8.txt").write_bytes(b"caf\xe9 au lait")
    (tmp_path / "wrong_type.json").write_text(json.dumps({"caption": 3}))
    (tmp_path / "list_json.json").write_text(json.dumps(["a", "b"]))
    (tmp_path / "good.txt").write_text("fine", encoding="utf-8")
    (tmp_path / "ragged.csv").write_text("file_name,caption\ngood.wav,x,extra\n", encoding="utf-8")
    (tmp_path / "binary.csv").write_bytes(b"file_name,caption\n\xff\xfe\n")
    (tmp_path / "nameless.csv").write_text("caption\nsomething\n", encoding="utf-8")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n", encoding="utf-8")  # not a caption CSV: silent
    index, errors = build(tmp_path)
    assert sorted(errors) == [
        ("bad_json.json", "bad JSON: Expecting property name enclosed in double quotes at line 1"),
        ("bad_utf8.txt", "not UTF-8 text"),
        ("binary.csv", "not UTF-8 text"),
        ("list_json.json", 'bad JSON: expected an object with a "caption" field'),
        ("nameless.csv", "no column of this CSV names the clips"),
        ("ragged.csv", "bad CSV: rows do not all have the 2 columns of the header"),
        ("wrong_type.json", 'bad JSON: "caption" must be a string or a list of strings'),
    ]
    assert index.captions_for(tmp_path / "good.wav") == ["fine"]
    assert index.captions_for(tmp_path / "bad_json.wav") == []


def test_audiocaps_matching_by_column_values(tmp_path: Path) -> None:
    touch(tmp_path / "audio" / "Yq1.wav")
    touch(tmp_path / "audio" / "q2.flac")
    touch(tmp_path / "audio" / "q3_30.wav")  # not matched: AudioCaps names with start times are not guessed
    (tmp_path / "captions.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n"
        "7,q1,10,one\n8,q2,0,two\n9,q2,0,two again\n10,q3,30,three\n",
        encoding="utf-8",
    )
    index, errors = build(tmp_path)
    assert errors == []
    assert index.captions_for(tmp_path / "audio" / "Yq1.wav") == ["one"]
    assert index.captions_for(tmp_path / "audio" / "q2.flac") == ["two", "two again"]
    assert index.captions_for(tmp_path / "audio" / "q3_30.wav") == []


def test_clotho_relative_paths_nearest_csv_first_and_scope(tmp_path: Path) -> None:
    touch(tmp_path / "dev" / "sub" / "x.wav")
    touch(tmp_path / "other" / "x.wav")
    (tmp_path / "dev" / "clotho.csv").write_text(
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        "sub/x.wav,near one,near two,shared,near four,near five\n",
        encoding="utf-8",
    )
    (tmp_path / "top.csv").write_text("file_name,caption\nx,far\nx.wav,shared\n", encoding="utf-8")
    index, errors = build(tmp_path)
    assert errors == []
    assert index.captions_for(tmp_path / "dev" / "sub" / "x.wav") == [
        "near one", "near two", "shared", "near four", "near five", "far",
    ]
    # dev/clotho.csv applies only below dev/; top.csv (by name) applies to every x.wav below the root
    assert index.captions_for(tmp_path / "other" / "x.wav") == ["far", "shared"]


def test_non_utf8_names(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9")
    for suffix, data in ((b".wav", b"x"), (b".txt", "caption of an odd name".encode())):
        with open(raw + suffix, "wb") as fh:
            fh.write(data)
    index, errors = build(tmp_path)
    assert errors == []
    assert index.captions_for(Path(os.fsdecode(raw + b".wav"))) == ["caption of an odd name"]


def test_hidden_sidecars_ignored(tmp_path: Path) -> None:
    touch(tmp_path / "a.wav")
    (tmp_path / ".captions.csv").write_text("file_name,caption\na.wav,hidden\n", encoding="utf-8")
    index, _ = build(tmp_path)
    assert index.captions_for(tmp_path / "a.wav") == []
