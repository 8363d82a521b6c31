"""HubAccessError translation: unreachable endpoint, missing repo/revision/file, offline without cache."""

from __future__ import annotations

from pathlib import Path

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

from huggingface_hub import HfApi  # noqa: E402
from huggingface_hub import constants as hf_constants  # noqa: E402

from tac_ecg_hf.hub import (  # noqa: E402
    HubAccessError,
    HubErrorKind,
    hub_errors,
    resolve_file,
    resolve_repo,
    translate_hub_error,
)
from tac_ecg_hf.testing.local_hub import LocalHubServer, closed_port_endpoint, local_hub_env  # noqa: E402


@pytest.fixture(scope="module")
def hub():
    with LocalHubServer() as server:
        api = HfApi(endpoint=server.endpoint, token="t")
        api.create_repo("org/present")
        api.upload_file(path_or_fileobj=b'{"x": 1}', path_in_repo="config.json", repo_id="org/present")
        api.upload_file(path_or_fileobj=b"a", path_in_repo="adapters/af/adapter_config.json", repo_id="org/present")
        yield server
        assert server.errors == []


@pytest.fixture
def hub_env(hub, tmp_path, monkeypatch):
    local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home")
    return hub


def _tiny_bert_repo(hub: LocalHubServer, repo_id: str):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=99
    )
    model = transformers.BertModel(cfg)
    model.push_to_hub(repo_id)
    return model


# ---------------------------------------------------------------------------------------------


def test_resolve_repo_happy_paths(hub_env, tmp_path):
    path = resolve_repo("org/present")
    assert (path / "config.json").read_bytes() == b'{"x": 1}'
    sub = resolve_repo("org/present", subfolder="adapters/af")
    assert sub.name == "af" and (sub / "adapter_config.json").is_file()
    assert resolve_file("org/present", "config.json").read_bytes() == b'{"x": 1}'
    assert resolve_file("org/present", "adapter_config.json", subfolder="adapters/af").is_file()
    # an existing local directory wins, no Hub call
    local = tmp_path / "org" / "present"
    local.mkdir(parents=True)
    n = len(hub_env.requests)
    assert resolve_repo(str(local)) == local
    assert len(hub_env.requests) == n


def test_unreachable_endpoint(tmp_path, monkeypatch):
    dead = closed_port_endpoint()
    local_hub_env(monkeypatch, dead, cache_dir=tmp_path / "hf_home")
    with pytest.raises(HubAccessError) as info:
        resolve_repo("org/present", use_bundled=False)
    err = info.value
    assert err.kind == HubErrorKind.UNREACHABLE
    msg = str(err)
    assert msg.startswith(f"cannot reach {dead}")
    assert "HF_ENDPOINT" in msg and "HF_HUB_OFFLINE=1" in msg
    assert isinstance(err.__cause__, Exception)

    # direct API call (httpx2 ConnectError) through the context manager
    with pytest.raises(HubAccessError, match=r"cannot reach http://127\.0\.0\.1:\d+ to fetch 'org/present'"):
        with hub_errors("org/present", endpoint=dead):
            HfApi().model_info("org/present")


def test_missing_repo(hub_env):
    with pytest.raises(HubAccessError) as info:
        resolve_repo("org/missing", use_bundled=False)
    assert info.value.kind == HubErrorKind.REPO_NOT_FOUND
    assert str(info.value).startswith(f"repository 'org/missing' not found on {hub_env.endpoint}; check the id or log in")


def test_missing_repo_through_transformers(hub_env):
    transformers = pytest.importorskip("transformers")
    with pytest.raises(HubAccessError) as info:
        with hub_errors("org/missing"):
            transformers.AutoConfig.from_pretrained("org/missing")
    assert info.value.kind == HubErrorKind.REPO_NOT_FOUND
    assert "repository 'org/missing' not found" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)  # transformers' wrapper is kept as the cause


def test_missing_revision(hub_env):
    with pytest.raises(HubAccessError) as info:
        resolve_repo("org/present", revision="nope")
    assert info.value.kind == HubErrorKind.REVISION_NOT_FOUND
    assert str(info.value).startswith("revision 'nope' not found in 'org/present'")

    transformers = pytest.importorskip("transformers")
    with pytest.raises(HubAccessError, match="revision 'nope' not found in 'org/present'"):
        with hub_errors("org/present", "nope"):
            transformers.AutoConfig.from_pretrained("org/present", revision="nope")


