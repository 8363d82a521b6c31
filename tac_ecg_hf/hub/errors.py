"""Readable errors for Hugging Face Hub access.

``huggingface_hub`` raises precise but verbose exceptions, and ``transformers``/``peft`` wrap
them again (``OSError``/``ValueError`` with their own text, the original kept as ``__cause__``
or ``__context__``). :func:`translate_hub_error` walks that chain and turns it into one
:class:`HubAccessError` whose message says what went wrong and what to do::

    from tac_ecg_hf.hub import hub_errors

    with hub_errors("tac-ecg/resnet-cetp", revision):
        model = AutoModel.from_pretrained("tac-ecg/resnet-cetp", revision=revision)

Errors that have nothing to do with the Hub pass through unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

try:  # new in huggingface_hub 1.x/2.x
    from huggingface_hub.errors import RevisionResolutionError
except ImportError:  # pragma: no cover
    RevisionResolutionError = ()  # type: ignore[assignment,misc]

try:
    from huggingface_hub.errors import FileMetadataError
except ImportError:  # pragma: no cover
    FileMetadataError = ()  # type: ignore[assignment,misc]

try:
    from huggingface_hub.errors import DisabledRepoError
except ImportError:  # pragma: no cover
    DisabledRepoError = ()  # type: ignore[assignment,misc]

__all__ = ["HubAccessError", "HubErrorKind", "hub_errors", "translate_hub_error"]


class HubErrorKind:
    """Values of :attr:`HubAccessError.kind`."""

    UNREACHABLE = "unreachable"
    REPO_NOT_FOUND = "repo_not_found"
    GATED = "gated"
    REVISION_NOT_FOUND = "revision_not_found"
    ENTRY_NOT_FOUND = "entry_not_found"
    OFFLINE_NOT_CACHED = "offline_not_cached"
    NOT_CACHED = "not_cached"  # local_files_only=True without HF_HUB_OFFLINE
    UNAUTHORIZED = "unauthorized"
    SERVER_ERROR = "server_error"
    HTTP_ERROR = "http_error"


class HubAccessError(RuntimeError):
    """A Hub download/upload failed; ``str(err)`` explains why and what to do.

    Attributes: ``kind`` (see :class:`HubErrorKind`), ``repo_id``, ``revision``, ``filename``,
    ``endpoint``, ``cache_dir``. The original exception is chained as ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = HubErrorKind.HTTP_ERROR,
        repo_id: str | None = None,
        revision: str | None = None,
        filename: str | None = None,
        endpoint: str | None = None,
        cache_dir: str | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.repo_id = repo_id
        self.revision = revision
        self.filename = filename
        self.endpoint = endpoint
        self.cache_dir = cache_dir


# ---------------------------------------------------------------------------------------------
# Exception classification
# ---------------------------------------------------------------------------------------------


def _connection_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [socket.gaierror, socket.timeout, TimeoutError, ConnectionRefusedError,
                                        ConnectionResetError, ConnectionAbortedError]
    with contextlib.suppress(ImportError):
        import httpx2

        types += [httpx2.TransportError]  # ConnectError, ConnectTimeout, ReadTimeout, ProxyError, NetworkError...
    with contextlib.suppress(ImportError):
        import httpx  # type: ignore[import-not-found]

        types += [httpx.TransportError]
    with contextlib.suppress(ImportError):
        import requests

        types += [requests.exceptions.ConnectionError, requests.exceptions.Timeout]
    with contextlib.suppress(ImportError):
        import urllib3

        types += [urllib3.exceptions.NewConnectionError, urllib3.exceptions.MaxRetryError]
    return tuple(types)


_CONNECTION_ERRORS: tuple[type[BaseException], ...] | None = None


