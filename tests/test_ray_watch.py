"""``ClusterWatch`` (``--engine ray``, issue 22): a GCS that stops answering interrupts the main thread, even one
blocked in a queue as Ray Data's iterator is, within its grace; a GCS that answers, or a run that ended,
interrupts nothing. A real listener on 127.0.0.1 stands for the GCS; no Ray needed."""

from __future__ import annotations

import queue
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.errors import EngineUnavailableError, UsageError
from diffgap_search.indexing.ray_engine.watch import ClusterWatch, lost_after_s, lost_message


@pytest.fixture
def gcs() -> Iterator[socket.socket]:
    """A listening socket on loopback (connections queue in its backlog; nothing reads them)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server
    server.close()


def _address(server: socket.socket) -> str:
    return f"127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def python_handles_sigint() -> Iterator[None]:
    """Python's own SIGINT handler, as in `dgsearch`: a pytest started as a background job of a non-interactive
    shell inherits SIGINT ignored, and Python then installs none (the watch would have nothing to interrupt)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_gcs_that_stops_answering_interrupts_a_main_thread_blocked_in_a_queue(
        gcs: socket.socket, python_handles_sigint: None) -> None:
    address = _address(gcs)
    # exit_after_s beyond the queue's timeout: should the interrupt not come, this test fails, and the watch's
    # last resort (os._exit(16), meant for a driver stuck in Ray) does not end the whole test run
    watch = ClusterWatch(address, f"the Ray cluster at {address}", lost_s=0.3, interval_s=0.05,
                         exit_after_s=600).start()
    try:
        time.sleep(0.2)
        assert watch.message is None  # answering: nothing happens
        gcs.close()  # the GCS goes away
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            queue.Queue().get(timeout=60)  # blocked in a lock, as the driver is in Ray Data's iterator
        assert 0.3 <= time.monotonic() - started < 5
    finally:
        watch.close()  # the driver let go of Ray: the watch ends nothing
    assert watch.message == (
        f"the Ray cluster at {address} went away mid-run (its GCS did not answer for 0.3 s); what was committed"
        " is kept: run `dgsearch index` again (--engine ray or local) to resume")
    error = watch.lost_error()
    assert (type(error), error.exit_code, str(error)) == (EngineUnavailableError, 16, watch.message)


def test_a_run_that_ended_is_not_interrupted(gcs: socket.socket) -> None:
    address = _address(gcs)
    watch = ClusterWatch(address, "a local Ray runtime", lost_s=0.1, interval_s=0.02).start()
    watch.stop()  # the run is over (its local runtime is being stopped): the GCS going is expected
    gcs.close()
    time.sleep(0.25)  # a KeyboardInterrupt here would fail the test
    watch.close()
    assert watch.message is None


def test_no_gcs_address_watches_nothing() -> None:
    watch = ClusterWatch(None, "the Ray cluster at ray://head:10001", lost_s=0.01).start()
    time.sleep(0.1)
    watch.close()
    assert watch.message is None


def test_lost_message_names_the_gcs_when_the_address_does_not() -> None:
    assert lost_message("a local Ray runtime", "127.0.0.1:6379", 10.0) == (
        "a local Ray runtime went away mid-run (its GCS at 127.0.0.1:6379 did not answer for 10 s); what was"
        " committed is kept: run `dgsearch index` again (--engine ray or local) to resume")


def test_lost_after_s(monkeypatch: pytest.MonkeyPatch, clips_dir: Path, tmp_path: Path) -> None:
    monkeypatch.delenv("DGSEARCH_RAY_LOST_S", raising=False)
    assert lost_after_s() == 10.0
    monkeypatch.setenv("DGSEARCH_RAY_LOST_S", "2.5")
    assert lost_after_s() == 2.5
    for bad in ("0", "-1", "nan", "inf"):
        monkeypatch.setenv("DGSEARCH_RAY_LOST_S", bad)
        with pytest.raises(UsageError) as info:
            lost_after_s()
        assert str(info.value) == f"DGSEARCH_RAY_LOST_S must be a positive number of seconds, not {bad!r}"
    monkeypatch.setenv("DGSEARCH_RAY_LOST_S", "soon")
    r = CliRunner().invoke(app, ["index", str(clips_dir), "--index", str(tmp_path / "ix"), "--engine", "ray"])
    assert (r.exit_code, r.stderr.strip()) == (
        2, "dgsearch: error: DGSEARCH_RAY_LOST_S must be a positive number of seconds, not 'soon'")
    assert not (tmp_path / "ix").exists()  # refused before anything is planned or written (or Ray imported)
