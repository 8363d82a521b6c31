"""Checkpoints shipped inside the package, as Hub repos: ``tac_ecg_hf/checkpoints/<org>/<name>/``.

A bundled checkpoint is a folder in the repo layout (encoder + preprocessor at the root, task adapters in
subfolders, ``cetp/``); :func:`~tac_ecg_hf.hub.resolve_repo` uses it by path. :func:`seed_hf_cache` copies it into
the Hugging Face cache on request, so that plain ``from_pretrained("<org>/<name>")`` finds it offline. Every function
takes ``root=`` (default: the package's ``checkpoints`` folder) so that tests can use a fake tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from fnmatch import fnmatch
from pathlib import Path

from huggingface_hub import constants
from huggingface_hub.file_download import are_symlinks_supported, repo_folder_name

__all__ = ["CHECKPOINTS_ROOT", "BUNDLED_REF", "bundled_repo_ids", "bundled_path", "bundled_commit_hash",
           "seed_hf_cache"]

CHECKPOINTS_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"

#: Ref that :func:`seed_hf_cache` writes next to ``refs/main`` in the cache: the commit of the last bundled copy it
#: placed, which is how it tells its own ``refs/main`` (which it may move) from a real Hub download's (which it
#: never moves). ``revision="tac-ecg-hf-bundled"`` loads the bundled copy whatever ``main`` is.
BUNDLED_REF = "tac-ecg-hf-bundled"

# Files the Hub stores with git-LFS by default: the cache names their blob by sha256, like a real download; other
# files are regular git blobs, named by their git sha1.
_LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.npz", "*.npy",
                 "*.parquet", "*.arrow", "*.zip", "*.gz", "*.tar", "*.model", "*.msgpack")
_LFS_SIZE = 10 * 2**20
_IGNORED = ("__pycache__", "*.pyc", "*.pyo", ".*")

# Optional files that transformers and PEFT ask the cache for when loading a model or an adapter. A seeded commit is
# complete, so those it lacks get a ``.no_exist/<commit>/<path>`` marker, as huggingface_hub writes after a 404:
# loaders then skip them without a network call (and without retries when the endpoint is down).
_PROBED = ("adapter_config.json", "adapter_model.safetensors", "config.json", "generation_config.json",
           "model.safetensors", "model.safetensors.index.json", "preprocessor_config.json", "processor_config.json",
           "tokenizer_config.json", "chat_template.jinja", "chat_template.json", "custom_generate/generate.py")


def _root(root: str | os.PathLike | None) -> Path:
    return Path(root) if root is not None else CHECKPOINTS_ROOT


def _files(folder: Path) -> Iterator[str]:
    """Relative posix paths of the repo files under ``folder``, sorted (caches and hidden files left out)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not any(fnmatch(d, p) for p in _IGNORED))
        for name in sorted(filenames):
            if not any(fnmatch(name, p) for p in _IGNORED):
                yield (Path(dirpath) / name).relative_to(folder).as_posix()


def bundled_repo_ids(root: str | os.PathLike | None = None) -> list[str]:
    """Ids (``org/name``) of the bundled checkpoints, sorted: the ``<org>/<name>/`` folders holding a
    ``config.json``."""
    base = _root(root)
    return sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in base.glob("*/*/config.json")
                  if not any(part.startswith((".", "_")) for part in p.relative_to(base).parts[:2]))


def bundled_path(repo_id: str, root: str | os.PathLike | None = None) -> Path | None:
    """Folder of the bundled checkpoint ``repo_id``, or ``None`` when none is bundled under that id."""
    return _root(root) / repo_id if str(repo_id) in bundled_repo_ids(root) else None


def _blob_ids(path: Path, rel: str) -> tuple[str, str]:
    """(git blob id as the Hub lists it, cache blob name) of one file: for an LFS file the git blob is its pointer
    and the cache blob is named by the content's sha256; for a regular file both are its git sha1."""
    data = path.read_bytes()
    size = len(data)
    if size and (size >= _LFS_SIZE or any(fnmatch(rel.rsplit("/", 1)[-1], p) for p in _LFS_PATTERNS)):
        sha256 = hashlib.sha256(data).hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
        return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest(), sha256
    oid = hashlib.sha1(b"blob %d\0" % size + data).hexdigest()
    return oid, oid


def _manifest(folder: Path) -> tuple[str, dict[str, str]]:
    """(commit id, {path: cache blob name}); the commit id is a sha1 over the paths and git blob ids, so it changes
    exactly when a file does."""
    commit, blobs = hashlib.sha1(b"tac-ecg-hf bundled checkpoint\n"), {}
    for rel in _files(folder):
        oid, blobs[rel] = _blob_ids(folder / rel, rel)
        commit.update(f"{rel}\0{oid}\n".encode())
    return commit.hexdigest(), blobs