def test_missing_file(hub_env):
    with pytest.raises(HubAccessError) as info:
        with hub_errors("org/present"):
            huggingface_hub.hf_hub_download("org/present", "weights.safetensors")
    assert info.value.kind == HubErrorKind.ENTRY_NOT_FOUND
    assert str(info.value).startswith("file 'weights.safetensors' not found in 'org/present' at revision 'main'")
    with pytest.raises(HubAccessError, match="file 'nope.json' not found in 'org/present'"):
        resolve_file("org/present", "nope.json")
    with pytest.raises(HubAccessError, match="folder 'adapters/none' not found in 'org/present'"):
        resolve_repo("org/present", subfolder="adapters/none")


def test_missing_file_through_peft(hub_env):
    peft = pytest.importorskip("peft")
    model = _tiny_bert_repo(hub_env, "org/base-no-adapter")
    with pytest.raises(HubAccessError) as info:
        with hub_errors("org/base-no-adapter"):
            peft.PeftModel.from_pretrained(model, "org/base-no-adapter")
    assert info.value.kind == HubErrorKind.ENTRY_NOT_FOUND
    assert "adapter_config.json" in str(info.value)


def test_offline_with_empty_cache(hub_env, tmp_path, monkeypatch):
    local_hub_env(monkeypatch, None, offline=True)
    assert huggingface_hub.is_offline_mode()
    n = len(hub_env.requests)
    with pytest.raises(HubAccessError) as info:
        resolve_repo("org/present", use_bundled=False)
    err = info.value
    assert err.kind == HubErrorKind.OFFLINE_NOT_CACHED
    cache = Path(hf_constants.HF_HUB_CACHE) / "models--org--present"
    assert str(err) == (
        f"HF_HUB_OFFLINE=1 and 'org/present' (revision 'main') is not in the cache at {cache}; "
        "run once online or point to a local directory."
    )

    transformers = pytest.importorskip("transformers")
    with pytest.raises(HubAccessError) as info:
        with hub_errors("org/present"):
            transformers.AutoModel.from_pretrained("org/present")
    assert info.value.kind == HubErrorKind.OFFLINE_NOT_CACHED
    assert "HF_HUB_OFFLINE=1 and 'org/present'" in str(info.value)
    assert len(hub_env.requests) == n  # nothing reached the server


def test_offline_after_download_uses_cache(hub_env, monkeypatch):
    online = resolve_repo("org/present")
    local_hub_env(monkeypatch, None, offline=True)
    n = len(hub_env.requests)
    assert resolve_repo("org/present") == online
    assert len(hub_env.requests) == n


def test_local_files_only_not_cached(hub_env):
    with pytest.raises(HubAccessError) as info:
        resolve_repo("org/present", local_files_only=True, use_bundled=False)
    assert info.value.kind == HubErrorKind.NOT_CACHED
    assert str(info.value).startswith("local_files_only=True and 'org/present'")


def test_non_hub_errors_pass_through():
    with pytest.raises(ZeroDivisionError):
        with hub_errors("org/x"):
            1 / 0
    assert translate_hub_error(ValueError("unrelated"), "org/x") is None

    @hub_errors("org/x")
    def boom():
        raise KeyError("k")

    with pytest.raises(KeyError):
        boom()


@pytest.mark.parametrize(
    "text, kind, needle",
    [
        ("org/x is not a local folder and is not a valid model identifier listed on 'https://huggingface.co/models'",
         HubErrorKind.REPO_NOT_FOUND, "repository 'org/x' not found"),
        ("v9 is not a valid git identifier (branch name, tag name or commit id) that exists for this model name.",
         HubErrorKind.REVISION_NOT_FOUND, "revision 'v9' not found in 'org/x'"),
        ("org/x does not appear to have a file named preprocessor_config.json. Checkout 'https://hf.co/org/x/tree/main'",
         HubErrorKind.ENTRY_NOT_FOUND, "file 'preprocessor_config.json' not found in 'org/x'"),
        ("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached files.",
         HubErrorKind.UNREACHABLE, "cannot reach"),
        ("You are trying to access a gated repo.\nMake sure to have access to it at https://huggingface.co/org/x.",
         HubErrorKind.GATED, "is gated"),
    ],
)
def test_transformers_text_only_errors(text, kind, needle, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    revision = "v9" if kind == HubErrorKind.REVISION_NOT_FOUND else None
    err = translate_hub_error(OSError(text), "org/x", revision)
    assert err is not None and err.kind == kind and needle in str(err)


def test_http_error_kinds(hub_env):
    """401/403 -> unauthorized; the message stays one line-ish and names the endpoint."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("GET", f"{hub_env.endpoint}/api/models/org/x")
    for status, kind in ((403, HubErrorKind.UNAUTHORIZED), (503, HubErrorKind.SERVER_ERROR)):
        response = httpx2.Response(status, request=request)
        err = translate_hub_error(HfHubHTTPError("boom", response=response), "org/x")
        assert err.kind == kind and hub_env.endpoint in str(err) and str(status) in str(err)
