"""``dgsearch serve``'s guards through httpx, against a real server (subprocess, uvicorn on loopback): unknown ids
and path traversal are 404 and open nothing, uploads are capped, a non-loopback address needs a token, a foreign
Host header is refused, and with a token every request must carry it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import httpx
import pytest

from fixtures_serve import ServeCorpus
from serve_server import Served, run_dgsearch, start_serve


@pytest.mark.parametrize("path", [
    "files/999999/audio", "files/999999/peaks", "files/abc/audio", "files/-1/audio", "files/1.0/audio",
    "files/%2E%2E/audio", "files/0x1/peaks", "files/99999999999999999999999/audio",
    "files/999999/original", "files/abc/original", "files/999999/window?start=0&end=1", "files/..%2F/window?start=0&end=1",
])
def test_unknown_file_ids_are_404(served: Served, path: str) -> None:
    r = httpx.get(served.url + path)
    assert r.status_code == 404
    body = r.json()
    assert (body["exit_code"], body["error"]) == (3, "input not found")


def test_path_traversal_is_404_and_opens_nothing(served: Served, tmp_path: Path) -> None:
    """A FIFO stands in for a secret file: a server that opened it would block in ``open`` (the request would
    hang), and while a reader has it open a writer's non-blocking open succeeds. Neither happens."""
    secret = tmp_path / "secret"
    os.mkfifo(secret)
    rel = os.path.relpath(secret, "/")
    attempts = [
        f"files/{secret}/audio", f"files/..%2F..%2F..%2F{rel.replace('/', '%2F')}/audio", f"static/..%2F..%2F{rel}",
        f"static/%2e%2e/%2e%2e/{rel}", f"static/{secret}", f"files/1/audio/../../../{rel}", f"{rel}",
        f"files/%2F{rel.replace('/', '%2F')}/peaks", f"static/app.js%2F..%2F..%2F{rel}",
        f"files/{secret}/original", f"files/..%2F..%2F..%2F{rel.replace('/', '%2F')}/original",
        f"files/{secret}/window?start=0&end=1",
    ]
    with httpx.Client(timeout=10) as client:
        for attempt in attempts:
            r = client.get(served.url + attempt)
            assert r.status_code == 404, (attempt, r.status_code, r.text)
            assert r.json()["exit_code"] == 3
            with pytest.raises(OSError) as exc:  # ENXIO: no process has the FIFO open for reading
                os.close(os.open(secret, os.O_WRONLY | os.O_NONBLOCK))
            assert exc.value.errno == errno.ENXIO


def test_upload_too_large_is_413(served: Served) -> None:
    big = os.urandom(2_200_000)  # the server takes 2 MB
    r = httpx.post(served.url + "api/search/file", files={"file": ("big.wav", big)})
    message = "the query file is larger than the 2000000 bytes this server accepts (dgsearch serve --max-upload-mb)"
    assert (r.status_code, r.json()) == (413, {"exit_code": 2, "error": "usage", "message": message})

    def chunks():  # no Content-Length: counted as it arrives
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.wav\"\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 65536

    r = httpx.post(served.url + "api/search/file", content=chunks(),
                   headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and r.json()["exit_code"] == 2


def test_non_loopback_without_token_is_refused(serve_corpus: ServeCorpus) -> None:
    r = run_dgsearch("serve", "--index", serve_corpus.index, "--host", "0.0.0.0", "--port", "0")
    assert r.returncode == 2
    assert r.stderr == ("dgsearch: error: refusing to listen on 0.0.0.0 without --token: anyone who can reach it could"
                        " search the index and play its files; give --token SECRET (every request must then carry it),"
                        " or listen on 127.0.0.1\n")
    missing = run_dgsearch("serve", "--index", serve_corpus.index.parent / "nothing")
    assert missing.returncode == 4 and missing.stderr.startswith("dgsearch: error: no index at ")


def test_a_foreign_host_header_is_refused(served: Served) -> None:
    r = httpx.get(served.url + "api/info", headers={"Host": "attacker.example:8765"})
    assert r.status_code == 403 and r.json()["exit_code"] == 2
    assert httpx.get(served.url.replace("127.0.0.1", "localhost") + "api/info").status_code == 200


def test_token_is_required_on_every_request(serve_corpus: ServeCorpus) -> None:
    server = start_serve(serve_corpus.index, "--token", "s3cret-token")
    try:
        for path in ("", "api/info", "api/search?q=bell", "files/1/audio", "files/1/original",
                     "files/1/window?start=0&end=1", "docs", "openapi.json", "static/app.js"):
            bare = httpx.get(server.url + path)
            assert bare.status_code == 401 and bare.json()["exit_code"] == 2, path
            assert bare.headers["www-authenticate"] == "Bearer"
            wrong = httpx.get(server.url + path, headers={"Authorization": "Bearer s3cret-tokem"})
            assert wrong.status_code == 401
            ok = httpx.get(server.url + path, headers={"Authorization": "Bearer s3cret-token"})
            assert ok.status_code == 200, (path, ok.text)
        sep = "&" if "?" in "api/search?q=bell" else "?"
        assert httpx.get(server.url + "api/search?q=bell" + sep + "token=s3cret-token").status_code == 200
        assert httpx.get(server.url + "files/1/audio?token=s3cret-token",
                         headers={"Range": "bytes=0-9"}).status_code == 206
        assert httpx.post(server.url + "api/search/file", files={"file": ("x.wav", b"RIFF")}).status_code == 401
    finally:
        server.stop()
