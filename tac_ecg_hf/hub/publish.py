"""Publish a trained run folder to the Hub in the layout PEFT and transformers read."""

from __future__ import annotations

import os
from fnmatch import fnmatch
from pathlib import Path

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi

from ..errors import InvalidArgumentError
from .card import build_model_card, is_generated_card
from .code import missing_remote_code
from .errors import hub_errors
from .resolve import task_adapters_in

__all__ = ["push_run", "PUSH_IGNORE_PATTERNS"]

#: Never published: Trainer checkpoints and logs, pickles (safetensors only), caches and hidden files.
PUSH_IGNORE_PATTERNS = ("checkpoint-*", "runs", "__pycache__", ".*", "*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle",
                        "*.ckpt", "*.pyc", "*.tmp")


def _files(folder: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not any(fnmatch(d, p) for p in PUSH_IGNORE_PATTERNS))
        out += [(Path(dirpath) / n).relative_to(folder).as_posix() for n in sorted(filenames)
                if not any(fnmatch(n, p) for p in PUSH_IGNORE_PATTERNS)]
    return out


def push_run(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    private: bool = False,
    commit_message: str | None = None,
) -> CommitInfo:
    """Publish the run folder ``folder`` as the model repo ``repo_id``, in one commit, and return its ``CommitInfo``.

    The folder is a repo in tac-ecg-hf's layout: the encoder and its preprocessor at the root (``config.json``,
    ``model.safetensors``, ``preprocessor_config.json``), each task adapter in a subfolder named by its task
    (``<task>/adapter_config.json`` + ``adapter_model.safetensors``), optionally the CETP dual encoder in ``cetp/``;
    a full or linear-probe run is a plain model folder. The ``README.md`` uploaded is the folder's own when a person
    wrote it, else a model card generated from the run's metadata (:func:`~tac_ecg_hf.hub.build_model_card`); the
    folder itself is not modified. Trainer checkpoints, logs and pickle files are left out
    (:data:`PUSH_IGNORE_PATTERNS`); the code modules an ``auto_map`` names but the folder lacks are added from the
    installed package (:func:`~tac_ecg_hf.hub.code.missing_remote_code`).

    Raises:
        InvalidArgumentError: the folder holds neither a model nor a task adapter.
        HubAccessError: the Hub refused or could not be reached (one-line message saying what to do).
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file() and not task_adapters_in(folder):
        raise InvalidArgumentError(f"{folder} holds no model (config.json) and no task adapter "
                                   "(<task>/adapter_config.json); "
                         "pass the output folder of a training run.")
    readme = folder / "README.md"
    files = [f for f in _files(folder) if f != "README.md"]
    if readme.is_file() and not is_generated_card(readme):
        card = readme.read_bytes()
    else:
        card = str(build_model_card(folder, repo_id)).encode()
    operations = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=folder / f) for f in files]
    # the modules auto_map names but the folder lacks (a bundled base ships no code): from the installed package, so
    # that the repo loads with trust_remote_code where tac-ecg-hf is not installed
    operations += [CommitOperationAdd(path_in_repo=name, path_or_fileobj=source)
                   for name, source in missing_remote_code(folder).items()]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card))
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(repo_id, endpoint=api.endpoint):
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.create_commit(repo_id, operations=operations,
                                 commit_message=commit_message or f"Upload {folder.name} with tac-ecg-hf")
