"""A minimal Hugging Face Hub-compatible HTTP server for the tests: in memory, on 127.0.0.1.

It implements what ``huggingface_hub`` 2.4 calls for ``create_repo``, ``repo_info``/``model_info``,
``list_repo_files``/``list_repo_tree``, ``upload_file``/``upload_folder``/``create_commit`` (inline files and the
git-LFS batch API; clients must run with ``HF_HUB_DISABLE_XET=1``, which :func:`local_hub_env` sets) and
``hf_hub_download``/``snapshot_download``, and so ``push_to_hub``/``from_pretrained`` of transformers and PEFT.
Revisions are ``main`` or a commit id. Errors carry the Hub's ``X-Error-Code`` header, so clients raise their typed
exceptions: ``RepositoryNotFoundError``, ``RevisionNotFoundError``, ``RemoteEntryNotFoundError``, and a 401 for
writes without a token when ``require_token=True``. Nothing else of the Hub (branches, tags, PRs, private or gated
repos, datasets, Xet) is there.

    with LocalHubServer() as hub:
        local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home")
        model.push_to_hub("me/tiny")
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import traceback
import uuid
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["LocalHubServer", "closed_port_endpoint", "local_hub_env"]

# What the Hub's default .gitattributes sends through LFS (the subset the tests' files use).
LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.npz", "*.npy", "*.parquet", "*.zip", "*.gz")


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def _repo_not_found(repo_id: str) -> HubError:
    return HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")


class _Repo:
    """Commits of one repo: ``commits[sha] = {path: entry}``; ``main`` is the only branch."""

    def __init__(self) -> None:
        self.commits: dict[str, dict[str, dict]] = {}
        self.parents: dict[str, str | None] = {}
        self.main: str | None = None

    def resolve(self, revision: str | None) -> str:
        rev = unquote(revision or "main")
        if rev in ("main", "refs/heads/main") and self.main:
            return self.main
        if rev in self.commits:
            return rev
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def commit(self, tree: dict[str, dict]) -> str:
        sha = hashlib.sha1(uuid.uuid4().bytes).hexdigest()
        self.commits[sha], self.parents[sha], self.main = tree, self.main, sha
        return sha


class LocalHubServer:
    """The server, in a background thread; ``endpoint`` is ``http://127.0.0.1:PORT``.

    Attributes: ``requests`` (``(method, path, status)`` of every request), ``errors`` (tracebacks of server bugs:
    tests assert it stays empty), ``require_token``.
    """

    def __init__(self, *, require_token: bool = False):
        self.require_token = require_token
        self.repos: dict[str, _Repo] = {}
        self.blobs: dict[str, bytes] = {}  # git sha1 (regular files) or sha256 (LFS files) -> content
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str, int]] = []
        self.errors: list[str] = []
        self._httpd: ThreadingHTTPServer | None = None

    def __enter__(self) -> LocalHubServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def endpoint(self) -> str:
        assert self._httpd is not None, "use LocalHubServer() as a context manager"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def list_files(self, repo_id: str, revision: str = "main") -> list[str]:
        repo = self.repos[repo_id]
        return sorted(repo.commits[repo.resolve(revision)])

    def head(self, repo_id: str) -> str:
        return self.repos[repo_id].resolve("main")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def hub(self) -> LocalHubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    do_GET = do_HEAD = do_POST = do_PUT = lambda self: self._dispatch()  # noqa: E731

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        segs = [s for s in url.path.split("/") if s]
        try:
            self._route(segs, parse_qs(url.query), body)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send(err.status, json.dumps({"error": err.message}).encode(), headers)
        except Exception as exc:  # a bug in this server: record it, answer 500
            self.hub.errors.append(traceback.format_exc())
            self._send(500, json.dumps({"error": repr(exc)}).encode())

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, ctype="application/json") -> None:
        self.send_response(status)
        for key, value in {"Content-Type": ctype, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.hub.requests.append((self.command, self.path, status))

    def _json(self, payload: Any) -> None:
        self._send(200, json.dumps(payload).encode())

    def _repo(self, repo_id: str) -> _Repo:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            raise _repo_not_found(repo_id)
        return repo

    def _require_token(self) -> None:
        if self.hub.require_token and not self.headers.get("Authorization"):
            raise HubError(401, "Invalid credentials in Authorization header")

    def _route(self, segs: list[str], query: dict, body: bytes) -> None:
        method = self.command
        if segs == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body))
        if segs == ["api", "validate-yaml"]:
            return self._json({"errors": [], "warnings": []})
        if len(segs) >= 4 and segs[:2] == ["api", "models"]:
            repo_id, action, rest = f"{segs[2]}/{segs[3]}", (segs[4:5] or [None])[0], segs[5:]
            with self.hub.lock:
                repo = self._repo(repo_id)
                if action is None or action == "revision":
                    return self._repo_info(repo_id, repo.resolve(rest[0] if rest else None))
                if action == "tree" and method == "GET" and rest:
                    recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                    return self._tree(repo.commits[repo.resolve(rest[0])], "/".join(rest[1:]), recursive)
                if action == "preupload" and method == "POST":
                    return self._preupload(repo, json.loads(body))
                if action == "commit" and method == "POST" and rest:
                    return self._commit(repo_id, repo, rest[0], body)
        if len(segs) == 6 and segs[1].endswith(".git") and segs[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(json.loads(body))
        if len(segs) == 2 and segs[0] == "__lfs" and method == "PUT":
            if hashlib.sha256(body).hexdigest() != segs[1]:
                raise HubError(400, f"content does not match LFS oid {segs[1]}")
            self.hub.blobs[segs[1]] = body
            return self._json({})
        if len(segs) >= 5 and segs[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(f"{segs[0]}/{segs[1]}", segs[3], unquote("/".join(segs[4:])))
        raise HubError(404, f"Not found: {self.path}")

    # -- repos ---------------------------------------------------------------------------------------------------
    def _create_repo(self, payload: dict) -> None:
        self._require_token()
        repo_id = f"{payload.get('organization') or 'local-user'}/{payload['name']}"
        url = f"{self.hub.endpoint}/{repo_id}"
        with self.hub.lock:
            if repo_id in self.hub.repos:
                self._send(409, json.dumps({"error": "You already created this model repo", "url": url}).encode())
                return
            repo = self.hub.repos[repo_id] = _Repo()
            repo.commit({})
        self._json({"url": url, "name": repo_id})

    def _repo_info(self, repo_id: str, sha: str) -> None:
        tree = self.hub.repos[repo_id].commits[sha]
        self._json({"id": repo_id, "modelId": repo_id, "sha": sha, "private": False, "tags": [],
                    "siblings": [{"rfilename": p} for p in sorted(tree)]})

    @staticmethod
    def _entry(path: str, entry: dict) -> dict:
        out = {"type": "file", "path": path, "oid": entry["oid"], "size": entry["size"]}
        if entry["sha256"]:
            out["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": 134}
        return out

    def _tree(self, tree: dict, path: str, recursive: bool) -> None:
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        files = {p: e for p, e in tree.items() if p.startswith(prefix)}
        if prefix and not files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        out, dirs = [], set()
        for p, e in sorted(files.items()):
            parts = p[len(prefix):].split("/")
            for i in range(1, len(parts)):
                if recursive or i == 1:
                    dirs.add(prefix + "/".join(parts[:i]))
            if recursive or len(parts) == 1:
                out.append(self._entry(p, e))
        self._json([{"type": "directory", "path": d, "oid": _git_sha1(d.encode()), "size": 0} for d in sorted(dirs)]
                   + out)

    # -- uploads -------------------------------------------------------------------------------------------------
    def _preupload(self, repo: _Repo, payload: dict) -> None:
        files = [{"path": f["path"], "shouldIgnore": False, "oid": None,
                  "uploadMode": "lfs" if f.get("size") and any(fnmatch(f["path"].rsplit("/", 1)[-1], p)
                                                             for p in LFS_PATTERNS) else "regular"}
                 for f in payload.get("files", [])]
        self._json({"files": files, "commitOid": repo.main})

    def _lfs_batch(self, payload: dict) -> None:
        self._require_token()
        objects = []
        for obj in payload.get("objects", []):
            out = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.blobs:
                out["actions"] = {"upload": {"href": f"{self.hub.endpoint}/__lfs/{obj['oid']}"}}
            objects.append(out)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   ctype="application/vnd.git-lfs+json")

    def _commit(self, repo_id: str, repo: _Repo, revision: str, body: bytes) -> None:
        self._require_token()
        if unquote(revision) not in ("main", "refs/heads/main"):
            repo.resolve(revision)  # 404 for an unknown revision
            raise HubError(400, f"Invalid rev id: {revision} is not a branch")
        tree, title = dict(repo.commits[repo.resolve("main")]), ""
        for line in filter(None, body.splitlines()):
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                title = value.get("summary", "")
            elif key == "file":
                data = base64.b64decode(value["content"])
                oid = _git_sha1(data)
                self.hub.blobs[oid] = data
                tree[value["path"]] = {"oid": oid, "size": len(data), "sha256": None}
            elif key == "lfsFile":
                if value["oid"] not in self.hub.blobs:
                    raise HubError(422, f"LFS object {value['oid']} of {value['path']} was not uploaded")
                size = len(self.hub.blobs[value["oid"]])
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{value['oid']}\nsize {size}\n"
                tree[value["path"]] = {"oid": _git_sha1(pointer.encode()), "size": size, "sha256": value["oid"]}
            elif key == "deletedFile":
                tree.pop(value["path"], None)
            else:
                raise HubError(400, f"unsupported commit operation {key!r}")
        sha = repo.commit(tree)
        url = f"{self.hub.endpoint}/{repo_id}/commit/{sha}"
        self._json({"success": True, "commitOid": sha, "commitUrl": url, "commitMessage": title,
                    "pullRequestUrl": None})

    # -- downloads -----------------------------------------------------------------------------------------------
    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        with self.hub.lock:
            repo = self._repo(repo_id)
            sha = repo.resolve(revision)
            entry = repo.commits[sha].get(path)
            if entry is None:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
            data = self.hub.blobs[entry["sha256"] or entry["oid"]]
        etag = f'"{entry["sha256"] or entry["oid"]}"'
        headers = {"ETag": etag, "X-Repo-Commit": sha,
                   "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}"}
        if entry["sha256"]:
            headers.update({"X-Linked-Etag": etag, "X-Linked-Size": str(len(data))})
        self._send(200, data, headers, ctype="application/octet-stream")


# ---------------------------------------------------------------------------------------------------------------
# Pointing the HF stack at an endpoint, a cache and offline mode
# ---------------------------------------------------------------------------------------------------------------


def closed_port_endpoint() -> str:
    """An ``http://127.0.0.1:PORT`` endpoint nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def local_hub_env(
    monkeypatch,
    hub: LocalHubServer | str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    token: str | None = "hf_local_test_token",
    offline: bool | None = None,
) -> None:
    """Point the HF stack at ``hub`` (a server or an endpoint URL), the HF home ``cache_dir`` and offline mode
    ``offline`` for one test, through pytest's ``monkeypatch`` (undone after the test); ``None`` leaves one alone.

    huggingface_hub reads ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_OFFLINE``... once, at import, into
    ``huggingface_hub.constants``, and an ``HfApi`` copies the endpoint when it is created: so besides the
    environment (for subprocesses, and for PEFT, which reads ``HF_HUB_OFFLINE`` from it) this sets those constants
    and the endpoint of the two shared ``HfApi`` instances (huggingface_hub's module-level one and transformers').
    """
    from huggingface_hub import constants, hf_api

    env: dict[str, str] = {}
    attrs: list[tuple[Any, str, Any]] = []
    if hub is not None:
        url = (hub.endpoint if isinstance(hub, LocalHubServer) else hub).rstrip("/")
        env.update(HF_ENDPOINT=url, HF_HUB_DISABLE_XET="1")
        attrs += [(constants, "ENDPOINT", url), (constants, "HF_HUB_DISABLE_XET", True),
                  (constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"),
                  (hf_api.api, "endpoint", url)]
        try:
            from transformers.utils.hub import hf_api as transformers_hf_api
        except ImportError:
            pass
        else:
            attrs.append((transformers_hf_api(), "endpoint", url))
    if cache_dir is not None:
        home = os.fspath(cache_dir)
        hub_cache = os.path.join(home, "hub")
        env.update(HF_HOME=home, HF_HUB_CACHE=hub_cache)
        attrs += [(constants, "HF_HOME", home), (constants, "HF_HUB_CACHE", hub_cache),
                  (constants, "HUGGINGFACE_HUB_CACHE", hub_cache), (constants, "HF_XET_CACHE", f"{home}/xet"),
                  (constants, "HF_ASSETS_CACHE", f"{home}/assets"), (constants, "HF_TOKEN_PATH", f"{home}/token"),
                  (constants, "HF_STORED_TOKENS_PATH", f"{home}/stored_tokens")]
    if offline is not None:
        env["HF_HUB_OFFLINE"] = "1" if offline else "0"
        attrs.append((constants, "HF_HUB_OFFLINE", offline))
    for obj, name, value in attrs:
        monkeypatch.setattr(obj, name, value)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
