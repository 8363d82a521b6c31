"""Find a checkpoint folder: local directory, then the Hub (or its cache), then bundled copies."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .bundled import bundled_path
from .errors import HubAccessError, HubErrorKind, hub_errors

__all__ = ["resolve_repo", "resolve_file"]

logger = logging.getLogger(__name__)

# Failures after which a bundled copy may stand in for the Hub repo.
_BUNDLED_FALLBACK_KINDS = {
    HubErrorKind.UNREACHABLE,
    HubErrorKind.OFFLINE_NOT_CACHED,
    HubErrorKind.NOT_CACHED,
    HubErrorKind.REPO_NOT_FOUND,
    HubErrorKind.SERVER_ERROR,
}


def _local_dir(repo_id: str | os.PathLike) -> Path | None:
    path = Path(repo_id).expanduser()
    return path if path.is_dir() else None


def _bundled(repo_id: str, revision: str | None, subfolder: str | None, bundled_root) -> Path | None:
    if revision not in (None, "main"):
        return None
    path = bundled_path(str(repo_id), bundled_root)
    if path is None:
        return None
    target = path / subfolder if subfolder else path
    return target if target.exists() else None


def resolve_repo(
    repo_id: str | os.PathLike,
    revision: str | None = None,
    subfolder: str | None = None,
    allow_patterns: str | list[str] | None = None,
    *,
    ignore_patterns: str | list[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
    local_files_only: bool = False,
    repo_type: str = "model",
    use_bundled: bool = True,
    prefer_bundled: bool = False,
    bundled_root: str | os.PathLike | None = None,
) -> Path:
    """Local folder holding ``repo_id`` (optionally only ``subfolder``), downloading if needed.

    Order: an existing local directory ``repo_id``; with ``prefer_bundled=True`` a bundled
    checkpoint; ``huggingface_hub.snapshot_download`` (which uses the cache, and only the cache
    with ``HF_HUB_OFFLINE=1``/``local_files_only=True``); finally, when the Hub cannot provide it
    (unreachable, offline without cache, repository unknown) and ``revision`` is ``None``/``main``,
    a bundled checkpoint of the same id (``use_bundled=True``).

    ``subfolder`` (e.g. ``"adapters/af"``) limits the download to that folder (unless
    ``allow_patterns`` is given) and the returned path points into it.

    Raises:
        HubAccessError: with a readable message (see :mod:`tac_ecg_hf.hub.errors`).
    """
    sub = subfolder.strip("/") if subfolder else None
    local = _local_dir(repo_id)
    if local is not None:
        target = local / sub if sub else local
        if not target.is_dir():
            raise HubAccessError(
                f"local directory {local} has no subfolder '{sub}'",
                kind=HubErrorKind.ENTRY_NOT_FOUND, repo_id=str(repo_id), filename=sub,
            )
        return target

    repo_id = str(repo_id)
    if use_bundled and prefer_bundled:
        bundled = _bundled(repo_id, revision, sub, bundled_root)
        if bundled is not None:
            return bundled

    if sub and allow_patterns is None:
        allow_patterns = [f"{sub}/*"]
    from huggingface_hub import snapshot_download

    try:
        with hub_errors(repo_id, revision, endpoint=endpoint, cache_dir=cache_dir, repo_type=repo_type):
            path = Path(
                snapshot_download(
                    repo_id,
                    revision=revision,
                    repo_type=repo_type,
                    allow_patterns=allow_patterns,
                    ignore_patterns=ignore_patterns,
                    cache_dir=cache_dir,
                    token=token,
                    endpoint=endpoint,
                    local_files_only=local_files_only,
                )
            )
    except HubAccessError as err:
        if use_bundled and err.kind in _BUNDLED_FALLBACK_KINDS:
            bundled = _bundled(repo_id, revision, sub, bundled_root)
            if bundled is not None:
                logger.warning("%s Using the checkpoint bundled with tac-ecg-hf instead: %s", err, bundled)
                return bundled
        raise

    target = path / sub if sub else path
    if sub and not target.is_dir():
        raise HubAccessError(
            f"folder '{sub}' not found in '{repo_id}' at revision '{revision or 'main'}'.",
            kind=HubErrorKind.ENTRY_NOT_FOUND, repo_id=repo_id, revision=revision, filename=sub,
        )
    return target


def resolve_file(
    repo_id: str | os.PathLike,
    filename: str,
    revision: str | None = None,
    subfolder: str | None = None,
    **kwargs,
) -> Path:
    """Local path of one file of ``repo_id`` (same lookup order and options as :func:`resolve_repo`).

    Goes through ``snapshot_download(allow_patterns=[file])`` rather than ``hf_hub_download``,
    so an unreachable endpoint fails at once instead of after ``hf_hub_download``'s retries.
    """
    rel = f"{subfolder.strip('/')}/{filename}" if subfolder else filename
    folder = resolve_repo(repo_id, revision, allow_patterns=[rel], **kwargs)
    path = folder / rel
    if not path.is_file():
        raise HubAccessError(
            f"file '{rel}' not found in '{repo_id}' at revision '{revision or 'main'}'.",
            kind=HubErrorKind.ENTRY_NOT_FOUND, repo_id=str(repo_id), revision=revision, filename=rel,
        )
    return path
