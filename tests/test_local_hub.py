"""The test Hub (tests/support/local_hub.py): the real huggingface_hub client against it, and the env helper."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, list_repo_files, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from support.local_hub import LocalHubServer, closed_port_endpoint, local_hub_env


def test_upload_list_download_roundtrip(hub_env, tmp_path):
    folder = tmp_path / "repo"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    weights = os.urandom(4096)
    (folder / "sub" / "model.safetensors").write_bytes(weights)
    api = HfApi()
    api.create_repo("org/roundtrip")
    api.create_repo("org/roundtrip", exist_ok=True)
    commit = api.upload_folder(folder_path=folder, repo_id="org/roundtrip")
    assert commit.oid == api.model_info("org/roundtrip").sha == hub_env.head("org/roundtrip")
    assert list_repo_files("org/roundtrip") == ["config.json", "sub/model.safetensors"]
    top = {(e.path, type(e).__name__) for e in api.list_repo_tree("org/roundtrip")}
    assert top == {("config.json", "RepoFile"), ("sub", "RepoFolder")}

    path = Path(snapshot_download("org/roundtrip"))
    assert path.name == commit.oid and (path / "config.json").read_text() == '{"a": 1}'
    assert (path / "sub" / "model.safetensors").read_bytes() == weights
    # the safetensors file went through git-LFS, as on the Hub: its cache blob is named by its sha256
    assert (path / "sub" / "model.safetensors").resolve().name == hashlib.sha256(weights).hexdigest()
    assert Path(hf_hub_download("org/roundtrip", "config.json", revision=commit.oid)).read_text() == '{"a": 1}'
    assert ("PUT", f"/__lfs/{hashlib.sha256(weights).hexdigest()}", 200) in hub_env.requests


def test_typed_errors_for_missing_repo_revision_and_file(hub_env):
    api = HfApi()
    api.create_repo("org/errors")
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="org/errors")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/nope")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/errors", revision="v9")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("org/errors", "nope.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("org/errors", "config.json", revision="f" * 40)


def test_writes_need_a_token_when_required(tmp_path, monkeypatch):
    with LocalHubServer(require_token=True) as hub:
        local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home", token=None)
        with pytest.raises(HfHubHTTPError) as info:
            HfApi(token=False).create_repo("org/x")
        assert info.value.response.status_code == 401
        assert HfApi(token="t").create_repo("org/x").repo_id == "org/x"


def test_env_helper_patches_and_restores(hub, tmp_path):
    before = (constants.ENDPOINT, constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE, os.environ.get("HF_ENDPOINT"))
    with pytest.MonkeyPatch.context() as mp:
        local_hub_env(mp, hub, cache_dir=tmp_path / "home", offline=True)
        assert constants.ENDPOINT == hub.endpoint == os.environ["HF_ENDPOINT"] == HfApi().endpoint
        assert constants.HF_HUB_CACHE == str(tmp_path / "home" / "hub") and constants.is_offline_mode()
        assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_DISABLE_XET
    assert (constants.ENDPOINT, constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE,
            os.environ.get("HF_ENDPOINT")) == before


def test_closed_port_refuses_at_once(tmp_path, monkeypatch):
    local_hub_env(monkeypatch, closed_port_endpoint(), cache_dir=tmp_path / "hf_home", offline=False)
    with pytest.raises(httpx2.ConnectError):
        HfApi().model_info("org/x")
