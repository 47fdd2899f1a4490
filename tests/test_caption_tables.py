"""Caption tables as datasets and sound archives publish them: the BBC Sound Effects archive's description list,
ESC-50's and UrbanSound8K's class tables in a metadata folder beside the audio, FSD50K's comma-separated labels;
and the CSVs beside a library that are not caption tables, left alone without a word.

Headers and layouts are the published ones (BBCSoundEffects.csv: ``location,description,secs,category,CDNumber,
CDName,tracknum``; ESC-50 ``meta/esc50.csv`` with ``audio/``; UrbanSound8K ``metadata/UrbanSound8K.csv`` with
``audio/foldN/``; FSD50K ``FSD50K.ground_truth/dev.csv`` with ``FSD50K.dev_audio/``); the first rows of ESC-50
and UrbanSound8K are theirs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from caption_files import build, touch
from cli_runner import dg

from real_sounds import SAMPLES_DIR



def test_the_bbc_archives_descriptions_name_its_catalogue_numbers(tmp_path: Path) -> None:
    touch(tmp_path / "07076051.wav")
    touch(tmp_path / "07070175.wav")
    touch(tmp_path / "00000001.wav")  # not in the list
    (tmp_path / "BBCSoundEffects.csv").write_text(
        "location,description,secs,category,CDNumber,CDName,tracknum\n"
        '07076051.wav,"Birds - dawn chorus in a wood, blackbird prominent.",182,Nature,EC10D2,Birds,4\n'
        '07070175.wav,"Steam train - departs from station, whistle.",96,Transport,EC17D1,Railways,12\n',
        encoding="utf-8")
    index, errors = build(tmp_path)
    assert errors == []
    assert index.captions_for(tmp_path / "07076051.wav") == ["Birds - dawn chorus in a wood, blackbird prominent."]
    assert index.captions_for(tmp_path / "07070175.wav") == ["Steam train - departs from station, whistle."]
    assert index.captions_for(tmp_path / "00000001.wav") == []  # category is not read where descriptions are


def test_class_tables_in_a_metadata_folder_beside_the_audio(tmp_path: Path) -> None:
    esc = tmp_path / "ESC-50-master"
    touch(esc / "audio" / "1-100032-A-0.wav")
    touch(esc / "audio" / "1-100038-A-14.wav")
    (esc / "meta").mkdir()
    (esc / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n"
        "1-100032-A-0.wav,1,0,dog,True,100032,A\n1-100038-A-14.wav,1,14,chirping_birds,False,100038,A\n")
    urban = tmp_path / "UrbanSound8K"
    touch(urban / "audio" / "fold5" / "100032-3-0-0.wav")
    (urban / "metadata").mkdir()
    (urban / "metadata" / "UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "100032-3-0-0.wav,100032,0.0,0.317551,1,5,3,dog_bark\n")
    fsd = tmp_path / "FSD50K"
    touch(fsd / "FSD50K.dev_audio" / "64760.wav")
    (fsd / "FSD50K.ground_truth").mkdir()
    (fsd / "FSD50K.ground_truth" / "dev.csv").write_text(
        'fname,labels,mids,split\n64760,"Electric_guitar,Guitar,Plucked_string_instrument",'
        '"/m/02sgy,/m/0342h,/m/0fx80y",train\n')
    (fsd / "FSD50K.ground_truth" / "vocabulary.csv").write_text("0,Electric_guitar,/m/02sgy\n")  # no header
    index, errors = build(tmp_path)
    assert errors == []
    assert index.captions_for(esc / "audio" / "1-100032-A-0.wav") == ["dog"]
    assert index.captions_for(esc / "audio" / "1-100038-A-14.wav") == ["chirping birds"]
    assert index.captions_for(urban / "audio" / "fold5" / "100032-3-0-0.wav") == ["dog bark"]
    assert index.captions_for(fsd / "FSD50K.dev_audio" / "64760.wav") == [
        "Electric guitar", "Guitar", "Plucked string instrument"]


def test_other_csvs_are_left_alone_and_a_caption_table_naming_nothing_is_reported(tmp_path: Path) -> None:
    touch(tmp_path / "kick.wav")
    (tmp_path / "tracks.csv").write_text("track,title,category\n1,Opening,music\n2,Finale,music\n")
    (tmp_path / "notes.csv").write_text("item,description\n1,a note,extra cell\n")  # about no clip: silent
    (tmp_path / "broken.csv").write_text("file,description\nkick.wav,a kick,extra cell\n")  # about kick.wav
    (tmp_path / "captions.csv").write_text("clip,caption\nsnare.wav,a snare\n")
    index, errors = build(tmp_path)
    assert sorted(errors) == [("broken.csv", "bad CSV: rows do not all have the 2 columns of the header"),
                              ("captions.csv", "no column of this CSV names the clips")]
    assert index.captions_for(tmp_path / "kick.wav") == []


def test_an_esc50_folder_indexes_with_its_classes_as_captions(tmp_path: Path) -> None:
    root = tmp_path / "ESC-50-master"
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows = {"1-100032-A-0.wav": ("dog", "ambi_choir"), "1-100038-A-14.wav": ("chirping_birds", "perc_bell"),
            "1-115545-A-48.wav": ("fireworks", "loop_amen")}
    for name, (_, stem) in rows.items():
        shutil.copyfile(SAMPLES_DIR / f"{stem}.flac", root / "audio" / name)  # real recordings, ESC-50's names
    (root / "meta" / "esc50.csv").write_text("filename,fold,target,category,esc10,src_file,take\n" + "".join(
        f"{name},1,0,{category},False,{name.split('-')[1]},A\n" for name, (category, _) in rows.items()))
    ix = tmp_path / "ix"
    r = dg("index", root, "--index", ix, "--model", "aisfx", "--no-frames", "--workers", "0", "--json")
    assert r.exit_code == 0, r.output
    q = dg("query", "chirping birds", "--index", ix, "--mode", "keyword", "--jsonl")
    hits = [json.loads(line) for line in q.stdout.splitlines()]
    assert [(Path(h["path"]).name, h["caption"]) for h in hits] == [("1-100038-A-14.wav", "chirping birds")]


def test_a_table_excel_saved_with_european_settings_is_read(tmp_path: Path) -> None:
    """Excel separates columns with ``;`` where the decimal mark is a comma (French, German, Spanish … settings),
    its "CSV UTF-8" starting with a BOM; its "Unicode Text" is UTF-16 with tabs. Read with ``,`` such a header was
    one column ("filename;description;durée") and the table was passed over without a word."""
    touch(tmp_path / "sons" / "pluie_01.wav")
    touch(tmp_path / "sons" / "porte_02.wav")
    (tmp_path / "sons" / "metadata.csv").write_bytes(
        "filename;description;durée\r\n"
        'pluie_01.wav;"Pluie fine sur un toit de tôle; gouttes lentes";12,5\r\n'
        "porte_02.wav;Porte en bois qui grince;3,2\r\n".encode("utf-8-sig"))
    touch(tmp_path / "tabs" / "wind.wav")
    (tmp_path / "tabs" / "list.csv").write_bytes("file\tcaption\r\nwind.wav\tWind in pine trees\r\n".encode("utf-16"))
    index, errors = build(tmp_path)
    assert errors == []
    assert index.captions_for(tmp_path / "sons" / "pluie_01.wav") == ["Pluie fine sur un toit de tôle; gouttes lentes"]
    assert index.captions_for(tmp_path / "sons" / "porte_02.wav") == ["Porte en bois qui grince"]
    assert index.captions_for(tmp_path / "tabs" / "wind.wav") == ["Wind in pine trees"]


def test_a_sidecar_saved_as_utf16_is_read(tmp_path: Path) -> None:
    """Notepad's "Unicode" (UTF-16 with its BOM) beside a recording."""
    touch(tmp_path / "gong.wav")
    (tmp_path / "gong.txt").write_bytes("Un gong frappé une fois\r\nlong decay\r\n".encode("utf-16"))
    index, errors = build(tmp_path)
    assert (errors, index.captions_for(tmp_path / "gong.wav")) == ([], ["Un gong frappé une fois", "long decay"])