def _require(repo_id: str, root: str | os.PathLike | None) -> Path:
    folder = bundled_path(repo_id, root)
    if folder is None:
        raise KeyError(f"no bundled checkpoint {repo_id!r}; bundled: {', '.join(bundled_repo_ids(root)) or 'none'}")
    return folder


def bundled_commit_hash(repo_id: str, root: str | os.PathLike | None = None) -> str:
    """The 40-hex commit id under which :func:`seed_hf_cache` files the bundled ``repo_id`` (a hash of its files)."""
    return _manifest(_require(repo_id, root))[0]


def _read(path: Path) -> str | None:
    return path.read_text().strip() if path.is_file() else None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _seeded_by_version_0_1(storage: Path) -> list[str]:
    """Commits that tac-ecg-hf 0.1 placed in the cache (it seeded on import and listed them in
    ``.tac_ecg_bundled.json``): an upgrade replaces them like its own earlier seeds, never a real Hub download."""
    try:
        commits = json.loads((storage / ".tac_ecg_bundled.json").read_text()).get("commits", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [c for c in commits if isinstance(c, str)]


def seed_hf_cache(
    repo_ids: str | Iterable[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    root: str | os.PathLike | None = None,
) -> list[Path]:
    """Copy bundled checkpoints into the Hugging Face cache, so that ``from_pretrained("<org>/<name>")`` (transformers,
    PEFT, ``snapshot_download``) finds them with ``HF_HUB_OFFLINE=1``. Returns the snapshot folders.

    The cache gets its documented layout (``huggingface_hub`` cache guide): ``models--<org>--<name>/blobs/<id>``
    (sha256 for LFS-type files, git sha1 for the others), ``snapshots/<commit>/<path>`` linking to them (copies
    where the file system has no symlinks), ``refs/main`` holding ``<commit>``, a hash of the bundled files (see
    :func:`bundled_commit_hash`), and ``.no_exist/<commit>/`` markers for the optional files loaders probe for.

    A real Hub copy always wins: ``refs/main`` is written only when it is missing or still points to what an
    earlier call placed (recorded in ``refs/tac-ecg-hf-bundled``, see :data:`BUNDLED_REF`); once a download from the
    Hub moved it, it stays. Idempotent (files in place are not rewritten) and silent.

    Args:
        repo_ids: one id, several, or ``None`` for every bundled checkpoint.
        cache_dir: the hub cache (default ``huggingface_hub.constants.HF_HUB_CACHE``: ``$HF_HUB_CACHE`` or
            ``$HF_HOME/hub``), as ``cache_dir=`` of ``from_pretrained``.
    """
    ids = bundled_repo_ids(root) if repo_ids is None else [repo_ids] if isinstance(repo_ids, str) else list(repo_ids)
    cache = Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    symlinks = are_symlinks_supported(cache)
    snapshots = []
    for repo_id in ids:
        src = _require(repo_id, root)
        commit, blobs = _manifest(src)
        storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
        snapshot = storage / "snapshots" / commit
        for rel, blob_name in blobs.items():
            blob, link = storage / "blobs" / blob_name, snapshot / rel
            if not blob.is_file():
                blob.parent.mkdir(parents=True, exist_ok=True)
                tmp = blob.with_name(f".{blob_name}.{os.getpid()}.tmp")
                shutil.copyfile(src / rel, tmp)
                os.replace(tmp, blob)
            if link.exists():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            if symlinks:
                link.unlink(missing_ok=True)  # a dangling link
                link.symlink_to(os.path.relpath(blob, link.parent))
            else:
                shutil.copyfile(blob, link)
        for folder in {""} | {rel.rsplit("/", 1)[0] + "/" for rel in blobs if "/" in rel}:
            for name in _PROBED:
                if folder + name not in blobs:
                    marker = storage / ".no_exist" / commit / folder / name
                    if not marker.exists():
                        marker.parent.mkdir(parents=True, exist_ok=True)
                        marker.touch()
        main, ours = storage / "refs" / "main", storage / "refs" / BUNDLED_REF
        if _read(main) in (None, _read(ours), commit, *_seeded_by_version_0_1(storage)) and _read(main) != commit:
            _write(main, commit)
        if _read(ours) != commit:
            _write(ours, commit)
        snapshots.append(snapshot)
    return snapshots
