"""Hugging Face Hub helpers: readable errors, checkpoint resolution, bundled checkpoints.

* :class:`HubAccessError`, :func:`hub_errors`, :func:`translate_hub_error` -- turn
  ``huggingface_hub``/``transformers``/``peft`` download errors into one clear message.
* :func:`resolve_repo`, :func:`resolve_file` -- local directory, then Hub/cache, then bundled copy.
* :func:`bundled_repo_ids`, :func:`bundled_path`, :func:`seed_hf_cache`, :func:`push_bundled` --
  checkpoints shipped in ``tac_ecg_hf/checkpoints/<org>/<name>/``.
"""

from .bundled import (
    CHECKPOINTS_ROOT,
    BundledFile,
    bundled_commit_hash,
    bundled_files,
    bundled_path,
    bundled_repo_ids,
    push_bundled,
    seed_hf_cache,
)
from .errors import HubAccessError, HubErrorKind, hub_errors, translate_hub_error
from .resolve import resolve_file, resolve_repo

__all__ = [
    "CHECKPOINTS_ROOT",
    "BundledFile",
    "HubAccessError",
    "HubErrorKind",
    "bundled_commit_hash",
    "bundled_files",
    "bundled_path",
    "bundled_repo_ids",
    "hub_errors",
    "push_bundled",
    "resolve_file",
    "resolve_repo",
    "seed_hf_cache",
    "translate_hub_error",
]
