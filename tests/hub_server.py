"""A Hugging Face hub stand-in on loopback: serves model folders well enough for ``snapshot_download``.

huggingface_hub 2.x calls:

- ``GET /api/models/{repo}`` or ``GET /api/models/{repo}/revision/{rev}`` (``model_info``; ``?blobs=True`` for
  files metadata) -> JSON with ``sha`` (the commit) and ``siblings`` (``rfilename``, and with blobs ``size``,
  ``blobId`` and, for LFS files, ``lfs`` {``sha256``, ``size``, ``pointerSize``}), as the hub answers;
- ``GET /api/models/{repo}/tree/{commit}?recursive=True&expand=False`` -> JSON list of files (``oid``, ``size``,
  ``path``, and ``lfs`` {``oid`` = sha256, ``size``, ``pointerSize``} for LFS files), one page (no ``Link``);
- per file, ``HEAD /{repo}/resolve/{commit}/{path}`` -> headers ``X-Repo-Commit``, ``ETag`` (``X-Linked-Etag``
  for LFS files: the sha256), ``Content-Length``; then ``GET`` of the same URL for the bytes.

Unknown repos answer 404 with ``X-Error-Code: RepoNotFound``, unknown revisions ``RevisionNotFound``, unknown
files 404 with ``EntryNotFound``, as the hub does. A repo is one folder (branch ``main``) or a mapping of
branch names to folders, each branch its own commit; a revision is a branch name or a commit. Every request
path is recorded in ``requests`` so tests can check what was fetched.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt", ".h5", ".msgpack")


def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HubServer:
    """Serve ``{repo_id: folder}`` on ``127.0.0.1:<ephemeral>``; use as a context manager or start()/stop()."""

    def __init__(self, repos: dict[str, Path | dict[str, Path]], *, wrong_sha256: frozenset[str] = frozenset()) -> None:
        """``wrong_sha256``: file names whose stated LFS sha256 is a lie (a corrupted mirror, a bad download)."""
        self.repos = {
            repo_id: _Repo({"main": Path(folders)} if isinstance(folders, (str, Path)) else
                           {branch: Path(folder) for branch, folder in folders.items()})
            for repo_id, folders in repos.items()
        }
        self.requests: list[tuple[str, str]] = []
        for repo in self.repos.values():
            for snap in repo.branches.values():
                for name in wrong_sha256 & set(snap.sha256):
                    snap.sha256[name] = "0" * 64
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        hub = self

        class Handler(_HubHandler):
            server_hub = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Repo:
    """A repository's branches, each a ``_RepoSnapshot``; ``resolve`` takes a branch name or a commit."""

    def __init__(self, branches: dict[str, Path]) -> None:
        self.branches = {name: _RepoSnapshot(folder) for name, folder in branches.items()}

    def resolve(self, revision: str) -> _RepoSnapshot | None:
        if revision in self.branches:
            return self.branches[revision]
        return next((snap for snap in self.branches.values() if snap.commit == revision), None)


class _RepoSnapshot:
    """One repo at one commit: its files, git blob ids, sha256 digests and a commit hash derived from them."""

    def __init__(self, folder: Path) -> None:
        self.files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        self.sha256 = {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in self.files.items()}
        self.blob_id = {name: _git_blob_id(p.read_bytes()) for name, p in self.files.items()}
        listing = "".join(f"{name} {self.blob_id[name]}\n" for name in self.files)
        self.commit = hashlib.sha1(listing.encode("utf-8")).hexdigest()

    def is_lfs(self, name: str) -> bool:
        return name.endswith(LFS_SUFFIXES)

    def siblings(self, blobs: bool) -> list[dict[str, Any]]:
        """``model_info``'s ``siblings``: names, and with ``blobs`` sizes, blob ids and LFS metadata."""
        out: list[dict[str, Any]] = []
        for name, path in self.files.items():
            entry: dict[str, Any] = {"rfilename": name}
            if blobs:
                size = path.stat().st_size
                entry.update(size=size, blobId=self.blob_id[name])
                if self.is_lfs(name):
                    entry["lfs"] = {"sha256": self.sha256[name], "size": size, "pointerSize": 134}
            out.append(entry)
        return out

    def tree(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for name, path in self.files.items():
            size = path.stat().st_size
            entry: dict[str, Any] = {"type": "file", "oid": self.blob_id[name], "size": size, "path": name}
            if self.is_lfs(name):
                entry["lfs"] = {"oid": self.sha256[name], "size": size, "pointerSize": 134}
            entries.append(entry)
        return entries


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _HubHandler(BaseHTTPRequestHandler):
    server_hub: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._handle(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle(send_body=False)

    def _handle(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.server_hub.requests.append((self.command, path))
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 4 and parts[:2] == ["api", "models"]:
            repo_id = f"{parts[2]}/{parts[3]}"
            if len(parts) == 4 or (len(parts) >= 6 and parts[4] == "revision"):
                snap = self._snapshot(repo_id, "/".join(parts[5:]) if len(parts) > 4 else "main")
                if snap is not None:
                    blobs = "blobs=true" in url.query.lower()
                    self._json({"id": repo_id, "modelId": repo_id, "sha": snap.commit, "private": False,
                                "siblings": snap.siblings(blobs)}, send_body)
                return
            if len(parts) >= 6 and parts[4] == "tree":
                snap = self._snapshot(repo_id, parts[5])
                if snap is not None:
                    self._json(snap.tree(), send_body)
                return
        if len(parts) >= 5 and parts[2] == "resolve":
            snap = self._snapshot(f"{parts[0]}/{parts[1]}", parts[3])
            if snap is not None:
                self._file(snap, "/".join(parts[4:]), send_body)
            return
        self._error(404, "EntryNotFound", "not a hub endpoint")

    def _snapshot(self, repo_id: str, revision: str) -> _RepoSnapshot | None:
        repo = self.server_hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return None
        snap = repo.resolve(revision)
        if snap is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return snap

    def _file(self, repo: _RepoSnapshot, name: str, send_body: bool) -> None:
        if name not in repo.files:
            self._error(404, "EntryNotFound", f"{name} does not exist", commit=repo.commit)
            return
        data = repo.files[name].read_bytes()
        self.send_response(200)
        self.send_header("X-Repo-Commit", repo.commit)
        if repo.is_lfs(name):
            self.send_header("X-Linked-Etag", f'"{repo.sha256[name]}"')
            self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("ETag", f'"{repo.blob_id[name]}"')
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def _json(self, payload: Any, send_body: bool) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        body = json.dumps({"error": message}).encode("utf-8")
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
