"""Checkpoints shipped inside the package, in Hugging Face Hub repo layout.

A bundled checkpoint lives in ``tac_ecg_hf/checkpoints/<org>/<name>/`` exactly as it would on
the Hub (``config.json``, ``model.safetensors``, ``README.md``, adapters under
``adapters/<task>/adapter_config.json`` + ``adapter_model.safetensors``, ...), so the folder can
be loaded directly (``from_pretrained(bundled_path(...))``), copied into the Hugging Face cache
(:func:`seed_hf_cache`, after which ``from_pretrained("<org>/<name>")`` works with
``HF_HUB_OFFLINE=1``), or uploaded (:func:`push_bundled`).

Every function takes ``root=`` (default: the package's ``checkpoints`` directory) so tests can
use a fake tree.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import constants as hf_constants

from .errors import hub_errors

__all__ = [
    "CHECKPOINTS_ROOT",
    "BundledFile",
    "bundled_repo_ids",
    "bundled_path",
    "bundled_files",
    "bundled_commit_hash",
    "seed_hf_cache",
    "push_bundled",
]

logger = logging.getLogger(__name__)

CHECKPOINTS_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"

# Files the Hub stores with git-LFS by default (their cache blob is named by sha256, like a real
# download); everything else is a regular git blob (cache blob named by its git sha1).
LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.gz", "*.h5", "*.joblib", "*.model", "*.msgpack",
    "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth",
    "*.safetensors", "*.tar", "*.tflite", "*.wasm", "*.xz", "*.zip", "*.zst",
)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024

# Never part of a bundled repo.
_IGNORED_NAMES = {"__pycache__", ".git", ".cache", ".ipynb_checkpoints", ".DS_Store"}
_IGNORED_PATTERNS = ("*.pyc", "*.pyo", "*.tmp", "*.incomplete", "*.lock")
_KEPT_DOTFILES = {".gitattributes", ".gitignore"}
_SEED_MARKER = ".tac_ecg_bundled.json"

# Optional files transformers / peft look for while loading. A seeded commit is an immutable, complete
# snapshot, so those it lacks are recorded in ``.no_exist/<commit>/`` (as huggingface_hub does after a
# 404): loaders then skip them without a network call -- without the marker each probe costs a HEAD
# request, and ~23 s of retries when the endpoint is unreachable and HF_HUB_OFFLINE is not set.
_PROBED_FILES = (
    "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin",
    "config.json", "generation_config.json", "custom_generate/generate.py",
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
    "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json",
    "chat_template.json", "chat_template.jinja", "README.md",
)


def _root(root: str | os.PathLike | None) -> Path:
    return Path(root) if root is not None else CHECKPOINTS_ROOT


def _ignored(name: str) -> bool:
    if name in _IGNORED_NAMES:
        return True
    if name.startswith(".") and name not in _KEPT_DOTFILES:
        return True
    return any(fnmatch.fnmatch(name, pat) for pat in _IGNORED_PATTERNS)


def _iter_files(folder: Path) -> Iterable[str]:
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d))
        for name in sorted(filenames):
            if not _ignored(name):
                yield (Path(dirpath) / name).relative_to(folder).as_posix()


def _split_repo_id(repo_id: str) -> tuple[str, str]:
    parts = repo_id.strip().split("/")
    if len(parts) != 2 or not all(parts) or any(p in (".", "..") or p.startswith(".") for p in parts):
        raise ValueError(f"expected a repo id of the form 'org/name', got {repo_id!r}")
    return parts[0], parts[1]


def _is_repo_dir(path: Path) -> bool:
    return path.is_dir() and next(iter(_iter_files(path)), None) is not None


def bundled_repo_ids(root: str | os.PathLike | None = None) -> list[str]:
    """Ids (``org/name``) of the checkpoints bundled under ``root``, sorted."""
    base = _root(root)
    if not base.is_dir():
        return []
    ids = []
    for org in sorted(base.iterdir()):
        if not org.is_dir() or _ignored(org.name) or org.name.startswith("_"):
            continue
        for name in sorted(org.iterdir()):
            if name.is_dir() and not _ignored(name.name) and not name.name.startswith("_") and _is_repo_dir(name):
                ids.append(f"{org.name}/{name.name}")
    return ids


def bundled_path(repo_id: str, root: str | os.PathLike | None = None) -> Path | None:
    """Folder of the bundled checkpoint ``repo_id`` (``org/name``), or ``None`` if not bundled."""
    try:
        org, name = _split_repo_id(repo_id)
    except ValueError:
        return None
    path = _root(root) / org / name
    return path if _is_repo_dir(path) else None


def _require(repo_id: str, root: str | os.PathLike | None) -> Path:
    path = bundled_path(repo_id, root)
    if path is None:
        available = ", ".join(bundled_repo_ids(root)) or "none"
        raise KeyError(f"no bundled checkpoint {repo_id!r} under {_root(root)} (available: {available})")
    return path


@dataclass(frozen=True)
class BundledFile:
    """One file of a bundled repo with the ids the Hub would give it."""

    path: str  # relative posix path inside the repo
    size: int
    git_oid: str  # git blob sha1 (of the LFS pointer for LFS files), what the Hub lists as ``oid``
    sha256: str | None  # set for LFS files
    etag: str  # cache blob name: sha256 for LFS files, git sha1 otherwise

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None


def _is_lfs(rel: str, size: int) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return size >= LFS_SIZE_THRESHOLD or any(fnmatch.fnmatch(name, pat) for pat in LFS_PATTERNS)


def _hash_file(path: Path, rel: str) -> BundledFile:
    size = path.stat().st_size
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    sha256 = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha1.update(chunk)
            sha256.update(chunk)
    if size > 0 and _is_lfs(rel, size):
        digest = sha256.hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{digest}\nsize {size}\n".encode()
        git_oid = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()
        return BundledFile(rel, size, git_oid, digest, digest)
    oid = sha1.hexdigest()
    return BundledFile(rel, size, oid, None, oid)


def bundled_files(repo_id: str, root: str | os.PathLike | None = None) -> list[BundledFile]:
    """Files of a bundled repo (ignoring caches, ``.pyc``, hidden files) with their Hub ids."""
    folder = _require(repo_id, root)
    return [_hash_file(folder / rel, rel) for rel in _iter_files(folder)]


def _commit_hash(files: list[BundledFile]) -> str:
    h = hashlib.sha1(b"tac-ecg-hf bundled checkpoint v1\n")
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.git_oid}\0{f.size}\n".encode())
    return h.hexdigest()


def bundled_commit_hash(repo_id: str, root: str | os.PathLike | None = None) -> str:
    """Deterministic 40-hex pseudo commit id of a bundled repo (a hash of its file contents)."""
    return _commit_hash(bundled_files(repo_id, root))


# ---------------------------------------------------------------------------------------------
# Seeding the Hugging Face cache
# ---------------------------------------------------------------------------------------------


def _symlinks_ok(cache_dir: Path, use_symlinks: bool | None) -> bool:
    if use_symlinks is not None:
        return use_symlinks
    if hf_constants.HF_HUB_DISABLE_SYMLINKS:
        return False
    try:
        from huggingface_hub.file_download import are_symlinks_supported

        return are_symlinks_supported(str(cache_dir))
    except Exception:  # pragma: no cover - very old/new huggingface_hub
        return os.name != "nt"


def _atomic_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _place_pointer(blob: Path, pointer: Path, symlink: bool) -> None:
    """Make ``pointer`` (snapshot file) resolve to ``blob``; idempotent."""
    rel_target = os.path.relpath(blob, pointer.parent)
    if pointer.is_symlink():
        if symlink and os.readlink(pointer) == rel_target:
            return
        pointer.unlink()
    elif pointer.exists():
        if not symlink and pointer.stat().st_size == blob.stat().st_size and _same_content(pointer, blob):
            return
        pointer.unlink()
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if symlink:
        tmp = pointer.with_name(f".{pointer.name}.{uuid.uuid4().hex}.tmp")
        os.symlink(rel_target, tmp)
        os.replace(tmp, pointer)
    else:
        _atomic_copy(blob, pointer)


def _same_content(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def _write_tree_cache(storage: Path, commit: str, files: list[BundledFile]) -> None:
    """Record the file list of the commit (lets huggingface_hub tell the snapshot is complete)."""
    try:
        from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache
    except ImportError:  # pragma: no cover - huggingface_hub without tree cache
        return
    entries = {
        f.path: TreeCacheEntry(
            size=f.size,
            blob_id=f.git_oid,
            lfs_sha256=f.sha256,
            lfs_size=f.size if f.is_lfs else None,
        )
        for f in files
    }
    write_tree_cache(str(storage), commit, entries)


def _mark_missing(storage: Path, commit: str, present: set[str]) -> None:
    """Write ``.no_exist`` markers for commonly probed files absent from the snapshot."""
    folders = {""} | {p.rsplit("/", 1)[0] for p in present if "/" in p}
    for folder in folders:
        for name in _PROBED_FILES:
            rel = f"{folder}/{name}" if folder else name
            if rel in present:
                continue
            marker = storage / ".no_exist" / commit / Path(*rel.split("/"))
            if not marker.exists():
                with contextlib.suppress(OSError):
                    marker.parent.mkdir(parents=True, exist_ok=True)
                    marker.touch()


def seed_hf_cache(
    repo_ids: str | Iterable[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    revision: str = "main",
    *,
    root: str | os.PathLike | None = None,
    use_symlinks: bool | None = None,
    force: bool = False,
) -> dict[str, Path]:
    """Copy bundled checkpoints into the Hugging Face cache so Hub ids resolve offline.

    For each repo: blobs go to ``<cache>/models--org--name/blobs/<etag>`` (sha256 for LFS-type
    files, git sha1 otherwise), ``snapshots/<commit>/...`` points to them (relative symlinks,
    or copies where symlinks are unsupported), and ``refs/<revision>`` holds ``<commit>``, a
    deterministic hash of the contents. The file list is recorded in ``trees/<commit>.json`` and
    commonly probed optional files that the bundle lacks in ``.no_exist/<commit>/``.

    Afterwards ``AutoModel.from_pretrained("org/name")``, ``hf_hub_download`` and
    ``snapshot_download`` resolve from the cache with ``HF_HUB_OFFLINE=1`` (or
    ``local_files_only=True``), and also when the endpoint is unreachable. Online, the Hub is asked
    first: if it does not know the repo, transformers raises -- use
    :func:`~tac_ecg_hf.hub.resolve_repo`, which falls back to the bundled copy.

    Idempotent: files already in place are left alone. If ``refs/<revision>`` already points to
    a commit that did not come from a bundled checkpoint (e.g. a real download from the Hub),
    it is kept unless ``force=True`` (the bundled snapshot is still added under its own commit).

    Args:
        repo_ids: one id, several, or ``None`` for every bundled checkpoint.
        cache_dir: hub cache directory (default ``huggingface_hub.constants.HF_HUB_CACHE``, i.e.
            ``$HF_HUB_CACHE`` or ``$HF_HOME/hub``); same meaning as ``cache_dir=`` in
            ``from_pretrained``/``hf_hub_download``.
        revision: ref name to point at the bundled commit.
        root: bundled checkpoints directory (default: the package's ``checkpoints``).
        use_symlinks: force symlinks (True) or copies (False); default: what the cache supports.
        force: overwrite a ref that points to a non-bundled commit.

    Returns:
        ``{repo_id: snapshot directory}``.
    """
    if repo_ids is None:
        ids = bundled_repo_ids(root)
    elif isinstance(repo_ids, str):
        ids = [repo_ids]
    else:
        ids = list(repo_ids)
    cache = Path(cache_dir if cache_dir is not None else hf_constants.HF_HUB_CACHE).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    symlink = _symlinks_ok(cache, use_symlinks)

    out: dict[str, Path] = {}
    for repo_id in ids:
        src = _require(repo_id, root)
        files = [_hash_file(src / rel, rel) for rel in _iter_files(src)]
        commit = _commit_hash(files)
        storage = cache / ("models--" + repo_id.replace("/", "--"))
        snapshot = storage / "snapshots" / commit

        for f in files:
            blob = storage / "blobs" / f.etag
            if not (blob.is_file() and blob.stat().st_size == f.size):
                _atomic_copy(src / f.path, blob)
            _place_pointer(blob, snapshot.joinpath(*f.path.split("/")), symlink)

        _write_tree_cache(storage, commit, files)
        _mark_missing(storage, commit, {f.path for f in files})

        marker_path = storage / _SEED_MARKER
        try:
            marker: dict[str, Any] = json.loads(marker_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            marker = {}
        seeded = set(marker.get("commits", []))
        ref = storage / "refs" / revision
        current = ref.read_text(encoding="utf-8").strip() if ref.is_file() else None
        if current != commit:
            foreign = current is not None and current not in seeded and (storage / "snapshots" / current).is_dir()
            if foreign and not force:
                logger.warning(
                    "Not moving refs/%s of %s: it points to %s (not a bundled checkpoint). The bundled snapshot is "
                    "available as revision=%r; pass force=True to make it the default.",
                    revision, repo_id, current, commit,
                )
            else:
                _atomic_write_text(ref, commit)
        if commit not in seeded:
            seeded.add(commit)
            _atomic_write_text(marker_path, json.dumps({"repo_id": repo_id, "commits": sorted(seeded)}, indent=1))
        out[repo_id] = snapshot
    return out


# ---------------------------------------------------------------------------------------------
# Uploading
# ---------------------------------------------------------------------------------------------


def push_bundled(
    repo_id: str,
    endpoint: str | None = None,
    token: str | bool | None = None,
    private: bool = False,
    *,
    root: str | os.PathLike | None = None,
    target_repo_id: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
):
    """Upload a bundled checkpoint folder to a Hub (``HfApi.create_repo`` + ``upload_folder``).

    Args:
        repo_id: bundled checkpoint id (``org/name``).
        endpoint: Hub URL (default: ``HF_ENDPOINT`` / huggingface.co).
        token: token to use (default: the logged-in one).
        private: create the repo as private (ignored if it already exists).
        root: bundled checkpoints directory (default: the package's).
        target_repo_id: upload to another repo id (default: ``repo_id``).
        revision: branch to commit to (created from ``main`` if missing).
        commit_message: default ``"Upload <repo_id> (tac-ecg-hf bundled checkpoint)"``.

    Returns:
        The ``huggingface_hub.CommitInfo`` of the upload. Hub failures are raised as
        :class:`~tac_ecg_hf.hub.errors.HubAccessError`.
    """
    from huggingface_hub import HfApi

    folder = _require(repo_id, root)
    target = target_repo_id or repo_id
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(target, revision, endpoint=api.endpoint):
        api.create_repo(target, private=private, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(target, branch=revision, exist_ok=True)
        return api.upload_folder(
            folder_path=folder,
            repo_id=target,
            revision=revision,
            commit_message=commit_message or f"Upload {repo_id} (tac-ecg-hf bundled checkpoint)",
            ignore_patterns=["__pycache__", "__pycache__/*", "*.pyc", "*.pyo", ".DS_Store", ".ipynb_checkpoints/*"],
        )