def _is_connection_error(exc: BaseException) -> bool:
    global _CONNECTION_ERRORS
    if _CONNECTION_ERRORS is None:
        _CONNECTION_ERRORS = _connection_error_types()
    if isinstance(exc, OfflineModeIsEnabled):  # a ConnectionError subclass, handled separately
        return False
    return isinstance(exc, _CONNECTION_ERRORS)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` followed by its causes/contexts (breadth first, without repeats)."""
    seen: set[int] = set()
    out: list[BaseException] = []
    queue = [exc]
    while queue:
        cur = queue.pop(0)
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        out.append(cur)
        queue.extend([cur.__cause__, cur.__context__])  # type: ignore[list-item]
    return out


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    line = f"{type(exc).__name__}: {line}" if type(exc).__name__ not in line else line
    return line if len(line) <= limit else line[: limit - 3] + "..."


_RESOLVE_URL = re.compile(r"/resolve/[^/]+/(?P<filename>[^?#]+)")
_TF_MISSING_FILE = re.compile(
    r"does not appear to have (?:a file named|files named) (?P<names>.+?)(?:\. |\.$| but | and thus |$)", re.S
)
_PEFT_MISSING = re.compile(r"Can't find '(?P<filename>[^']+)' at '")


def _tf_missing_names(chain: list[BaseException]) -> str | None:
    """File name(s) from transformers' "X does not appear to have a file named a or b." message."""
    for err in chain:
        match = _TF_MISSING_FILE.search(str(err))
        if match:
            names = [n.strip(" '\"()") for n in re.split(r",| or ", match.group("names"))]
            names = [n for n in names if n]
            if names:
                return " or ".join(names)
    return None


def _filename_from(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    url = str(getattr(response, "url", "") or "")
    match = _RESOLVE_URL.search(url)
    if match:
        from urllib.parse import unquote

        return unquote(match.group("filename"))
    return None


def _classify(exc: BaseException) -> tuple[str, BaseException, str | None] | None:
    """(kind, the exception that decided it, filename if known) for a Hub-related error chain."""
    chain = _chain(exc)
    offline = hf_constants.is_offline_mode()

    # 1. Offline mode / local-files-only without a usable cache.
    for err in chain:
        if isinstance(err, OfflineModeIsEnabled):
            local_only = "local_files_only" in str(err)
            kind = HubErrorKind.OFFLINE_NOT_CACHED if (offline or not local_only) else HubErrorKind.NOT_CACHED
            return kind, err, None
    if offline:
        for err in chain:
            if isinstance(err, (LocalEntryNotFoundError, RevisionResolutionError)):
                return HubErrorKind.OFFLINE_NOT_CACHED, err, None
            if isinstance(err, OSError) and "couldn't connect to" in str(err):
                return HubErrorKind.OFFLINE_NOT_CACHED, err, None

    # 2. The Hub answered: gated / missing repo / missing revision / missing file / HTTP error.
    for err in chain:
        if isinstance(err, GatedRepoError):
            return HubErrorKind.GATED, err, None
    for err in chain:
        if isinstance(err, RepositoryNotFoundError):
            return HubErrorKind.REPO_NOT_FOUND, err, None
    for err in chain:
        if isinstance(err, RevisionNotFoundError):
            return HubErrorKind.REVISION_NOT_FOUND, err, None
    for err in chain:
        if isinstance(err, EntryNotFoundError) and not isinstance(err, LocalEntryNotFoundError):
            # transformers' wrapper lists every file it tried; prefer that over the last URL.
            return HubErrorKind.ENTRY_NOT_FOUND, err, _tf_missing_names(chain) or _filename_from(err)

    # 3. The endpoint could not be reached at all (or is not a Hub: answers lack the Hub headers).
    for err in chain:
        if _is_connection_error(err) or isinstance(err, FileMetadataError):
            return HubErrorKind.UNREACHABLE, err, None

    for err in chain:
        if isinstance(err, HfHubHTTPError):
            status = _status(err) or 0
            if status in (401, 403) or isinstance(err, DisabledRepoError):
                return HubErrorKind.UNAUTHORIZED, err, None
            if status >= 500:
                return HubErrorKind.SERVER_ERROR, err, None
            return HubErrorKind.HTTP_ERROR, err, None

    # 4. Cache misses that were not caused by a connection error.
    for err in chain:
        if isinstance(err, (LocalEntryNotFoundError, RevisionResolutionError)):
            text = str(err)
            if "local_files_only" in text or "outgoing traffic has been disabled" in text:
                return HubErrorKind.NOT_CACHED, err, None
            return HubErrorKind.UNREACHABLE, err, None

    # 5. transformers / peft re-worded errors (original exception not chained).
    for err in chain:
        text = str(err)
        if "You are trying to access a gated repo" in text:
            return HubErrorKind.GATED, err, None
        if "is not a local folder and is not a valid model identifier" in text:
            return HubErrorKind.REPO_NOT_FOUND, err, None
        if "is not a valid git identifier" in text:
            return HubErrorKind.REVISION_NOT_FOUND, err, None
        names = _tf_missing_names([err])
        if names:
            return HubErrorKind.ENTRY_NOT_FOUND, err, names
        if "We couldn't connect to" in text or "offline mode is enabled" in text:
            return (HubErrorKind.OFFLINE_NOT_CACHED if offline else HubErrorKind.UNREACHABLE), err, None
        match = _PEFT_MISSING.search(text)
        if match:
            return HubErrorKind.ENTRY_NOT_FOUND, err, match.group("filename")
    return None


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


def _cache_location(cache_dir: str | os.PathLike | None, repo_id: str | None, repo_type: str) -> str:
    root = Path(cache_dir) if cache_dir is not None else Path(hf_constants.HF_HUB_CACHE)
    if repo_id:
        prefix = {"model": "models", "dataset": "datasets", "space": "spaces"}.get(repo_type, repo_type + "s")
        return str(root / f"{prefix}--{repo_id.replace('/', '--')}")
    return str(root)


def translate_hub_error(
    exc: BaseException,
    repo_id: str | None = None,
    revision: str | None = None,
    *,
    filename: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    repo_type: str = "model",
) -> HubAccessError | None:
    """Return a :class:`HubAccessError` describing ``exc``, or ``None`` if it is not a Hub error."""
    if isinstance(exc, HubAccessError):
        return exc
    found = _classify(exc)
    if found is None:
        return None
    kind, err, found_filename = found
    endpoint = (endpoint or hf_constants.ENDPOINT).rstrip("/")
    rev = revision or "main"
    repo = f"'{repo_id}'" if repo_id else "the repository"
    filename = filename or found_filename
    cache = _cache_location(cache_dir, repo_id, repo_type)

    if kind == HubErrorKind.UNREACHABLE:
        msg = (
            f"cannot reach {endpoint} to fetch {repo} (revision '{rev}'): {_first_line(err)}. "
            "Check the network / HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the cache"
            f" ({cache})."
        )
    elif kind == HubErrorKind.REPO_NOT_FOUND:
        msg = (
            f"repository {repo} not found on {endpoint}; check the id or log in "
            "(`hf auth login` or HF_TOKEN) if it is private."
        )
    elif kind == HubErrorKind.GATED:
        msg = (
            f"repository {repo} on {endpoint} is gated; request access on its page, then log in "
            "(`hf auth login` or HF_TOKEN)."
        )
    elif kind == HubErrorKind.REVISION_NOT_FOUND:
        msg = f"revision '{rev}' not found in {repo} on {endpoint}; use an existing branch, tag or commit id."
    elif kind == HubErrorKind.ENTRY_NOT_FOUND:
        if filename and " or " in filename:
            what = "none of the files " + ", ".join(f"'{n}'" for n in filename.split(" or ")) + " was"
            msg = f"{what} found in {repo} at revision '{rev}' on {endpoint}."
        else:
            what = f"file '{filename}'" if filename else "a requested file"
            msg = f"{what} not found in {repo} at revision '{rev}' on {endpoint}."
    elif kind == HubErrorKind.OFFLINE_NOT_CACHED:
        msg = (
            f"HF_HUB_OFFLINE=1 and {repo} (revision '{rev}') is not in the cache at {cache}; "
            "run once online or point to a local directory."
        )
    elif kind == HubErrorKind.NOT_CACHED:
        msg = (
            f"local_files_only=True and {repo} (revision '{rev}') is not in the cache at {cache}; "
            "run once online or point to a local directory."
        )
    elif kind == HubErrorKind.UNAUTHORIZED:
        msg = (
            f"access to {repo} on {endpoint} was refused (HTTP {_status(err)}); log in with "
            "`hf auth login` or set HF_TOKEN to a token with access."
        )
    elif kind == HubErrorKind.SERVER_ERROR:
        msg = (
            f"{endpoint} answered HTTP {_status(err)} for {repo}; retry later, or set HF_HUB_OFFLINE=1 "
            "to use the cache."
        )
    else:
        msg = f"Hub request for {repo} (revision '{rev}') on {endpoint} failed: {_first_line(err)}"
        if _status(err) == 404:
            msg += " (no Hub error code: does HF_ENDPOINT point to a Hugging Face Hub?)"
    return HubAccessError(
        msg,
        kind=kind,
        repo_id=repo_id,
        revision=revision,
        filename=filename,
        endpoint=endpoint,
        cache_dir=cache,
    )


@contextlib.contextmanager
def hub_errors(
    repo_id: str | None = None,
    revision: str | None = None,
    *,
    filename: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    repo_type: str = "model",
) -> Iterator[None]:
    """Context manager (also a decorator) re-raising Hub failures as :class:`HubAccessError`.

    The original exception stays available as ``__cause__``; non-Hub exceptions pass through.
    """
    try:
        yield
    except HubAccessError:
        raise
    except Exception as exc:
        translated = translate_hub_error(
            exc, repo_id, revision, filename=filename, endpoint=endpoint, cache_dir=cache_dir, repo_type=repo_type
        )
        if translated is None:
            raise
        raise translated from exc
