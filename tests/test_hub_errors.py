"""describe_hub_error / HubAccessError: one-line messages from huggingface_hub's typed errors, raised by the real
clients (huggingface_hub, transformers, PEFT) against the test Hub, a closed port, or an empty offline cache."""

from __future__ import annotations

from pathlib import Path

import httpx2
import peft
import pytest
import transformers
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError
from support.local_hub import LocalHubServer, closed_port_endpoint, local_hub_env

from tac_ecg_hf.hub import HubAccessError, describe_hub_error, hub_errors, is_hub_unavailable, resolve_repo


@pytest.fixture(scope="module")
def hub():
    with LocalHubServer() as server:
        api = HfApi(endpoint=server.endpoint, token="t")
        api.create_repo("org/present")
        api.upload_file(path_or_fileobj=b'{"model_type": "bert"}', path_in_repo="config.json", repo_id="org/present")
        yield server
        assert server.errors == [], "\n".join(server.errors)


def _describe(call, repo_id="org/present", revision=None):
    with pytest.raises(Exception) as info:
        call()
    return info.value, describe_hub_error(info.value, repo_id, revision)


def test_missing_repo_revision_and_file(hub_env):
    where = hub_env.endpoint
    err, msg = _describe(lambda: snapshot_download("org/missing"), "org/missing")
    assert msg == (f"repository 'org/missing' not found on {where}; check the id, or log in with `hf auth login` or "
                   "set HF_TOKEN if it is private.")
    assert is_hub_unavailable(err)  # a bundled copy of that id may stand in
    err, msg = _describe(lambda: snapshot_download("org/present", revision="nope"), revision="nope")
    assert msg == f"revision 'nope' not found in 'org/present' on {where}; use an existing branch, tag or commit id."
    assert not is_hub_unavailable(err)
    err, msg = _describe(lambda: hf_hub_download("org/present", "sub/nope.json"))
    assert msg == f"file 'sub/nope.json' not found in 'org/present' at revision 'main' on {where}."
    assert not is_hub_unavailable(err)


def test_errors_wrapped_by_transformers_and_peft(hub_env):
    """transformers and PEFT re-raise the huggingface_hub error as OSError/ValueError; it stays their cause."""
    err, msg = _describe(lambda: transformers.AutoConfig.from_pretrained("org/missing"), "org/missing")
    assert isinstance(err, OSError) and msg.startswith("repository 'org/missing' not found on")
    err, msg = _describe(lambda: peft.PeftConfig.from_pretrained("org/present"))
    assert isinstance(err, ValueError) and msg.startswith("file 'adapter_config.json' not found in 'org/present'")


def test_unreachable_endpoint(tmp_path, monkeypatch):
    dead = closed_port_endpoint()
    local_hub_env(monkeypatch, dead, cache_dir=tmp_path / "hf_home", offline=False)
    err, msg = _describe(lambda: snapshot_download("org/present"))
    assert msg == (f"cannot reach {dead} to fetch 'org/present' (revision 'main'): ConnectError. Check the network "
                   "and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the cache.")
    assert is_hub_unavailable(err)
    err, msg = _describe(lambda: HfApi().model_info("org/present"))
    assert isinstance(err, httpx2.ConnectError) and msg.startswith(f"cannot reach {dead} to fetch 'org/present'")


def test_offline_and_local_files_only_without_cache(hub_env, monkeypatch):
    cache = Path(constants.HF_HUB_CACHE) / "models--org--present"
    _, msg = _describe(lambda: snapshot_download("org/present", local_files_only=True))
    assert msg == (f"local_files_only=True and 'org/present' (revision 'main') is not in the cache at {cache}; "
                   "allow downloads or point to a local directory.")
    local_hub_env(monkeypatch, offline=True)
    n = len(hub_env.requests)
    expected = (f"HF_HUB_OFFLINE=1 and 'org/present' (revision 'main') is not in the cache at {cache}; "
                "run once online or point to a local directory.")
    for call in (lambda: snapshot_download("org/present"),
                 lambda: transformers.AutoModel.from_pretrained("org/present"),
                 lambda: peft.PeftConfig.from_pretrained("org/present")):
        err, msg = _describe(call)
        assert msg == expected and is_hub_unavailable(err)
    assert len(hub_env.requests) == n  # offline: nothing reached the server


def test_refused_token_on_push(tmp_path, monkeypatch):
    with LocalHubServer(require_token=True) as hub:
        local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home", token=None)
        err, msg = _describe(lambda: HfApi(token=False).create_repo("org/x"), "org/x")
        assert msg == (f"{hub.endpoint} refused access to 'org/x' (HTTP 401); log in with `hf auth login` or set "
                       "HF_TOKEN with a token that has access.")
        assert not is_hub_unavailable(err)


@pytest.mark.parametrize(
    "status, error_type, expected",
    [
        (403, GatedRepoError, "'org/x' on {e} is gated: request access on its page, then log in with `hf auth login`"),
        (403, HfHubHTTPError, "{e} refused access to 'org/x' (HTTP 403); log in"),
        (429, HfHubHTTPError, "{e} is rate-limiting requests (HTTP 429) for 'org/x'; wait a minute and retry."),
        (503, HfHubHTTPError, "{e} answered HTTP 503 for 'org/x'; retry later, or set HF_HUB_OFFLINE=1"),
    ],
)
def test_http_statuses(status, error_type, expected):
    """Answers the test Hub never gives, built as huggingface_hub builds them (an error around the response)."""
    endpoint = "https://hub.example"
    response = httpx2.Response(status, request=httpx2.Request("GET", f"{endpoint}/api/models/org/x"))
    msg = describe_hub_error(error_type("boom", response=response), "org/x")
    assert msg.startswith(expected.format(e=endpoint)), msg
    assert is_hub_unavailable(error_type("boom", response=response)) == (status == 503)


def test_resolve_repo_raises_hub_access_error_chained(hub_env):
    with pytest.raises(HubAccessError, match=r"^repository 'org/missing' not found on http://127\.0\.0\.1:") as info:
        resolve_repo("org/missing")
    assert type(info.value.__cause__).__name__ == "RepositoryNotFoundError"
    with pytest.raises(HubAccessError, match=r"^'org/present' \(revision 'main', at .*\) has no folder 'ad'\.$"):
        resolve_repo("org/present", subfolder="ad")


def test_resolve_repo_of_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match=r"is neither a folder nor a Hub repo id \(org/name\); check the path\.$"):
        resolve_repo(str(tmp_path / "no" / "such" / "run"))


def test_non_hub_errors_pass_through():
    assert describe_hub_error(ValueError("unrelated")) is None
    assert describe_hub_error(KeyError("k")) is None
    with pytest.raises(ZeroDivisionError):
        with hub_errors("org/x"):
            1 / 0
