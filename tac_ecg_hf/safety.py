"""Safe loading and crash-safe saving of checkpoints and adapters.

* **Pickle refusal.** Model classes of tac-ecg-hf load safetensors only unless ``use_safetensors=False`` is passed
  (see ``SafetensorsOnlyMixin`` in ``models/encoders/modeling_ecg_base.py``). Adapters go through
  :func:`check_adapter_files`: a folder with only ``adapter_model.bin`` is refused unless ``allow_pickle=True``.
  :func:`load_peft_adapter` wraps ``PeftModel.from_pretrained`` / ``load_adapter`` with that check.
* **Atomic saves.** :func:`atomic_save_pretrained` writes ``save_pretrained`` output to a temporary sibling folder,
  fsyncs it and then swaps it into place, so a run killed mid-save leaves the previous checkpoint intact and never
  a half-written one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import os
import shutil
import uuid
from pathlib import Path

from .models.encoders.modeling_ecg_base import (
    PICKLE_WEIGHT_FILES,
    SAFE_WEIGHT_FILES,
    UnsafeCheckpointError,
    pickle_only_checkpoint,
)

__all__ = [
    "UnsafeCheckpointError",
    "ADAPTER_PICKLE_FILES",
    "ADAPTER_SAFE_FILES",
    "PICKLE_WEIGHT_FILES",
    "SAFE_WEIGHT_FILES",
    "check_adapter_files",
    "check_model_files",
    "load_peft_adapter",
    "atomic_save_pretrained",
    "replace_dir",
]

ADAPTER_SAFE_FILES = ("adapter_model.safetensors",)
ADAPTER_PICKLE_FILES = ("adapter_model.bin",)
#: weight files superseded by a new save (not carried over from the previous version of a target folder)
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json", "*.pt", "*.pth")
_TMP_TAG = ".tmp-"


# ----------------------------------------------------------------------------------------------------------------
# pickle refusal


def check_adapter_files(path: str | os.PathLike, allow_pickle: bool = False) -> None:
    """Refuse a local adapter folder that holds only a pickle ``adapter_model.bin`` (no safetensors), unless
    ``allow_pickle=True``. Hub ids and folders with safetensors pass."""
    files = pickle_only_checkpoint(path, ADAPTER_SAFE_FILES, ADAPTER_PICKLE_FILES)
    if files and not allow_pickle:
        raise UnsafeCheckpointError(
            f"adapter {os.fspath(path)} holds only a pickle checkpoint ({', '.join(files)}); tac-ecg-hf loads "
            "safetensors adapters only by default, because unpickling a file can run arbitrary code. Convert it "
            "(load it once where you trust it and save it with PeftModel.save_pretrained, which writes "
            "adapter_model.safetensors), or pass allow_pickle=True explicitly if you trust the file."
        )


def check_model_files(path: str | os.PathLike, allow_pickle: bool = False) -> bool | None:
    """Refuse a local model folder with only ``pytorch_model.bin`` unless ``allow_pickle``; returns the
    ``use_safetensors`` value to pass to ``from_pretrained`` (``False`` for an allowed pickle-only folder)."""
    files = pickle_only_checkpoint(path)
    if not files:
        return None
    if not allow_pickle:
        raise UnsafeCheckpointError(
            f"{os.fspath(path)} holds only a pickle checkpoint ({', '.join(files)}); tac-ecg-hf loads safetensors "
            "only by default, because unpickling a file can run arbitrary code. Convert it to safetensors (load it "
            "once where you trust it and call save_pretrained), or pass allow_pickle=True explicitly if you trust it."
        )
    return False


def load_peft_adapter(model, path: str | os.PathLike, adapter_name: str, allow_pickle: bool = False, **kwargs):
    """Load the adapter at ``path`` onto ``model``: a plain model becomes a ``PeftModel``
    (``PeftModel.from_pretrained``), a ``PeftModel`` gets one more adapter (``load_adapter``). Pickle-only adapter
    folders are refused unless ``allow_pickle=True``. Returns the ``PeftModel``."""
    from peft import PeftModel

    check_adapter_files(path, allow_pickle=allow_pickle)
    if isinstance(model, PeftModel):
        model.load_adapter(path, adapter_name=adapter_name, **kwargs)
        return model
    return PeftModel.from_pretrained(model, path, adapter_name=adapter_name, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# atomic saves


def _fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (and ``root`` itself)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened/fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # file system or kernel without RENAME_EXCHANGE
    raise OSError(err, f"renameat2(RENAME_EXCHANGE) failed: {os.strerror(err)}", os.fspath(a))


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move the folder ``src`` to ``dst``, replacing an existing ``dst`` folder.

    A new ``dst`` appears with one ``rename``; an existing one is swapped atomically with ``RENAME_EXCHANGE``
    where the kernel supports it (readers see the old or the new folder, never a mix), else it is renamed aside
    first (a crash in between leaves it as ``.<name>.tmp-old-*`` next to ``dst``). ``src`` must be on the same
    file system (a sibling).
    """
    src, dst = Path(src), Path(dst)
    if not dst.exists():
        os.rename(src, dst)
    elif _exchange(src, dst):
        shutil.rmtree(src)  # now the old version
    else:
        aside = dst.parent / f".{dst.name}{_TMP_TAG}old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(dst, aside)
        os.rename(src, dst)
        shutil.rmtree(aside, ignore_errors=True)
    _fsync_dir(dst.parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(parent: Path, name: str) -> None:
    """Remove temporary folders ``.<name>.tmp-<pid>-*`` left by killed saves (their process is gone)."""
    prefix = f".{name}{_TMP_TAG}"
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        token = entry.name[len(prefix):].removeprefix("old-").split("-", 1)[0]
        if token.isdigit() and int(token) != os.getpid() and not _pid_alive(int(token)):
            shutil.rmtree(entry, ignore_errors=True)


def _carry_over(old: Path, new: Path) -> None:
    """Hard-link (or copy) into ``new`` the entries of ``old`` that the new save did not write, except weight
    files at the top level, which the new save supersedes (a stale ``pytorch_model.bin`` must not survive)."""
    for entry in old.iterdir():
        target = new / entry.name
        if target.exists() or target.is_symlink():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        elif not any(fnmatch.fnmatch(entry.name, p) for p in _WEIGHT_PATTERNS):
            _link_or_copy(entry, target)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _saved_adapter_names(model, kwargs: dict) -> list[str] | None:
    """Adapter names a ``PeftModel.save_pretrained`` call writes into sub-folders, or None for other models."""
    peft_config = getattr(model, "peft_config", None)
    if not isinstance(peft_config, dict) or not hasattr(model, "load_adapter"):
        return None
    names = kwargs.get("selected_adapters") or list(peft_config)
    return list(names)


def atomic_save_pretrained(model, path: str | os.PathLike, **kwargs) -> Path:
    """``model.save_pretrained(path, **kwargs)`` that a crash or kill cannot leave half-written.

    Everything is written to a temporary folder next to ``path`` (``.<name>.tmp-<pid>-<random>``), fsynced, and
    then moved into place with :func:`replace_dir`:

    * a ``PeftModel`` writes one folder per adapter (``<path>/<adapter>/``, the ``default`` adapter at ``<path>``
      itself): each adapter folder is replaced as a unit, other adapters already in ``path`` are left alone;
    * any other model (a ``transformers`` model, a tokenizer...) replaces ``path`` as a unit; entries of an existing
      ``path`` that the new save does not write (say an ``adapters/`` folder next to the encoder) are carried over,
      except top-level weight files, which the new save supersedes.

    If ``save_pretrained`` raises (disk full, interrupted), the temporary folder is removed and ``path`` is
    untouched; temporary folders of killed processes are removed by the next call. Returns ``path``.
    """
    path = Path(path)
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(parent, path.name)
    tmp = parent / f".{path.name}{_TMP_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        model.save_pretrained(tmp, **kwargs)
        _fsync_tree(tmp)
        adapters = _saved_adapter_names(model, kwargs)
        if adapters is None or "default" in adapters:
            if path.is_dir():
                _carry_over(path, tmp)
            elif path.exists():
                raise FileExistsError(f"{path} exists and is not a folder; refusing to replace it with a checkpoint.")
            replace_dir(tmp, path)
            return path
        path.mkdir(parents=True, exist_ok=True)
        for name in adapters:
            _remove_stale_temps(path, name)
            if (tmp / name).is_dir():
                replace_dir(tmp / name, path / name)
        for entry in tmp.iterdir():  # files PEFT writes at the top (README.md): one atomic rename each
            if entry.is_file():
                os.replace(entry, path / entry.name)
        _fsync_dir(path)
        return path
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
