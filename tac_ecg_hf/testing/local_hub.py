"""A small Hugging Face Hub-compatible HTTP server for tests and offline demos.

``huggingface_hub`` (2.x), ``transformers`` and ``peft`` talk to it unchanged once their
endpoint points at it: ``create_repo``, ``repo_info``/``model_info``, ``list_repo_files``/
``list_repo_tree``, ``get_paths_info``, ``upload_file``/``upload_folder``/``create_commit``,
``hf_hub_download``/``snapshot_download``, branches, tags, pull-request refs, commit history,
``whoami``, ``PreTrainedModel.push_to_hub``/``from_pretrained``,
``PeftModel.push_to_hub``/``from_pretrained`` and ``datasets``' ``push_to_hub``/``load_dataset``.

Only the Python standard library is used (``http.server``). Repositories live in a storage
directory (a temporary one by default): content-addressed blobs plus one JSON state file per
repo, so ``--storage DIR`` survives restarts.

Like the Hub, files matching the repo's ``.gitattributes`` LFS patterns (``*.safetensors``,
``*.bin``, ``*.parquet``...) are uploaded through the git-LFS batch API. Xet storage is not
implemented, so clients must run with ``HF_HUB_DISABLE_XET=1`` (the helpers below set it); or
start the server with ``upload_mode="regular"`` to receive every file inline.

Typical use in a test::

    from tac_ecg_hf.testing.local_hub import LocalHubServer, use_endpoint

    with LocalHubServer() as hub, use_endpoint(hub.endpoint):
        model.push_to_hub("me/tiny")
        AutoModel.from_pretrained("me/tiny")

With pytest, prefer :func:`local_hub_env` (patches through ``monkeypatch``, so everything is
undone after the test)::

    def test_push(tmp_path, monkeypatch):
        with LocalHubServer() as hub:
            local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf")
            ...

Why patching is needed: ``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``,
``HF_HUB_DISABLE_XET`` and the cache paths once, at import time, into
``huggingface_hub.constants``; the module-level ``huggingface_hub.hf_api.api`` (behind the
top-level ``create_repo``, ``file_exists``, ``upload_folder`` ... functions) and transformers'
shared ``transformers.utils.hub._hf_api`` copy the endpoint when they are created. Setting the
environment variable after import therefore does nothing; :func:`use_endpoint` and
:func:`local_hub_env` patch every one of these places.

Command line::

    python -m tac_ecg_hf.testing.local_hub --port 0 --storage DIR

prints the endpoint URL on the first line of stdout and serves until interrupted.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import fnmatch
import hashlib
import html
import importlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = [
    "LocalHubServer",
    "HubStorage",
    "use_endpoint",
    "use_offline",
    "local_hub_env",
    "endpoint_patches",
    "free_port",
    "closed_port_endpoint",
    "main",
]

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

REPO_TYPES_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space", "kernels": "kernel"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/", "kernel": "kernels/"}

# Sub-paths of /api/{type}s/{repo_id}/... Used to tell "org/name/action" from "name/action".
_API_ACTIONS = {
    "revision",
    "tree",
    "paths-info",
    "preupload",
    "commit",
    "commits",
    "branch",
    "tag",
    "refs",
    "settings",
    "resolve",
    "discussions",
    "xet-read-token",
    "xet-write-token",
    "lfs-files",
    "treesize",
    "super-squash",
    "compare",
    "parquet",
    "scan",
}

DEFAULT_GITATTRIBUTES = """\
*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.bz2 filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.tar filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
"""

_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"


def _git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob (what the Hub reports as ``oid``/``ETag`` of regular files)."""
    h = hashlib.sha1()
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubError(Exception):
    """An error answered to the client as JSON, with the Hub's ``X-Error-Code`` header."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}


def _repo_not_found(repo_id: str) -> HubError:
    return HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")


def _revision_not_found(revision: str) -> HubError:
    return HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def _entry_not_found(path: str, commit: str | None = None) -> HubError:
    headers = {"X-Repo-Commit": commit} if commit else {}
    return HubError(404, f"Entry not found: {path}", "EntryNotFound", headers)


# --------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------


class _Repo:
    """In-memory state of one repository (persisted as JSON)."""

    def __init__(self, repo_type: str, repo_id: str, private: bool = False):
        self.repo_type = repo_type
        self.repo_id = repo_id
        self.private = private
        self.gated: bool | str = False
        self.created_at = _now_iso()
        self.uid = uuid.uuid4().hex[:24]
        self.branches: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.prs: dict[int, str] = {}
        # commit sha -> {"parents": [...], "tree": {path: entry}, "title", "message", "date", "author"}
        self.commits: dict[str, dict] = {}

    def to_json(self) -> dict:
        return {
            "repo_type": self.repo_type,
            "repo_id": self.repo_id,
            "private": self.private,
            "gated": self.gated,
            "created_at": self.created_at,
            "uid": self.uid,
            "branches": self.branches,
            "tags": self.tags,
            "prs": {str(k): v for k, v in self.prs.items()},
            "commits": self.commits,
        }

    @classmethod
    def from_json(cls, data: dict) -> _Repo:
        repo = cls(data["repo_type"], data["repo_id"], data.get("private", False))
        repo.gated = data.get("gated", False)
        repo.created_at = data.get("created_at", repo.created_at)
        repo.uid = data.get("uid", repo.uid)
        repo.branches = dict(data.get("branches", {}))
        repo.tags = dict(data.get("tags", {}))
        repo.prs = {int(k): v for k, v in data.get("prs", {}).items()}
        repo.commits = dict(data.get("commits", {}))
        return repo

    # -- revisions ---------------------------------------------------------------------
    def resolve(self, revision: str | None) -> str | None:
        """Commit sha for a branch / tag / ``refs/...`` / (abbreviated) commit id, else None."""
        rev = revision or "main"
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        if rev.startswith("refs/heads/"):
            return self.branches.get(rev[len("refs/heads/") :])
        if rev.startswith("refs/tags/"):
            return self.tags.get(rev[len("refs/tags/") :])
        if rev.startswith("refs/pr/"):
            try:
                return self.prs.get(int(rev[len("refs/pr/") :]))
            except ValueError:
                return None
        low = rev.lower()
        if 7 <= len(low) <= 40 and all(c in "0123456789abcdef" for c in low):
            if low in self.commits:
                return low
            matches = [sha for sha in self.commits if sha.startswith(low)]
            if len(matches) == 1:
                return matches[0]
        return None

    def writable_ref(self, revision: str | None) -> tuple[str, Any] | None:
        """(kind, key) of the ref a commit on ``revision`` moves, or None when not a branch/PR."""
        rev = revision or "main"
        if rev.startswith("refs/heads/"):
            rev = rev[len("refs/heads/") :]
        if rev in self.branches:
            return ("branch", rev)
        if rev.startswith("refs/pr/"):
            try:
                num = int(rev[len("refs/pr/") :])
            except ValueError:
                return None
            if num in self.prs:
                return ("pr", num)
        return None

    def head_of(self, ref: tuple[str, Any]) -> str:
        kind, key = ref
        return self.branches[key] if kind == "branch" else self.prs[key]

    def set_ref(self, ref: tuple[str, Any], sha: str) -> None:
        kind, key = ref
        if kind == "branch":
            self.branches[key] = sha
        else:
            self.prs[key] = sha

    def url_path(self) -> str:
        return URL_PREFIX[self.repo_type] + self.repo_id


class HubStorage:
    """Thread-safe repository store: blobs on disk, repo states as JSON files.

    Layout under ``root``::

        objects/<oid[:2]>/<git-sha1>      regular file contents
        lfs/<sha256[:2]>/<sha256>          LFS file contents
        repos/<type>/<org>/<name>.json     repo state (refs + commits + trees)
    """

    def __init__(self, root: str | os.PathLike, *, username: str = "local-user"):
        self.root = Path(root)
        self.username = username
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], _Repo] = {}
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        (self.root / "lfs").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)
        self._load()

    # -- persistence -------------------------------------------------------------------
    def _state_path(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / repo_type / (repo_id + ".json")

    def _load(self) -> None:
        for path in sorted((self.root / "repos").rglob("*.json")):
            try:
                repo = _Repo.from_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError) as exc:  # pragma: no cover - corrupted storage
                logger.warning("Ignoring unreadable repo state %s: %s", path, exc)
                continue
            self.repos[(repo.repo_type, repo.repo_id)] = repo

    def _save(self, repo: _Repo) -> None:
        path = self._state_path(repo.repo_type, repo.repo_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(repo.to_json(), indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    # -- blobs -------------------------------------------------------------------------
    def _object_path(self, oid: str) -> Path:
        return self.root / "objects" / oid[:2] / oid

    def _lfs_path(self, sha256: str) -> Path:
        return self.root / "lfs" / sha256[:2] / sha256

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def put_regular(self, data: bytes) -> dict:
        oid = _git_blob_sha1(data)
        self._write_atomic(self._object_path(oid), data)
        return {"oid": oid, "size": len(data), "lfs": None}

    def put_lfs_object(self, sha256: str, data: bytes) -> None:
        if hashlib.sha256(data).hexdigest() != sha256:
            raise HubError(400, f"Uploaded content does not match LFS oid {sha256}")
        self._write_atomic(self._lfs_path(sha256), data)

    def has_lfs_object(self, sha256: str, size: int | None = None) -> bool:
        path = self._lfs_path(sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def lfs_entry(self, sha256: str, size: int) -> dict:
        pointer = _LFS_POINTER.format(oid=sha256, size=size).encode()
        return {
            "oid": _git_blob_sha1(pointer),
            "size": size,
            "lfs": {"sha256": sha256, "size": size, "pointerSize": len(pointer)},
        }

    def blob_path(self, entry: dict) -> Path:
        if entry.get("lfs"):
            return self._lfs_path(entry["lfs"]["sha256"])
        return self._object_path(entry["oid"])

    # -- repos -------------------------------------------------------------------------
    def get_repo(self, repo_type: str, repo_id: str, *, authorized: bool = True) -> _Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authorized):
            raise _repo_not_found(repo_id)
        return repo

    def create_repo(self, repo_type: str, repo_id: str, *, private: bool = False) -> tuple[_Repo, bool]:
        """Create a repo with an initial commit holding ``.gitattributes``. Returns (repo, created)."""
        with self.lock:
            existing = self.repos.get((repo_type, repo_id))
            if existing is not None:
                return existing, False
            repo = _Repo(repo_type, repo_id, private)
            entry = self.put_regular(DEFAULT_GITATTRIBUTES.encode())
            sha = self._new_commit(repo, None, {".gitattributes": entry}, "initial commit", "")
            repo.branches["main"] = sha
            self.repos[(repo_type, repo_id)] = repo
            self._save(repo)
            return repo, True

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            if self.repos.pop((repo_type, repo_id), None) is None:
                raise _repo_not_found(repo_id)
            with contextlib.suppress(FileNotFoundError):
                self._state_path(repo_type, repo_id).unlink()

    def move_repo(self, repo_type: str, from_id: str, to_id: str) -> None:
        with self.lock:
            repo = self.get_repo(repo_type, from_id)
            if (repo_type, to_id) in self.repos:
                raise HubError(409, f"Repository {to_id} already exists")
            del self.repos[(repo_type, from_id)]
            with contextlib.suppress(FileNotFoundError):
                self._state_path(repo_type, from_id).unlink()
            repo.repo_id = to_id
            self.repos[(repo_type, to_id)] = repo
            self._save(repo)

    def _new_commit(self, repo: _Repo, parent: str | None, tree: dict, title: str, message: str) -> str:
        seed = json.dumps(
            [repo.repo_type, repo.repo_id, parent, sorted((p, e["oid"]) for p, e in tree.items()), title, message,
             time.time_ns(), uuid.uuid4().hex]
        )
        sha = hashlib.sha1(seed.encode()).hexdigest()
        repo.commits[sha] = {
            "parents": [parent] if parent else [],
            "tree": tree,
            "title": title,
            "message": message,
            "date": _now_iso(),
            "author": self.username,
        }
        return sha

    def commit(
        self,
        repo: _Repo,
        revision: str,
        operations: list[tuple[str, dict]],
        *,
        title: str,
        message: str = "",
        parent_commit: str | None = None,
        create_pr: bool = False,
    ) -> tuple[str, int | None]:
        """Apply operations on top of ``revision``; returns (commit sha, PR number or None)."""
        with self.lock:
            pr_num = None
            if create_pr:
                base = repo.resolve(revision)
                if base is None:
                    raise _revision_not_found(revision)
                pr_num = max(repo.prs, default=0) + 1
                repo.prs[pr_num] = base
                ref: tuple[str, Any] = ("pr", pr_num)
            else:
                maybe_ref = repo.writable_ref(revision)
                if maybe_ref is None:
                    if repo.resolve(revision) is not None:
                        raise HubError(400, f"Invalid rev id: {revision} is not a branch")
                    raise _revision_not_found(revision)
                ref = maybe_ref
            head = repo.head_of(ref)
            if parent_commit is not None and repo.resolve(parent_commit) != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            tree = copy.deepcopy(repo.commits[head]["tree"])
            for kind, value in operations:
                path = value["path"].strip("/")
                if kind == "add":
                    tree[path] = value["entry"]
                elif kind == "deletedFile":
                    if path not in tree:
                        raise _entry_not_found(path)
                    del tree[path]
                elif kind == "deletedFolder":
                    victims = [p for p in tree if p == path or p.startswith(path + "/")] if path else list(tree)
                    if not victims:
                        raise _entry_not_found(path)
                    for p in victims:
                        del tree[p]
                else:  # pragma: no cover - guarded by the parser
                    raise HubError(400, f"Unknown operation {kind}")
            sha = self._new_commit(repo, head, tree, title, message)
            repo.set_ref(ref, sha)
            self._save(repo)
            return sha, pr_num

    def create_branch(self, repo: _Repo, branch: str, starting_point: str | None) -> None:
        with self.lock:
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            sha = repo.resolve(starting_point or "main")
            if sha is None:
                raise _revision_not_found(starting_point or "main")
            repo.branches[branch] = sha
            self._save(repo)

    def delete_branch(self, repo: _Repo, branch: str) -> None:
        with self.lock:
            if branch not in repo.branches:
                raise _revision_not_found(branch)
            if branch == "main":
                raise HubError(403, "Cannot delete the default branch")
            del repo.branches[branch]
            self._save(repo)

    def create_tag(self, repo: _Repo, revision: str, tag: str) -> None:
        with self.lock:
            if tag in repo.tags:
                raise HubError(409, f"Reference already exists: refs/tags/{tag}")
            sha = repo.resolve(revision)
            if sha is None:
                raise _revision_not_found(revision)
            repo.tags[tag] = sha
            self._save(repo)

    def delete_tag(self, repo: _Repo, tag: str) -> None:
        with self.lock:
            if tag not in repo.tags:
                raise _revision_not_found(tag)
            del repo.tags[tag]
            self._save(repo)

    def set_private(self, repo: _Repo, private: bool | None = None, gated: Any = None) -> None:
        with self.lock:
            if private is not None:
                repo.private = bool(private)
            if gated is not None:
                repo.gated = gated
            self._save(repo)

    # -- trees -------------------------------------------------------------------------
    @staticmethod
    def _dir_oid(tree: dict, directory: str) -> str:
        prefix = directory + "/" if directory else ""
        items = sorted((p, e["oid"]) for p, e in tree.items() if p.startswith(prefix))
        return hashlib.sha1(json.dumps(items).encode()).hexdigest()

    @staticmethod
    def _directories(tree: dict) -> set[str]:
        dirs: set[str] = set()
        for path in tree:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return dirs

    def _last_commit(self, repo: _Repo, head: str, path: str, is_dir: bool) -> dict:
        """Most recent commit (walking first parents) that changed ``path``."""

        def sig(sha: str) -> Any:
            tree = repo.commits[sha]["tree"]
            if is_dir:
                return self._dir_oid(tree, path) if any(p.startswith(path + "/") for p in tree) else None
            entry = tree.get(path)
            return entry["oid"] if entry else None

        sha = head
        current = sig(sha)
        while True:
            parents = repo.commits[sha]["parents"]
            if not parents or sig(parents[0]) != current:
                info = repo.commits[sha]
                return {"id": sha, "title": info["title"], "date": info["date"]}
            sha = parents[0]

    def tree_entry(self, repo: _Repo, head: str, path: str, *, expand: bool = False) -> dict | None:
        tree = repo.commits[head]["tree"]
        entry = tree.get(path)
        if entry is not None:
            out: dict[str, Any] = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
            if entry.get("lfs"):
                lfs = entry["lfs"]
                out["lfs"] = {"oid": lfs["sha256"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]}
            if expand:
                out["lastCommit"] = self._last_commit(repo, head, path, is_dir=False)
            return out
        if path in self._directories(tree):
            out = {"type": "directory", "oid": self._dir_oid(tree, path), "size": 0, "path": path}
            if expand:
                out["lastCommit"] = self._last_commit(repo, head, path, is_dir=True)
            return out
        return None

    def list_tree(self, repo: _Repo, head: str, path: str, *, recursive: bool, expand: bool) -> list[dict]:
        tree = repo.commits[head]["tree"]
        path = path.strip("/")
        prefix = path + "/" if path else ""
        dirs = self._directories(tree)
        if path and path not in dirs:
            if path in tree:
                entry = self.tree_entry(repo, head, path, expand=expand)
                return [entry] if entry else []
            raise _entry_not_found(path, head)
        names: set[str] = set()
        for p in list(tree) + sorted(dirs):
            if not p.startswith(prefix) or p == path:
                continue
            rest = p[len(prefix) :]
            if recursive or "/" not in rest:
                names.add(p)
        entries = [self.tree_entry(repo, head, p, expand=expand) for p in names]
        # Directories first, then files, each sorted by path (what the Hub does).
        return sorted((e for e in entries if e), key=lambda e: (e["type"] != "directory", e["path"]))


# --------------------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, hub: LocalHubServer):
        self.hub = hub
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    server: _Server

    # -- plumbing ----------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(Exception):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from base class
        if self.server.hub.verbose:
            sys.stderr.write("[local-hub] %s - %s\n" % (self.address_string(), format % args))

    @property
    def hub(self) -> LocalHubServer:
        return self.server.hub

    @property
    def storage(self) -> HubStorage:
        return self.server.hub.storage

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        all_headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        all_headers.update(headers or {})
        for key, value in all_headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.hub._record(self.command, self.path, status)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, err: HubError) -> None:
        headers = dict(err.headers)
        headers["X-Error-Message"] = err.message.encode("ascii", "replace").decode()
        if err.code:
            headers["X-Error-Code"] = err.code
        self._json(err.status, {"error": err.message, **err.extra}, headers)

    @property
    def _authorized(self) -> bool:
        return bool(self.headers.get("Authorization"))

    def _require_write(self) -> None:
        if self.hub.require_token and not self._authorized:
            raise HubError(401, "Invalid credentials in Authorization header")

    # -- dispatch ----------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = b""
        try:
            body = self._read_body()
            split = urlsplit(self.path)
            segs = [s for s in split.path.split("/")]
            segs = segs[1:] if segs and segs[0] == "" else segs
            if segs and segs[-1] == "" and len(segs) > 1:
                segs = segs[:-1]
            query = parse_qs(split.query, keep_blank_values=True)
            self._route(segs, query, body)
        except HubError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError):  # client went away
            self.close_connection = True
        except (ValueError, KeyError, TypeError) as exc:  # malformed request (bad JSON, missing field...)
            with contextlib.suppress(Exception):
                self._error(HubError(400, f"Bad request: {exc!r}"))
        except OSError:  # socket trouble mid-response
            self.close_connection = True
        except Exception as exc:  # pragma: no cover - server bug: surface it loudly
            tb = traceback.format_exc()
            self.hub.errors.append(tb)
            logger.error("Local hub internal error on %s %s:\n%s", self.command, self.path, tb)
            with contextlib.suppress(Exception):
                self._error(HubError(500, f"Internal error in local hub: {exc!r}"))

    def _route(self, segs: list[str], query: dict[str, list[str]], body: bytes) -> None:
        method = self.command
        if not segs or segs == [""]:
            return self._json(200, {"localHub": True, "endpoint": self.hub.endpoint})
        if segs[0] == "api":
            return self._route_api(segs[1:], query, body)
        if segs[0] == "__lfs":
            return self._route_lfs_transfer(segs[1:], body)

        # /{prefix}{repo}/resolve/{rev}/{path}  and  /{prefix}{repo}.git/info/lfs/objects/batch
        repo_type = "model"
        rest = segs
        if segs[0] in ("datasets", "spaces", "kernels") and len(segs) > 1:
            repo_type = REPO_TYPES_PLURAL[segs[0]]
            rest = segs[1:]
        for i, seg in enumerate(rest[:2]):
            if seg.endswith(".git") and rest[i + 1 :] == ["info", "lfs", "objects", "batch"] and method == "POST":
                repo_id = unquote("/".join(rest[: i + 1]))[: -len(".git")]
                return self._lfs_batch(repo_type, repo_id, body)
        for i in (1, 2):
            if len(rest) > i + 1 and rest[i] == "resolve" and method in ("GET", "HEAD"):
                repo_id = unquote("/".join(rest[:i]))
                rev, path_segs = self._split_revision(rest[i + 1 :])
                return self._resolve(repo_type, repo_id, rev, unquote("/".join(path_segs)))
        if method in ("GET", "HEAD") and len(rest) in (1, 2):
            repo = self.storage.get_repo(repo_type, unquote("/".join(rest)), authorized=self._authorized)
            page = f"<html><body>{html.escape(repo.repo_id)}</body></html>".encode()
            return self._send(200, page, content_type="text/html")
        raise HubError(404, f"Not found: {self.path}")

    @staticmethod
    def _split_revision(segs: list[str]) -> tuple[str, list[str]]:
        """First segment(s) are the revision: quoted ('refs%2Fpr%2F1') or raw ('refs/pr/1')."""
        if len(segs) >= 3 and segs[0] == "refs" and segs[1] in ("pr", "heads", "tags", "convert"):
            return unquote("/".join(segs[:3])), segs[3:]
        return unquote(segs[0]), segs[1:]

    # -- /api --------------------------------------------------------------------------
    def _route_api(self, segs: list[str], query: dict[str, list[str]], body: bytes) -> None:
        method = self.command
        if segs == ["whoami-v2"] and method == "GET":
            return self._whoami()
        if segs == ["repos", "create"] and method == "POST":
            return self._create_repo(body)
        if segs == ["repos", "delete"] and method == "DELETE":
            return self._delete_repo(body)
        if segs == ["repos", "move"] and method == "POST":
            return self._move_repo(body)
        if segs == ["validate-yaml"] and method == "POST":
            return self._json(200, {"errors": [], "warnings": []})
        if segs and segs[0] == "telemetry":
            return self._json(200, {})
        if not segs or segs[0] not in REPO_TYPES_PLURAL:
            raise HubError(404, f"Not found: {self.path}")
        repo_type = REPO_TYPES_PLURAL[segs[0]]
        after = segs[1:]
        if not after:
            if method == "GET":
                return self._list_repos(repo_type, query)
            raise HubError(404, f"Not found: {self.path}")
        if len(after) >= 2 and after[1] not in _API_ACTIONS:
            repo_id, rest = unquote(after[0]) + "/" + unquote(after[1]), after[2:]
        else:
            repo_id, rest = unquote(after[0]), after[1:]

        action = rest[0] if rest else None
        args = rest[1:]
        if action is None and method == "GET":
            return self._repo_info(repo_type, repo_id, None, query)
        if action == "revision" and method == "GET" and args:
            rev, _ = self._split_revision(args)
            return self._repo_info(repo_type, repo_id, rev, query)
        if action == "tree" and method == "GET":
            rev, path_segs = self._split_revision(args) if args else ("main", [])
            return self._tree(repo_type, repo_id, rev, unquote("/".join(path_segs)), query)
        if action == "paths-info" and method == "POST" and args:
            rev, _ = self._split_revision(args)
            return self._paths_info(repo_type, repo_id, rev, body)
        if action == "preupload" and method == "POST" and args:
            rev, _ = self._split_revision(args)
            return self._preupload(repo_type, repo_id, rev, query, body)
        if action == "commit" and method == "POST" and args:
            rev, _ = self._split_revision(args)
            return self._commit(repo_type, repo_id, rev, query, body)
        if action == "commits" and method == "GET":
            rev, _ = self._split_revision(args) if args else ("main", [])
            return self._list_commits(repo_type, repo_id, rev)
        if action == "refs" and method == "GET":
            return self._refs(repo_type, repo_id, query)
        if action == "branch" and args and method in ("POST", "DELETE"):
            return self._branch(repo_type, repo_id, unquote("/".join(args)), body)
        if action == "tag" and args and method in ("POST", "DELETE"):
            return self._tag(repo_type, repo_id, unquote("/".join(args)), body)
        if action == "settings" and method == "PUT":
            return self._settings(repo_type, repo_id, body)
        if action in ("xet-read-token", "xet-write-token"):
            raise HubError(501, "The local hub does not implement Xet storage: set HF_HUB_DISABLE_XET=1 "
                                "(use_endpoint()/local_hub_env() do) so LFS uploads use the LFS batch API.")
        if action == "resolve" and method in ("GET", "HEAD") and len(args) >= 2:
            rev, path_segs = self._split_revision(args)
            return self._resolve(repo_type, repo_id, rev, unquote("/".join(path_segs)))
        raise HubError(404, f"Not found: {self.path}")

    def _whoami(self) -> None:
        if not self._authorized:
            raise HubError(401, "Invalid credentials in Authorization header")
        self._json(200, {
            "type": "user",
            "id": "local" + "0" * 19,
            "name": self.hub.username,
            "fullname": "Local Hub User",
            "email": None,
            "emailVerified": True,
            "isPro": False,
            "canPay": False,
            "avatarUrl": "",
            "orgs": [],
            "auth": {"type": "access_token",
                     "accessToken": {"displayName": "local-hub", "role": "write", "createdAt": _now_iso()}},
        })

    def _repo_url(self, repo: _Repo) -> str:
        return f"{self.hub.endpoint}/{repo.url_path()}"

    def _create_repo(self, body: bytes) -> None:
        self._require_write()
        payload = json.loads(body or b"{}")
        name = payload.get("name")
        if not name:
            raise HubError(400, "Missing repo name")
        organization = payload.get("organization") or self.hub.username
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type {repo_type}")
        private = payload.get("private")
        if private is None:
            private = payload.get("visibility") == "private"
        repo_id = f"{organization}/{name}"
        repo, created = self.storage.create_repo(repo_type, repo_id, private=bool(private))
        if not created:
            # The Hub answers 409 with the repo url; `create_repo(exist_ok=True)` reads it.
            raise HubError(409, f"You already created this {repo_type} repo",
                           extra={"url": self._repo_url(repo), "name": repo_id, "id": repo.uid})
        self._json(200, {"url": self._repo_url(repo), "name": repo_id, "id": repo.uid})

    def _delete_repo(self, body: bytes) -> None:
        self._require_write()
        payload = json.loads(body or b"{}")
        organization = payload.get("organization") or self.hub.username
        repo_id = f"{organization}/{payload['name']}"
        self.storage.delete_repo(payload.get("type") or "model", repo_id)
        self._json(200, {})

    def _move_repo(self, body: bytes) -> None:
        self._require_write()
        payload = json.loads(body or b"{}")
        self.storage.move_repo(payload.get("type") or "model", payload["fromRepo"], payload["toRepo"])
        self._json(200, {})

    def _list_repos(self, repo_type: str, query: dict[str, list[str]]) -> None:
        author = (query.get("author") or [None])[0]
        search = (query.get("search") or [None])[0]
        out = []
        for (rtype, repo_id), repo in sorted(self.storage.repos.items()):
            if rtype != repo_type or (repo.private and not self._authorized):
                continue
            if author and not repo_id.startswith(author + "/"):
                continue
            if search and search.lower() not in repo_id.lower():
                continue
            out.append({"_id": repo.uid, "id": repo_id, "private": repo.private, "sha": repo.branches.get("main"),
                        "tags": [], "downloads": 0, "likes": 0, "createdAt": repo.created_at})
        self._json(200, out)

    def _repo_and_head(self, repo_type: str, repo_id: str, revision: str | None) -> tuple[_Repo, str]:
        repo = self.storage.get_repo(repo_type, repo_id, authorized=self._authorized)
        head = repo.resolve(revision)
        if head is None:
            raise _revision_not_found(revision or "main")
        return repo, head

    def _repo_info(self, repo_type: str, repo_id: str, revision: str | None, query: dict[str, list[str]]) -> None:
        with self.storage.lock:
            repo, head = self._repo_and_head(repo_type, repo_id, revision)
            blobs = (query.get("blobs") or ["false"])[0].lower() in ("1", "true")
            commit = repo.commits[head]
            siblings = []
            for path in sorted(commit["tree"]):
                entry = commit["tree"][path]
                sib: dict[str, Any] = {"rfilename": path}
                if blobs:
                    sib["size"] = entry["size"]
                    sib["blobId"] = entry["oid"]
                    if entry.get("lfs"):
                        sib["lfs"] = dict(entry["lfs"])
                siblings.append(sib)
            author = repo_id.split("/")[0] if "/" in repo_id else None
            info: dict[str, Any] = {
                "_id": repo.uid,
                "id": repo_id,
                "author": author,
                "sha": head,
                "lastModified": commit["date"],
                "createdAt": repo.created_at,
                "private": repo.private,
                "gated": repo.gated,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(e["size"] for e in commit["tree"].values()),
            }
            if repo_type == "model":
                info["modelId"] = repo_id
            if repo_type == "space":
                info["sdk"] = "static"
        self._json(200, info)

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str, query: dict[str, list[str]]) -> None:
        recursive = (query.get("recursive") or ["false"])[0].lower() in ("1", "true")
        expand = (query.get("expand") or ["false"])[0].lower() in ("1", "true")
        with self.storage.lock:
            repo, head = self._repo_and_head(repo_type, repo_id, revision)
            entries = self.storage.list_tree(repo, head, path, recursive=recursive, expand=expand)
        self._json(200, entries)

    def _paths_info(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> None:
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            payload = json.loads(body or b"{}")
            paths = payload.get("paths") or []
            expand = bool(payload.get("expand"))
        else:
            form = parse_qs(body.decode(), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = (form.get("expand") or ["False"])[0].lower() in ("1", "true")
        with self.storage.lock:
            repo, head = self._repo_and_head(repo_type, repo_id, revision)
            out = []
            for path in paths:
                entry = self.storage.tree_entry(repo, head, path.strip("/"), expand=expand)
                if entry is not None:
                    out.append(entry)
        self._json(200, out)

    def _preupload(self, repo_type: str, repo_id: str, revision: str, query: dict[str, list[str]],
                   body: bytes) -> None:
        payload = json.loads(body or b"{}")
        with self.storage.lock:
            repo, head = self._repo_and_head(repo_type, repo_id, revision)
            tree = repo.commits[head]["tree"]
        ignore_patterns = []
        gitignore = payload.get("gitIgnore")
        if gitignore is None and ".gitignore" in tree:
            gitignore = self.storage.blob_path(tree[".gitignore"]).read_text(errors="replace")
        if gitignore:
            for line in gitignore.splitlines():
                line = line.strip()
                if line and not line.startswith("#") and not line.startswith("!"):
                    ignore_patterns.append(line.lstrip("/"))
        lfs_patterns: list[str] = []
        if ".gitattributes" in tree:
            attributes = self.storage.blob_path(tree[".gitattributes"]).read_text(errors="replace")
            for line in attributes.splitlines():
                parts = line.split()
                if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
                    lfs_patterns.append(parts[0].lstrip("/"))
        files = []
        for item in payload.get("files", []):
            path = item["path"]
            size = int(item.get("size") or 0)
            mode = self.hub._upload_mode(path, size, lfs_patterns)
            existing = tree.get(path)
            oid = None
            if existing is not None:
                if mode == "regular" and not existing.get("lfs"):
                    oid = existing["oid"]
                elif mode == "lfs" and existing.get("lfs"):
                    oid = existing["lfs"]["sha256"]
            should_ignore = any(
                fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path.rsplit("/", 1)[-1], pat)
                or path.startswith(pat.rstrip("/") + "/")
                for pat in ignore_patterns
            )
            files.append({"path": path, "uploadMode": mode, "shouldIgnore": should_ignore, "oid": oid})
        self._json(200, {"files": files, "commitOid": head})

    def _commit(self, repo_type: str, repo_id: str, revision: str, query: dict[str, list[str]],
                body: bytes) -> None:
        self._require_write()
        create_pr = (query.get("create_pr") or ["0"])[0] in ("1", "true", "True")
        title, description, parent_commit = "", "", None
        operations: list[tuple[str, dict]] = []
        repo = self.storage.get_repo(repo_type, repo_id, authorized=self._authorized)
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                title = value.get("summary", "")
                description = value.get("description", "")
                parent_commit = value.get("parentCommit")
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')}")
                data = base64.b64decode(value.get("content", ""))
                operations.append(("add", {"path": value["path"], "entry": self.storage.put_regular(data)}))
            elif key == "lfsFile":
                oid = value.get("oid")
                if value.get("algo", "sha256") != "sha256" or not oid:
                    raise HubError(400, "lfsFile requires a sha256 oid")
                size = value.get("size")
                if not self.storage.has_lfs_object(oid):
                    raise HubError(422, f"LFS object {oid} for {value.get('path')} was not uploaded")
                if size is None:
                    size = self.storage._lfs_path(oid).stat().st_size
                operations.append(("add", {"path": value["path"], "entry": self.storage.lfs_entry(oid, int(size))}))
            elif key in ("deletedFile", "deletedFolder"):
                operations.append((key, {"path": value["path"]}))
            else:
                raise HubError(400, f"Unknown commit operation key: {key}")
        sha, pr_num = self.storage.commit(
            repo, revision, operations, title=title or "Upload files", message=description,
            parent_commit=parent_commit, create_pr=create_pr,
        )
        base = self._repo_url(repo)
        self._json(200, {
            "success": True,
            "commitOid": sha,
            "commitUrl": f"{base}/commit/{sha}",
            "commitMessage": title,
            "hookOutput": "",
            "pullRequestUrl": f"{base}/discussions/{pr_num}" if pr_num is not None else None,
        })

    def _list_commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        with self.storage.lock:
            repo, head = self._repo_and_head(repo_type, repo_id, revision)
            out = []
            sha: str | None = head
            while sha:
                info = repo.commits[sha]
                out.append({
                    "id": sha,
                    "title": info["title"],
                    "message": info["message"],
                    "date": info["date"],
                    "authors": [{"user": info.get("author", self.hub.username)}],
                })
                sha = info["parents"][0] if info["parents"] else None
        self._json(200, out)

    def _refs(self, repo_type: str, repo_id: str, query: dict[str, list[str]]) -> None:
        repo = self.storage.get_repo(repo_type, repo_id, authorized=self._authorized)
        with self.storage.lock:
            data: dict[str, Any] = {
                "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s}
                             for n, s in sorted(repo.branches.items())],
                "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in sorted(repo.tags.items())],
                "converts": [],
            }
            if query.get("include_prs"):
                data["pullRequests"] = [{"name": str(n), "ref": f"refs/pr/{n}", "targetCommit": s}
                                        for n, s in sorted(repo.prs.items())]
        self._json(200, data)

    def _branch(self, repo_type: str, repo_id: str, branch: str, body: bytes) -> None:
        self._require_write()
        repo = self.storage.get_repo(repo_type, repo_id, authorized=self._authorized)
        if self.command == "DELETE":
            self.storage.delete_branch(repo, branch)
        else:
            payload = json.loads(body or b"{}")
            self.storage.create_branch(repo, branch, payload.get("startingPoint"))
        self._json(200, {})

    def _tag(self, repo_type: str, repo_id: str, arg: str, body: bytes) -> None:
        self._require_write()
        repo = self.storage.get_repo(repo_type, repo_id, authorized=self._authorized)
        if self.command == "DELETE":
            self.storage.delete_tag(repo, arg)
        else:
            payload = json.loads(body or b"{}")
            if not payload.get("tag"):
                raise HubError(400, "Missing tag name")
            self.storage.create_tag(repo, arg, payload["tag"])
        self._json(200, {})

    def _settings(self, repo_type: str, repo_id: str, body: bytes) -> None:
        self._require_write()
        repo = self.storage.get_repo(repo_type, repo_id, authorized=self._authorized)
        payload = json.loads(body or b"{}")
        private = payload.get("private")
        if private is None and "visibility" in payload:
            private = payload["visibility"] == "private"
        self.storage.set_private(repo, private, payload.get("gated"))
        self._json(200, {})

    # -- files -------------------------------------------------------------------------
    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        with self.storage.lock:
            repo, head = self._repo_and_head(repo_type, repo_id, revision)
            entry = repo.commits[head]["tree"].get(path)
            if entry is None:
                raise _entry_not_found(path, head)
            blob = self.storage.blob_path(entry)
        size = entry["size"]
        lfs = entry.get("lfs")
        etag = lfs["sha256"] if lfs else entry["oid"]
        headers = {
            "ETag": f'"{etag}"',
            "X-Repo-Commit": head,
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
        }
        if lfs:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(size)
        start, end, status = 0, size - 1, 200
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes=") and size > 0:
            first = range_header[len("bytes="):].split(",")[0].strip()
            lo, _, hi = first.partition("-")
            try:
                if lo == "":
                    start = max(0, size - int(hi))
                else:
                    start = int(lo)
                    end = min(int(hi), size - 1) if hi else size - 1
            except ValueError:
                start, end = 0, size - 1
            if start >= size or start > end:
                return self._send(416, b"", {"Content-Range": f"bytes */{size}", **headers},
                                  content_type="application/octet-stream")
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and length:
            with open(blob, "rb") as fh:
                fh.seek(start)
                remaining = length
                while remaining > 0:
                    chunk = fh.read(min(1 << 20, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
        self.hub._record(self.command, self.path, status)

    # -- LFS ---------------------------------------------------------------------------
    def _lfs_batch(self, repo_type: str, repo_id: str, body: bytes) -> None:
        self._require_write()
        self.storage.get_repo(repo_type, repo_id, authorized=self._authorized)
        payload = json.loads(body or b"{}")
        if payload.get("operation", "upload") != "upload":
            raise HubError(400, "Only the LFS 'upload' operation is supported by the local hub")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            out: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not self.storage.has_lfs_object(oid, size):
                out["actions"] = {
                    "upload": {"href": f"{self.hub.endpoint}/__lfs/upload/{oid}"},
                    "verify": {"href": f"{self.hub.endpoint}/__lfs/verify/{oid}"},
                }
            objects.append(out)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def _route_lfs_transfer(self, segs: list[str], body: bytes) -> None:
        if len(segs) == 2 and segs[0] == "upload" and self.command == "PUT":
            self.storage.put_lfs_object(segs[1], body)
            return self._json(200, {})
        if len(segs) == 2 and segs[0] == "verify" and self.command == "POST":
            payload = json.loads(body or b"{}")
            if not self.storage.has_lfs_object(segs[1], payload.get("size")):
                raise HubError(404, f"LFS object {segs[1]} not found")
            return self._json(200, {})
        raise HubError(404, f"Not found: {self.path}")


# --------------------------------------------------------------------------------------
# Public server object
# --------------------------------------------------------------------------------------


class LocalHubServer:
    """Hub-compatible HTTP server on ``127.0.0.1`` (a free port by default), in a background thread.

    Args:
        storage_dir: where blobs and repo states are stored. Default: a fresh temporary directory,
            deleted by :meth:`stop` (unless ``keep_storage=True``).
        host, port: bind address; ``port=0`` picks a free port.
        username: namespace used when a repo id has no ``org/`` part, and returned by ``whoami``.
        upload_mode: what the ``preupload`` endpoint answers for each file:

            * ``"auto"`` (default, like the Hub): ``"lfs"`` for files matching a ``filter=lfs`` pattern of
              the repo's ``.gitattributes`` (new repos get the Hub's defaults: ``*.safetensors``,
              ``*.bin``, ``*.parquet``, ``*.pt``, ...) or of at least ``lfs_threshold`` bytes;
              ``"regular"`` otherwise.
            * ``"regular"``: every file is sent inline (base64) in the commit payload. Works even when
              the client has Xet enabled, but ``datasets.Dataset.push_to_hub`` needs LFS (it deletes its
              temporary parquet shards after the pre-upload).
            * ``"lfs"``: every non-empty file goes through the LFS batch API.

            LFS uploads use the (implemented) git-LFS batch API, so the client must run with
            ``HF_HUB_DISABLE_XET=1`` -- :func:`use_endpoint` / :func:`local_hub_env` set it. With Xet
            enabled the client asks for a Xet token, which the server refuses (HTTP 501, saying so).
        lfs_threshold: size (bytes) from which ``"auto"`` picks LFS; default 10 MiB.
        require_token: reject write calls that carry no ``Authorization`` header (any token is
            accepted). Private repos are always hidden (404) from requests without a token.
        verbose: log every request to stderr.

    Attributes: ``endpoint``/``url`` (``http://127.0.0.1:PORT``), ``port``, ``storage_dir``,
    ``storage`` (:class:`HubStorage`), ``requests`` (list of ``(method, path, status)``) and
    ``errors`` (tracebacks of internal server errors, should stay empty).
    """

    def __init__(
        self,
        storage_dir: str | os.PathLike | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "local-user",
        upload_mode: str = "auto",
        lfs_threshold: int | None = None,
        require_token: bool = False,
        verbose: bool = False,
        keep_storage: bool | None = None,
    ):
        self._owns_storage = storage_dir is None
        self.storage_dir = Path(storage_dir) if storage_dir is not None else Path(tempfile.mkdtemp(prefix="local-hub-"))
        self.keep_storage = (not self._owns_storage) if keep_storage is None else keep_storage
        self.host = host
        self._requested_port = port
        self.username = username
        if upload_mode not in ("auto", "regular", "lfs"):
            raise ValueError(f"upload_mode must be 'auto', 'regular' or 'lfs', got {upload_mode!r}")
        self.upload_mode = upload_mode
        self.lfs_threshold = 10 * 1024 * 1024 if lfs_threshold is None else int(lfs_threshold)
        self.require_token = require_token
        self.verbose = verbose
        self.storage = HubStorage(self.storage_dir, username=username)
        self.requests: list[tuple[str, str, int]] = []
        self.errors: list[str] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> LocalHubServer:
        if self._httpd is not None:
            return self
        self._httpd = _Server((self.host, self._requested_port), _Handler, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"local-hub-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            with httpd.connections_lock:
                conns = list(httpd.connections)
            for conn in conns:  # close idle keep-alive connections so client pools notice
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if not self.keep_storage and self._owns_storage:
            shutil.rmtree(self.storage_dir, ignore_errors=True)

    close = stop

    def __enter__(self) -> LocalHubServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LocalHubServer is not started")
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    url = endpoint

    def _upload_mode(self, path: str, size: int, lfs_patterns: list[str]) -> str:
        if size == 0 or self.upload_mode == "regular":
            return "regular"
        if self.upload_mode == "lfs" or size >= self.lfs_threshold:
            return "lfs"
        name = path.rsplit("/", 1)[-1]
        for pattern in lfs_patterns:
            target = path if "/" in pattern.rstrip("/") else name
            if fnmatch.fnmatch(target, pattern) or fnmatch.fnmatch(path, pattern):
                return "lfs"
        return "regular"

    def _record(self, method: str, path: str, status: int) -> None:
        self.requests.append((method, path, status))

    # -- server-side helpers (no HTTP) -------------------------------------------------
    def create_repo(self, repo_id: str, *, repo_type: str = "model", private: bool = False) -> str:
        if "/" not in repo_id:
            repo_id = f"{self.username}/{repo_id}"
        self.storage.create_repo(repo_type, repo_id, private=private)
        return repo_id

    def list_files(self, repo_id: str, revision: str = "main", *, repo_type: str = "model") -> list[str]:
        repo = self.storage.get_repo(repo_type, repo_id)
        head = repo.resolve(revision)
        if head is None:
            raise KeyError(revision)
        return sorted(repo.commits[head]["tree"])

    def commit_ids(self, repo_id: str, revision: str = "main", *, repo_type: str = "model") -> list[str]:
        """Commit history of ``revision``, newest first."""
        repo = self.storage.get_repo(repo_type, repo_id)
        sha = repo.resolve(revision)
        out = []
        while sha:
            out.append(sha)
            parents = repo.commits[sha]["parents"]
            sha = parents[0] if parents else None
        return out

    def __repr__(self) -> str:
        where = self.endpoint if self.running else "stopped"
        return f"LocalHubServer({where}, storage_dir={str(self.storage_dir)!r})"


# --------------------------------------------------------------------------------------
# Pointing huggingface_hub / transformers / peft / datasets at an endpoint
# --------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def closed_port_endpoint(host: str = "127.0.0.1") -> str:
    """An ``http://`` endpoint nobody listens on (connections are refused immediately)."""
    return f"http://{host}:{free_port(host)}"


def _origin(url: str) -> tuple[str, str, int]:
    parsed = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return (parsed.scheme, (parsed.hostname or "").lower(), parsed.port or default)


def endpoint_patches(endpoint: str, *, disable_xet: bool = True) -> list[tuple[Any, str, Any]]:
    """``(object, attribute, new_value)`` triples that re-point the HF stack at ``endpoint``.

    Covers ``huggingface_hub.constants`` (``ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE``,
    ``HF_URL_HOSTS``, ``HF_HUB_DISABLE_XET``), the redirect allow-list in
    ``huggingface_hub.utils._http``, the endpoint of the module-level ``HfApi`` instance
    (``huggingface_hub.hf_api.api``) and of transformers' shared ``HfApi`` (when created), and
    ``datasets.config`` / ``evaluate.config`` when those are imported.
    """
    import huggingface_hub.constants as hf_constants
    import huggingface_hub.hf_api as hf_api_module
    import huggingface_hub.utils._http as hf_http

    endpoint = endpoint.rstrip("/")
    host = (urlsplit(endpoint).hostname or "").lower()
    patches: list[tuple[Any, str, Any]] = [
        (hf_constants, "ENDPOINT", endpoint),
        (hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}"),
        (hf_constants, "HF_URL_HOSTS", frozenset(set(hf_constants.HF_URL_HOSTS) | ({host} if host else set()))),
        (hf_api_module.api, "endpoint", endpoint),
    ]
    if hasattr(hf_http, "_HUB_ORIGINS"):
        patches.append((hf_http, "_HUB_ORIGINS", frozenset(set(hf_http._HUB_ORIGINS) | {_origin(endpoint)})))
    if disable_xet:
        patches.append((hf_constants, "HF_HUB_DISABLE_XET", True))
    # transformers routes push_to_hub/create_repo through a lazily created shared HfApi that copies the
    # endpoint when created: patch its endpoint, or (not created yet) reset the slot so that an instance
    # created while patched is dropped again on restore. Imported here so that it cannot be created later.
    tf_hub = sys.modules.get("transformers.utils.hub")
    if tf_hub is None and importlib.util.find_spec("transformers") is not None:
        with contextlib.suppress(Exception):
            tf_hub = importlib.import_module("transformers.utils.hub")
    if tf_hub is not None and hasattr(tf_hub, "_hf_api"):
        if tf_hub._hf_api is not None:
            patches.append((tf_hub._hf_api, "endpoint", endpoint))
        else:
            patches.append((tf_hub, "_hf_api", None))
    ds_config = sys.modules.get("datasets.config")
    if ds_config is not None and hasattr(ds_config, "HF_ENDPOINT"):
        patches.append((ds_config, "HF_ENDPOINT", endpoint))
        patches.append((ds_config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"))
    ev_config = sys.modules.get("evaluate.config")
    if ev_config is not None and hasattr(ev_config, "HF_ENDPOINT"):
        patches.append((ev_config, "HF_ENDPOINT", endpoint))
        patches.append((ev_config, "HF_LIST_ENDPOINT", endpoint + "/api/spaces?filter={type}"))
        patches.append((ev_config, "HUB_EVALUATE_URL", endpoint + "/spaces/{path}/resolve/{revision}/{name}"))
    return patches


def _cache_patches(cache_dir: str | os.PathLike) -> tuple[list[tuple[Any, str, Any]], dict[str, str]]:
    import huggingface_hub.constants as hf_constants

    home = Path(cache_dir)
    hub_cache = str(home / "hub")
    patches = [
        (hf_constants, "HF_HOME", str(home)),
        (hf_constants, "HF_HUB_CACHE", hub_cache),
        (hf_constants, "HUGGINGFACE_HUB_CACHE", hub_cache),
        (hf_constants, "HF_ASSETS_CACHE", str(home / "assets")),
        (hf_constants, "HF_XET_CACHE", str(home / "xet")),
        (hf_constants, "HF_TOKEN_PATH", str(home / "token")),
        (hf_constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens")),
    ]
    # Small state files huggingface_hub may write next to the cache (paths computed at import).
    for name, filename in (
        ("AGENT_HARNESSES_PATH", ".agent_harnesses.json"),
        ("CHECK_FOR_UPDATE_DONE_PATH", ".check_for_update_done"),
        ("CHECK_FOR_SKILL_UPDATE_DONE_PATH", ".check_for_skill_update_done"),
    ):
        if hasattr(hf_constants, name):
            patches.append((hf_constants, name, str(home / filename)))
    # datasets / evaluate copy their cache paths from HF_HOME at import time too.
    ds_config = sys.modules.get("datasets.config")
    if ds_config is not None:
        datasets_cache = home / "datasets"
        for name, value in (
            ("HF_CACHE_HOME", str(home)),
            ("HF_DATASETS_CACHE", datasets_cache),
            ("DOWNLOADED_DATASETS_PATH", datasets_cache / "downloads"),
            ("EXTRACTED_DATASETS_PATH", datasets_cache / "downloads" / "extracted"),
        ):
            if hasattr(ds_config, name):
                patches.append((ds_config, name, value))
    ev_config = sys.modules.get("evaluate.config")
    if ev_config is not None:
        for name, value in (
            ("HF_CACHE_HOME", str(home)),
            ("HF_EVALUATE_CACHE", home / "evaluate"),
            ("HF_METRICS_CACHE", home / "metrics"),
        ):
            if hasattr(ev_config, name):
                patches.append((ev_config, name, value))
    env = {"HF_HOME": str(home), "HF_HUB_CACHE": hub_cache}
    return patches, env


def _offline_patches(offline: bool) -> tuple[list[tuple[Any, str, Any]], dict[str, str]]:
    import huggingface_hub.constants as hf_constants

    patches: list[tuple[Any, str, Any]] = [(hf_constants, "HF_HUB_OFFLINE", bool(offline))]
    ds_config = sys.modules.get("datasets.config")
    if ds_config is not None:  # datasets copies the flag at import
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
            if hasattr(ds_config, name):
                patches.append((ds_config, name, bool(offline)))
    # peft reads os.environ["HF_HUB_OFFLINE"] directly (peft.utils.other.check_file_exists_on_hf_hub).
    return patches, {"HF_HUB_OFFLINE": "1" if offline else "0"}


@contextlib.contextmanager
def _applied(patches: list[tuple[Any, str, Any]], env: dict[str, str]) -> Iterator[None]:
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    saved_env = {key: os.environ.get(key) for key in env}
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        os.environ.update(env)
        yield
    finally:
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def use_endpoint(
    endpoint: str | LocalHubServer,
    *,
    disable_xet: bool = True,
    cache_dir: str | os.PathLike | None = None,
    token: str | None = None,
) -> Iterator[str]:
    """Point ``huggingface_hub`` (and transformers, peft, datasets, evaluate) at ``endpoint``.

    Works after those libraries were imported (see :func:`endpoint_patches`), sets
    ``HF_ENDPOINT``/``HF_HUB_DISABLE_XET`` in ``os.environ`` for subprocesses, and restores
    everything on exit. Optionally also switches the cache (``cache_dir`` becomes ``HF_HOME``;
    the hub cache is ``cache_dir/hub``) and sets ``HF_TOKEN``. Yields the endpoint URL.
    """
    url = endpoint.endpoint if isinstance(endpoint, LocalHubServer) else str(endpoint).rstrip("/")
    patches = endpoint_patches(url, disable_xet=disable_xet)
    env = {"HF_ENDPOINT": url}
    if disable_xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    if cache_dir is not None:
        cache_p, cache_env = _cache_patches(cache_dir)
        patches += cache_p
        env.update(cache_env)
    if token is not None:
        env["HF_TOKEN"] = token
    with _applied(patches, env):
        yield url


@contextlib.contextmanager
def use_offline(offline: bool = True) -> Iterator[None]:
    """Toggle Hub offline mode at runtime (``constants.HF_HUB_OFFLINE`` + the env var peft reads)."""
    patches, env = _offline_patches(offline)
    with _applied(patches, env):
        yield


def local_hub_env(
    monkeypatch: Any,
    hub: LocalHubServer | str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    token: str | None = "hf_local_hub_test_token",
    offline: bool | None = None,
    disable_xet: bool = True,
) -> str | None:
    """pytest helper: route the HF stack to ``hub`` for the current test, through ``monkeypatch``.

    * ``hub``: a :class:`LocalHubServer` or an endpoint URL (``None``: leave the endpoint alone,
      e.g. to only isolate the cache / switch offline mode).
    * ``cache_dir``: isolated ``HF_HOME`` (hub cache in ``cache_dir/hub``, token file in
      ``cache_dir/token``), so the user's real cache and token are never touched. Strongly
      recommended in tests.
    * ``token``: put into ``HF_TOKEN`` (any value is accepted by the local hub); ``None`` unsets it.
    * ``offline``: set ``HF_HUB_OFFLINE`` (env *and* ``huggingface_hub.constants``).

    Everything is undone by pytest at the end of the test. Returns the endpoint URL (or None).

    Example::

        def test_roundtrip(tmp_path, monkeypatch):
            with LocalHubServer() as hub:
                local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf")
                model.push_to_hub("me/tiny")
                assert AutoModel.from_pretrained("me/tiny")
    """
    url = None
    patches: list[tuple[Any, str, Any]] = []
    env: dict[str, str] = {}
    if hub is not None:
        url = hub.endpoint if isinstance(hub, LocalHubServer) else str(hub).rstrip("/")
        patches += endpoint_patches(url, disable_xet=disable_xet)
        env["HF_ENDPOINT"] = url
        if disable_xet:
            env["HF_HUB_DISABLE_XET"] = "1"
    if cache_dir is not None:
        cache_p, cache_env = _cache_patches(cache_dir)
        patches += cache_p
        env.update(cache_env)
    if offline is not None:
        off_p, off_env = _offline_patches(offline)
        patches += off_p
        env.update(off_env)
    for obj, name, value in patches:
        monkeypatch.setattr(obj, name, value)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    return url


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tac_ecg_hf.testing.local_hub",
        description="Serve a minimal Hugging Face Hub-compatible endpoint on 127.0.0.1.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--storage", default=None, help="storage directory (kept); default: temporary (deleted)")
    parser.add_argument("--username", default="local-user")
    parser.add_argument("--upload-mode", choices=("auto", "regular", "lfs"), default="auto",
                        help="preupload answer: auto (Hub-like: .gitattributes LFS patterns or large files "
                             "go through LFS; clients need HF_HUB_DISABLE_XET=1), regular (all inline), lfs")
    parser.add_argument("--lfs-threshold", type=int, default=None,
                        help="size in bytes from which 'auto' uses LFS (default 10 MiB)")
    parser.add_argument("--require-token", action="store_true")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)

    server = LocalHubServer(args.storage, host=args.host, port=args.port, username=args.username,
                            upload_mode=args.upload_mode, lfs_threshold=args.lfs_threshold, require_token=args.require_token,
                            verbose=args.verbose).start()
    print(server.endpoint, flush=True)
    print(
        f"Local hub serving {server.storage_dir}\n"
        f"  export HF_ENDPOINT={server.endpoint} HF_HUB_DISABLE_XET=1 HF_TOKEN=anything\n"
        "Press Ctrl-C to stop.",
        file=sys.stderr,
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
