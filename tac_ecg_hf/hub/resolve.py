"""Find a model repo on disk: a local folder, the bundled copy, or the Hub through its cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..errors import InvalidArgumentError
from .bundled import bundled_path
from .errors import HubAccessError, describe_hub_error, is_hub_unavailable

__all__ = ["resolve_repo", "list_task_adapters", "task_adapters_in"]

logger = logging.getLogger(__name__)


def _prefer_bundled(revision: str | None) -> bool:
    return revision is None and not os.environ.get("TAC_ECG_PREFER_HUB")


def resolve_repo(
    repo_id: str | os.PathLike,
    revision: str | None = None,
    subfolder: str | None = None,
    *,
    allow_patterns: list[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
    local_files_only: bool = False,
    root: str | os.PathLike | None = None,
) -> Path:
    """The local folder of ``repo_id`` (or of its ``subfolder``):

    1. ``repo_id`` itself when it is an existing directory;
    2. the checkpoint bundled with the package under that id, by path (no cache involved), when no ``revision`` is
       asked for and ``TAC_ECG_PREFER_HUB`` is unset;
    3. else ``huggingface_hub.snapshot_download`` (only the files under ``subfolder``, or ``allow_patterns``), which
       uses the cache and honours ``HF_HUB_OFFLINE``/``local_files_only``;
    4. when that fails because the Hub cannot provide the repo (unreachable, offline and not cached, unknown id,
       server error) and no ``revision`` was asked for, the bundled copy stands in, with a ``logger.warning``.

    Raises:
        InvalidArgumentError: ``repo_id`` is neither a folder nor a valid repo id.
        HubAccessError: the Hub failed (message from :func:`~tac_ecg_hf.hub.describe_hub_error`), or the folder has
            no ``subfolder``.
    """
    sub = subfolder.strip("/") if subfolder else None
    name = os.fspath(repo_id)
    bundled = bundled_path(name, root) if revision in (None, "main") else None
    if Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
    elif bundled is not None and _prefer_bundled(revision):
        folder = bundled
    else:
        try:
            validate_repo_id(name)
        except HFValidationError:
            raise InvalidArgumentError(
                f"{name!r} is neither a folder nor a Hub repo id (org/name); check the path."
            ) from None
        if sub and allow_patterns is None:
            allow_patterns = [f"{sub}/*"]
        # imported here: it brings huggingface_hub's HfApi (0.2 s), which a bundled or local model does not need
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(name, revision=revision, allow_patterns=allow_patterns,
                                            cache_dir=cache_dir, token=token, endpoint=endpoint,
                                            local_files_only=local_files_only))
        except Exception as err:
            message = describe_hub_error(err, name, revision, endpoint=endpoint)
            if message is None:
                raise
            if bundled is None or not is_hub_unavailable(err):
                raise HubAccessError(message) from err
            logger.warning("%s Using the copy of '%s' bundled with tac-ecg-hf.", message, name)
            folder = bundled
    if sub and not (folder / sub).is_dir():
        raise HubAccessError(f"'{name}' (revision '{revision or 'main'}', at {folder}) has no folder '{sub}'.")
    return folder / sub if sub else folder


def task_adapters_in(folder: str | os.PathLike) -> list[str]:
    """Names of the task adapter folders of a repo folder: its direct, non-hidden subfolders holding an
    ``adapter_config.json``, sorted."""
    configs = Path(folder).glob("*/adapter_config.json")
    return sorted(p.parent.name for p in configs if not p.parent.name.startswith("."))


def list_task_adapters(repo_id_or_path: str | os.PathLike, revision: str | None = None, **kwargs) -> list[str]:
    """The task adapters of a repo -- a local folder, a bundled checkpoint, or a Hub repo (online, or offline from
    the cache) -- as :func:`task_adapters_in` lists them.

    A repo published the PEFT way (``peft_model.push_to_hub("me/x")`` writes each named adapter to
    ``me/x/<adapter>/``) is found like one pushed with :func:`~tac_ecg_hf.hub.push_run`. Only the
    ``adapter_config.json`` files are downloaded. ``kwargs`` go to :func:`resolve_repo`.
    """
    folder = resolve_repo(repo_id_or_path, revision, allow_patterns=["*/adapter_config.json"], **kwargs)
    return task_adapters_in(folder)
