"""One-line messages for Hub failures, from huggingface_hub's typed exceptions.

:func:`describe_hub_error` says what went wrong and how to fix it, or returns ``None`` when an exception is not a
Hub failure. It looks at the exception and at what it was raised from (``__cause__``/``__context__``), which is
where transformers and PEFT keep the huggingface_hub error when they re-raise it as an ``OSError``; it never reads
their message texts. Functions of this package raise :class:`HubAccessError` with that message, chained to the
original error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx2
from huggingface_hub import constants
from huggingface_hub.errors import (
    DisabledRepoError,
    FileMetadataError,
    GatedRepoError,
    HfHubHTTPError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    RevisionResolutionError,
)
from huggingface_hub.file_download import repo_folder_name

__all__ = ["HubAccessError", "describe_hub_error", "hub_errors", "is_hub_unavailable"]

# What huggingface_hub 2.4 raises when no answer comes back: httpx2's ConnectError, timeouts, proxy and network
# errors are all TransportErrors; the builtins cover sockets used directly. OfflineModeIsEnabled is a
# ConnectionError too, and is told apart first.
_CONNECTION_ERRORS = (httpx2.TransportError, ConnectionError, TimeoutError)


class HubAccessError(RuntimeError):
    """A Hub download or upload failed; the message says what and how to fix it, the huggingface_hub error is
    the ``__cause__``."""


def _chain(err: BaseException) -> list[BaseException]:
    """``err``, then what it was raised from or during, depth first, each once."""
    out: list[BaseException] = []
    todo = [err]
    while todo:
        cur = todo.pop(0)
        if cur is not None and all(cur is not seen for seen in out):
            out.append(cur)
            todo[:0] = [cur.__cause__, cur.__context__]
    return out


def _origin(url) -> str | None:
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def _endpoint(chain: list[BaseException], endpoint: str | None) -> str:
    """The Hub that answered (or did not): the URL of the failed request, else ``endpoint``, else HF_ENDPOINT."""
    for err in chain:
        # an HfHubHTTPError's own .request is unset (httpx2.HTTPError.__init__ clears it): use its response's
        owner = err.response if isinstance(err, HfHubHTTPError) else err
        with contextlib.suppress(RuntimeError, AttributeError):  # httpx2 raises RuntimeError when no request is set
            if isinstance(owner, (httpx2.Response, httpx2.RequestError)) and _origin(owner.request.url):
                return _origin(owner.request.url)
    return (endpoint or constants.ENDPOINT).rstrip("/")


def _requested_file(err: HfHubHTTPError) -> str | None:
    """The file of a failed ``.../resolve/<revision>/<file>`` request (the Hub's URL scheme)."""
    path = urlsplit(str(err.response.url)).path
    _, sep, rest = path.partition("/resolve/")
    return unquote(rest.split("/", 1)[1]) if sep and "/" in rest else None


def _cache_folder(repo_id: str | None) -> Path:
    cache = Path(constants.HF_HUB_CACHE)
    return cache / repo_folder_name(repo_id=repo_id, repo_type="model") if repo_id else cache


# The kind of failure each typed error stands for; the first match in this order wins (subclasses first).
_KINDS = (
    (GatedRepoError, "gated"),
    (DisabledRepoError, "disabled"),
    (RepositoryNotFoundError, "repo_not_found"),
    (RevisionNotFoundError, "revision_not_found"),
    (RemoteEntryNotFoundError, "entry_not_found"),
    (HfHubHTTPError, "http"),
    (IncompleteSnapshotError, "incomplete"),
    (OfflineModeIsEnabled, "offline"),
    (_CONNECTION_ERRORS, "unreachable"),
    (FileMetadataError, "not_a_hub"),
)


def _classify(err: BaseException) -> tuple[str, BaseException] | None:
    """(kind, deciding exception) of a Hub failure, or None. The first Hub error met walking from ``err`` to what it
    was raised from decides -- a later one is only context (``create_repo(exist_ok=True)`` raises its 401 while
    handling a 404, for instance) -- except that a cache miss is explained by what caused it, if anything did."""
    chain = _chain(err)
    for i, cur in enumerate(chain):
        kind = next((kind for types, kind in _KINDS if isinstance(cur, types)), None)
        if kind is not None:
            return kind, cur
        if isinstance(cur, (LocalEntryNotFoundError, RevisionResolutionError)):
            for deeper in chain[i + 1:]:
                cause = _classify(deeper)
                if cause is not None:
                    return cause
            return ("offline" if constants.is_offline_mode() else "not_cached"), cur
    return None


def describe_hub_error(
    err: BaseException, repo_id: str | None = None, revision: str | None = None, *, endpoint: str | None = None
) -> str | None:
    """A one-line message saying what failed and how to fix it, or ``None`` if ``err`` is not a Hub failure.

    Handles ``GatedRepoError``, ``RepositoryNotFoundError``, ``RevisionNotFoundError``, ``RemoteEntryNotFoundError``,
    ``DisabledRepoError``, other ``HfHubHTTPError`` by status (401/403, 429, 5xx), offline mode
    (``OfflineModeIsEnabled``, or ``LocalEntryNotFoundError`` with ``HF_HUB_OFFLINE=1``), an incomplete cached
    snapshot, connection errors and timeouts, ``local_files_only`` cache misses and an endpoint that is not a Hub
    (``FileMetadataError``). ``repo_id``/``revision``/``endpoint`` name what was asked for in the message.
    """
    found = _classify(err)
    if found is None:
        return None
    kind, cur = found
    where = _endpoint(_chain(err), endpoint)
    repo = f"'{repo_id}'" if repo_id else "the repository"
    rev = revision or "main"
    login = "log in with `hf auth login` or set HF_TOKEN"
    cache = _cache_folder(repo_id)
    if kind == "gated":
        return f"{repo} on {where} is gated: request access on its page, then {login}."
    if kind == "disabled":
        return f"{repo} on {where} has been disabled by its owner; use another repository."
    if kind == "repo_not_found":
        return f"repository {repo} not found on {where}; check the id, or {login} if it is private."
    if kind == "revision_not_found":
        return f"revision '{rev}' not found in {repo} on {where}; use an existing branch, tag or commit id."
    if kind == "entry_not_found":
        name = _requested_file(cur)
        what = f"file {name!r}" if name else "a requested file"
        return f"{what} not found in {repo} at revision '{rev}' on {where}."
    if kind == "incomplete":
        return (f"the cached copy of {repo} at {cur.snapshot_path} lacks files and the Hub cannot be reached; "
                "run once online to complete it.")
    if kind == "offline":
        return (f"HF_HUB_OFFLINE=1 and {repo} (revision '{rev}') is not in the cache at {cache}; "
                "run once online or point to a local directory.")
    if kind == "unreachable":
        return (f"cannot reach {where} to fetch {repo} (revision '{rev}'): {type(cur).__name__}. Check the network "
                "and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the cache.")
    if kind == "not_a_hub":
        return f"{where} answered without the headers of a Hugging Face Hub; check HF_ENDPOINT."
    if kind == "not_cached":
        return (f"local_files_only=True and {repo} (revision '{rev}') is not in the cache at {cache}; "
                "allow downloads or point to a local directory.")
    status = cur.response.status_code
    if status in (401, 403):
        return f"{where} refused access to {repo} (HTTP {status}); {login} with a token that has access."
    if status == 429:
        return f"{where} is rate-limiting requests (HTTP 429) for {repo}; wait a minute and retry."
    if status >= 500:
        return f"{where} answered HTTP {status} for {repo}; retry later, or set HF_HUB_OFFLINE=1 to use the cache."
    detail = f": {cur.server_message.strip()}" if cur.server_message else ""
    return f"the request for {repo} on {where} failed with HTTP {status}{detail}."


def is_hub_unavailable(err: BaseException) -> bool:
    """Whether ``err`` means the Hub could not provide a repository at all -- unreachable, offline or
    ``local_files_only`` without a cache, unknown repository, server error -- so that a bundled copy of the same id
    may stand in. A missing revision or file, or a refused token, is not: those are answered as errors."""
    found = _classify(err)
    if found is None:
        return False
    kind, cur = found
    if kind == "http":
        return cur.response.status_code >= 500
    return kind in ("repo_not_found", "offline", "unreachable", "not_cached", "incomplete", "not_a_hub")


@contextlib.contextmanager
def hub_errors(
    repo_id: str | None = None, revision: str | None = None, *, endpoint: str | None = None
) -> Iterator[None]:
    """Re-raise a Hub failure inside the block as :class:`HubAccessError` (see :func:`describe_hub_error`), chained
    to the original; other exceptions pass unchanged."""
    try:
        yield
    except HubAccessError:
        raise
    except Exception as err:
        message = describe_hub_error(err, repo_id, revision, endpoint=endpoint)
        if message is None:
            raise
        raise HubAccessError(message) from err
