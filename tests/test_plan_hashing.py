"""Planning hashes the files whose stat changed on ``HASH_THREADS`` threads (``indexing/plan.hash_files``): the
digests in the files' order, a file that cannot be read planned as a hash error in its place, and the plan the
same as one thread makes; real files (Debian's sonic-pi recordings), a real catalog."""

from __future__ import annotations

import errno
import shutil
import threading
from pathlib import Path

import pytest

from diffgap_search.indexing.plan import HASH_THREADS, hash_files, make_plan
from diffgap_search.media.discover import DiscoveredFile, path_key
from diffgap_search.media.hashing import sha256_file
from diffgap_search.media.listing import list_library
from diffgap_search.store.catalog import Catalog

SONIC_PI = Path("/usr/share/sonic-pi/samples")


@pytest.fixture
def library(tmp_path: Path) -> Path:
    names = sorted(SONIC_PI.glob("*.flac"))[:12]
    if len(names) < 12:
        pytest.skip("Debian's sonic-pi-samples are not installed (scripts/install.sh installs them)")
    lib = tmp_path / "lib"
    lib.mkdir()
    for p in names:
        shutil.copyfile(p, lib / p.name)
    return lib


def test_files_are_hashed_in_their_order_on_the_planning_threads(library: Path) -> None:
    files = list_library(library).media
    threads: set[str] = set()
    broken = files[5]
    together = threading.Barrier(HASH_THREADS, timeout=30)  # the first files wait for each other: one thread each

    def hash_file(f: DiscoveredFile) -> str:
        threads.add(threading.current_thread().name)
        if f in files[:HASH_THREADS] and threading.current_thread().name.startswith("dgsearch-hash"):
            together.wait()
        if f is broken:
            raise OSError(errno.EIO, "Input/output error")
        return sha256_file(f.path)

    got = hash_files(files, hash_file)
    want = [sha256_file(f.path) for f in files]
    assert [g for i, g in enumerate(got) if i != 5] == [w for i, w in enumerate(want) if i != 5]
    assert isinstance(got[5], OSError) and got[5].strerror == "Input/output error"
    assert len(threads) == HASH_THREADS and all(t.startswith("dgsearch-hash") for t in threads)
    assert hash_files(files[:1], hash_file) == want[:1]  # one file: hashed here, no threads
    assert hash_files([], hash_file) == []


def test_a_file_that_cannot_be_read_is_planned_as_a_hash_error_in_its_place(library: Path, tmp_path: Path) -> None:
    files = list_library(library).media
    unreadable = files[3].path.name

    def hash_file(f: DiscoveredFile) -> str:
        if f.path.name == unreadable:
            raise OSError(errno.EACCES, "Permission denied")
        return sha256_file(f.path)

    with Catalog.open(tmp_path / "ix", create=True) as catalog:
        plan = make_plan(files, catalog, path_key(library) + b"/", hash_file)
    assert [(f.path.name, why) for f, why in plan.hash_errors] == [(unreadable, "cannot read: Permission denied")]
    assert [(t.file.path.name, t.sha256) for t in plan.embed] == [
        (f.path.name, sha256_file(f.path)) for f in files if f.path.name != unreadable]
