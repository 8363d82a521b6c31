"""LocalHubServer: the real huggingface_hub / transformers / peft clients against a local endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

import httpx2  # noqa: E402  (installed with huggingface_hub 2)
from huggingface_hub import HfApi  # noqa: E402
from huggingface_hub import constants as hf_constants  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tac_ecg_hf.testing.local_hub import (  # noqa: E402
    LocalHubServer,
    local_hub_env,
    use_endpoint,
    use_offline,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hub():
    with LocalHubServer() as server:
        yield server
        assert server.errors == [], "internal errors in the local hub:\n" + "\n".join(server.errors)


@pytest.fixture
def hub_env(hub, tmp_path, monkeypatch):
    """Route the HF stack to the local hub with an isolated cache for one test."""
    local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home")
    return hub


def _make_folder(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "config.json").write_text('{"a": 1}')
    (root / "README.md").write_text("---\nlicense: mit\n---\n# Test repo\n")
    (root / "sub" / "weights.bin").write_bytes(os.urandom(2048))
    (root / "sub" / "deeper" / "notes.txt").write_text("deep")
    return root


def _tiny_bert():
    transformers = pytest.importorskip("transformers")
    import torch

    cfg = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=99
    )
    torch.manual_seed(0)
    return transformers.BertModel(cfg)


def _state_equal(a, b) -> bool:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------


def test_server_basics(hub_env):
    api = HfApi()
    assert api.endpoint == hub_env.endpoint
    assert hf_constants.ENDPOINT == hub_env.endpoint
    assert api.whoami()["name"] == "local-user"

    url = api.create_repo("org/basics")
    assert url.repo_id == "org/basics"
    assert url.endpoint == hub_env.endpoint
    assert str(url) == f"{hub_env.endpoint}/org/basics"
    api.create_repo("org/basics", exist_ok=True)
    with pytest.raises(HfHubHTTPError) as exc_info:
        api.create_repo("org/basics")
    assert exc_info.value.response.status_code == 409

    # repo without namespace goes to the user's namespace
    assert api.create_repo("solo").repo_id == "local-user/solo"

    info = api.model_info("org/basics")
    assert info.id == "org/basics" and len(info.sha) == 40
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]
    assert api.repo_exists("org/basics") and not api.repo_exists("org/nope")
    assert api.file_exists("org/basics", ".gitattributes")
    assert not api.file_exists("org/basics", "missing.txt")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/nope")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/basics", revision="nope")

    api.delete_repo("org/basics")
    assert not api.repo_exists("org/basics")


def test_upload_list_download_roundtrip(hub_env, tmp_path):
    folder = _make_folder(tmp_path / "src")
    repo_id = huggingface_hub.create_repo("org/roundtrip").repo_id  # module-level api follows the endpoint too
    commit = huggingface_hub.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="add files")
    assert len(commit.oid) == 40 and commit.commit_url.startswith(hub_env.endpoint)

    files = huggingface_hub.list_repo_files(repo_id)
    assert files == [".gitattributes", "README.md", "config.json", "sub/deeper/notes.txt", "sub/weights.bin"]

    top = {(e.path, type(e).__name__) for e in huggingface_hub.list_repo_tree(repo_id)}
    assert ("sub", "RepoFolder") in top and ("config.json", "RepoFile") in top
    assert ("sub/weights.bin", "RepoFile") not in top
    in_sub = {e.path for e in huggingface_hub.list_repo_tree(repo_id, path_in_repo="sub", recursive=True)}
    assert in_sub == {"sub/deeper", "sub/deeper/notes.txt", "sub/weights.bin"}
    infos = HfApi().get_paths_info(repo_id, ["config.json", "sub", "missing"])
    assert sorted(i.path for i in infos) == ["config.json", "sub"]
    weights_info = next(f for f in huggingface_hub.list_repo_tree(repo_id, recursive=True) if f.path == "sub/weights.bin")
    assert weights_info.size == 2048 and weights_info.lfs is not None  # *.bin is LFS (Hub .gitattributes)
    config_info = next(f for f in huggingface_hub.list_repo_tree(repo_id) if f.path == "config.json")
    assert config_info.lfs is None

    path = huggingface_hub.hf_hub_download(repo_id, "sub/weights.bin")
    assert Path(path).read_bytes() == (folder / "sub" / "weights.bin").read_bytes()
    assert str(hf_constants.HF_HUB_CACHE) in path  # isolated cache
    assert f"snapshots/{commit.oid}/" in Path(path).as_posix()

    snap = Path(huggingface_hub.snapshot_download(repo_id))
    for rel in ("config.json", "README.md", "sub/weights.bin", "sub/deeper/notes.txt"):
        assert (snap / rel).read_bytes() == (folder / rel).read_bytes()
    partial = Path(
        huggingface_hub.snapshot_download(repo_id, allow_patterns=["sub/deeper/*"], cache_dir=tmp_path / "c2")
    )
    assert sorted(p.relative_to(partial).as_posix() for p in partial.rglob("*") if p.is_file()) == [
        "sub/deeper/notes.txt"
    ]
    local_dir = tmp_path / "local_dir"
    huggingface_hub.snapshot_download(repo_id, local_dir=local_dir)
    assert (local_dir / "sub" / "weights.bin").read_bytes() == (folder / "sub" / "weights.bin").read_bytes()

    # unchanged re-upload is a no-op (the server reports known oids at preupload)
    again = huggingface_hub.upload_folder(folder_path=folder, repo_id=repo_id)
    assert again.oid == commit.oid

    # single-file upload, overwrite, delete
    c2 = huggingface_hub.upload_file(path_or_fileobj=b"new", path_in_repo="config.json", repo_id=repo_id)
    assert c2.oid != commit.oid
    assert Path(huggingface_hub.hf_hub_download(repo_id, "config.json")).read_bytes() == b"new"
    huggingface_hub.delete_file("sub/deeper/notes.txt", repo_id=repo_id)
    assert "sub/deeper/notes.txt" not in huggingface_hub.list_repo_files(repo_id)
    huggingface_hub.delete_folder("sub", repo_id=repo_id)
    assert huggingface_hub.list_repo_files(repo_id) == [".gitattributes", "README.md", "config.json"]
    with pytest.raises(RemoteEntryNotFoundError):
        huggingface_hub.hf_hub_download(repo_id, "sub/weights.bin")
    # the old commit still serves the old file
    old = huggingface_hub.hf_hub_download(repo_id, "sub/weights.bin", revision=commit.oid, cache_dir=tmp_path / "c3")
    assert Path(old).read_bytes() == (folder / "sub" / "weights.bin").read_bytes()


def test_revisions_branches_tags_prs(hub_env):
    api = HfApi()
    repo_id = api.create_repo("org/revs").repo_id
    c1 = api.upload_file(path_or_fileobj=b"v1", path_in_repo="data.txt", repo_id=repo_id)
    c2 = api.upload_file(path_or_fileobj=b"v2", path_in_repo="data.txt", repo_id=repo_id)
    assert c1.oid != c2.oid
    assert api.model_info(repo_id).sha == c2.oid
    assert [c.commit_id for c in api.list_repo_commits(repo_id)][:2] == [c2.oid, c1.oid]
    assert hub_env.commit_ids(repo_id)[:2] == [c2.oid, c1.oid]

    read = lambda **kw: Path(huggingface_hub.hf_hub_download(repo_id, "data.txt", **kw)).read_bytes()  # noqa: E731
    assert read() == b"v2"
    assert read(revision=c1.oid) == b"v1"
    assert api.model_info(repo_id, revision=c1.oid[:10]).sha == c1.oid  # abbreviated sha

    api.create_branch(repo_id, branch="dev", revision=c1.oid)
    api.create_branch(repo_id, branch="dev", exist_ok=True)
    c3 = api.upload_file(path_or_fileobj=b"dev", path_in_repo="data.txt", repo_id=repo_id, revision="dev")
    assert read(revision="dev") == b"dev" and read() == b"v2"
    api.create_tag(repo_id, tag="v1.0", revision=c1.oid)
    assert read(revision="v1.0") == b"v1"
    refs = api.list_repo_refs(repo_id)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": c2.oid, "dev": c3.oid}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0": c1.oid}

    pr = api.upload_file(path_or_fileobj=b"pr", path_in_repo="data.txt", repo_id=repo_id, create_pr=True)
    assert pr.pr_revision == "refs/pr/1" and pr.pr_num == 1
    assert read(revision="refs/pr/1") == b"pr" and read() == b"v2"

    with pytest.raises(RevisionNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id, revision="missing-branch")
    api.delete_branch(repo_id, branch="dev")
    with pytest.raises(RevisionNotFoundError):
        huggingface_hub.hf_hub_download(repo_id, "data.txt", revision="dev", force_download=True)


def test_lfs_upload_mode(tmp_path, monkeypatch):
    """Files announced as LFS go through the LFS batch API and are served with sha256 ETags."""
    with LocalHubServer(lfs_threshold=1024) as hub:
        local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home")
        folder = _make_folder(tmp_path / "src")
        repo_id = huggingface_hub.create_repo("org/lfs").repo_id
        huggingface_hub.upload_folder(folder_path=folder, repo_id=repo_id)
        entries = {e.path: e for e in huggingface_hub.list_repo_tree(repo_id, recursive=True)}
        assert entries["sub/weights.bin"].lfs is not None and entries["config.json"].lfs is None
        sha256 = entries["sub/weights.bin"].lfs.sha256
        path = huggingface_hub.hf_hub_download(repo_id, "sub/weights.bin")
        assert Path(path).read_bytes() == (folder / "sub" / "weights.bin").read_bytes()
        assert Path(path).resolve().name == sha256  # cache blob named like a real LFS download
        assert any("/info/lfs/objects/batch" in p for _, p, _ in hub.requests)
        assert hub.errors == []


def test_regular_upload_mode_works_with_xet_enabled_client(tmp_path, monkeypatch):
    """upload_mode="regular": every file inline in the commit, so even a Xet-enabled client can push."""
    with LocalHubServer(upload_mode="regular") as hub:
        local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home", disable_xet=False)
        folder = _make_folder(tmp_path / "src")
        repo_id = huggingface_hub.create_repo("org/regular").repo_id
        huggingface_hub.upload_folder(folder_path=folder, repo_id=repo_id)
        entries = {e.path: e for e in huggingface_hub.list_repo_tree(repo_id, recursive=True)}
        assert entries["sub/weights.bin"].lfs is None
        path = huggingface_hub.hf_hub_download(repo_id, "sub/weights.bin")
        assert Path(path).read_bytes() == (folder / "sub" / "weights.bin").read_bytes()
        assert hub.errors == []


def test_datasets_push_to_hub_and_load_dataset(hub_env, tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"x": [1, 2, 3], "label": ["a", "b", "c"]})
    ds.push_to_hub("org/tiny-ds")
    files = huggingface_hub.list_repo_files("org/tiny-ds", repo_type="dataset")
    assert any(f.endswith(".parquet") for f in files)
    loaded = datasets.load_dataset("org/tiny-ds", cache_dir=str(tmp_path / "ds_cache"))
    assert loaded["train"]["x"][:] == [1, 2, 3] and loaded["train"]["label"][:] == ["a", "b", "c"]


def test_transformers_push_and_from_pretrained(hub_env):
    transformers = pytest.importorskip("transformers")
    import torch

    model = _tiny_bert()
    first = model.push_to_hub("org/tiny-bert")
    files = huggingface_hub.list_repo_files("org/tiny-bert")
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)

    loaded = transformers.AutoModel.from_pretrained("org/tiny-bert")
    assert type(loaded).__name__ == "BertModel" and _state_equal(model, loaded)

    # second push with other weights; the first commit stays loadable by sha
    original = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    second = model.push_to_hub("org/tiny-bert")
    assert second.oid != first.oid
    latest = transformers.AutoModel.from_pretrained("org/tiny-bert")
    assert _state_equal(model, latest)
    old = transformers.AutoModel.from_pretrained("org/tiny-bert", revision=first.oid)
    assert not _state_equal(model, old)
    assert all(torch.equal(original[k], v) for k, v in old.state_dict().items())

    # push to a branch (transformers creates it)
    model.push_to_hub("org/tiny-bert", revision="exp")
    assert "exp" in {b.name for b in HfApi().list_repo_refs("org/tiny-bert").branches}


def test_peft_lora_push_and_from_pretrained(hub_env, tmp_path):
    peft = pytest.importorskip("peft")
    import torch
    import transformers

    base = _tiny_bert()
    base.push_to_hub("org/tiny-base")
    lora = peft.get_peft_model(
        _tiny_bert(), peft.LoraConfig(r=2, lora_alpha=4, target_modules=["query", "value"])
    )
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_()
    lora.push_to_hub("org/tiny-lora")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(huggingface_hub.list_repo_files("org/tiny-lora"))

    reloaded = peft.PeftModel.from_pretrained(transformers.AutoModel.from_pretrained("org/tiny-base"), "org/tiny-lora")
    sa = {k: v for k, v in lora.state_dict().items() if "lora_" in k}
    sb = {k: v for k, v in reloaded.state_dict().items() if "lora_" in k}
    assert sa and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.randint(0, 99, (1, 5))
    lora.eval()
    assert torch.allclose(lora(input_ids=x).last_hidden_state, reloaded(input_ids=x).last_hidden_state)

    # adapters in a subfolder of the model repo (the bundled-checkpoint layout), loaded by Hub id online
    lora.save_pretrained(tmp_path / "adapter")
    huggingface_hub.upload_folder(folder_path=tmp_path / "adapter", repo_id="org/tiny-base", path_in_repo="adapters/af")
    sub = peft.PeftModel.from_pretrained(
        transformers.AutoModel.from_pretrained("org/tiny-base"), "org/tiny-base", subfolder="adapters/af"
    )
    sc = {k: v for k, v in sub.state_dict().items() if "lora_" in k}
    assert sc.keys() == sa.keys() and all(torch.equal(sa[k], sc[k]) for k in sa)


def test_use_endpoint_patches_and_restores(hub, tmp_path):
    import huggingface_hub.hf_api as hf_api_module

    before = (hf_constants.ENDPOINT, hf_constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api_module.api.endpoint,
              hf_constants.HF_HUB_CACHE, hf_constants.HF_HUB_DISABLE_XET, os.environ.get("HF_ENDPOINT"))
    with use_endpoint(hub, cache_dir=tmp_path / "home", token="t") as url:
        assert url == hub.endpoint
        assert hf_constants.ENDPOINT == url and hf_api_module.api.endpoint == url
        assert hf_constants.HUGGINGFACE_CO_URL_TEMPLATE.startswith(url + "/")
        assert huggingface_hub.hf_hub_url("a/b", "c.json") == f"{url}/a/b/resolve/main/c.json"
        assert hf_constants.HF_HUB_CACHE == str(tmp_path / "home" / "hub")
        assert os.environ["HF_ENDPOINT"] == url and hf_constants.HF_HUB_DISABLE_XET
        with use_offline():
            assert huggingface_hub.is_offline_mode() and os.environ["HF_HUB_OFFLINE"] == "1"
        assert not huggingface_hub.is_offline_mode()
        tf_hub = pytest.importorskip("transformers.utils.hub")
        assert tf_hub.hf_api().endpoint == url  # transformers' shared HfApi follows...
    assert tf_hub.hf_api().endpoint == hf_constants.ENDPOINT  # ...and does not keep the dead endpoint after
    after = (hf_constants.ENDPOINT, hf_constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api_module.api.endpoint,
             hf_constants.HF_HUB_CACHE, hf_constants.HF_HUB_DISABLE_XET, os.environ.get("HF_ENDPOINT"))
    assert after == before


def test_private_repo_needs_token(hub_env, monkeypatch):
    api = HfApi()
    api.create_repo("org/secret", private=True)
    assert api.model_info("org/secret").private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info("org/secret")


def test_range_requests_and_headers(hub_env):
    api = HfApi()
    repo_id = api.create_repo("org/range").repo_id
    api.upload_file(path_or_fileobj=b"0123456789", path_in_repo="digits.txt", repo_id=repo_id)
    url = huggingface_hub.hf_hub_url(repo_id, "digits.txt")
    head = httpx2.head(url)
    assert head.status_code == 200 and head.headers["Content-Length"] == "10"
    assert len(head.headers["X-Repo-Commit"]) == 40 and head.headers["ETag"].strip('"')
    r = httpx2.get(url, headers={"Range": "bytes=3-5"})
    assert r.status_code == 206 and r.content == b"345"
    r = httpx2.get(url, headers={"Range": "bytes=7-"})
    assert r.content == b"789"
    missing = httpx2.head(huggingface_hub.hf_hub_url(repo_id, "nope.txt"))
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
    assert httpx2.head(huggingface_hub.hf_hub_url("org/none", "x")).headers["X-Error-Code"] == "RepoNotFound"
    bad_rev = httpx2.head(huggingface_hub.hf_hub_url(repo_id, "digits.txt", revision="zzz"))
    assert bad_rev.headers["X-Error-Code"] == "RevisionNotFound"


def test_storage_persists_across_restarts(tmp_path):
    storage = tmp_path / "storage"
    with LocalHubServer(storage) as hub:
        api = HfApi(endpoint=hub.endpoint, token="t")
        api.create_repo("org/persist")
        commit = api.upload_file(path_or_fileobj=b"kept", path_in_repo="f.txt", repo_id="org/persist")
    assert storage.is_dir()  # explicit storage dirs are kept
    with LocalHubServer(storage) as hub2:
        api = HfApi(endpoint=hub2.endpoint, token="t")
        assert api.model_info("org/persist").sha == commit.oid
        path = huggingface_hub.hf_hub_download(
            "org/persist", "f.txt", endpoint=hub2.endpoint, cache_dir=tmp_path / "cache"
        )
        assert Path(path).read_bytes() == b"kept"
    temp_hub = LocalHubServer().start()
    temp_dir = temp_hub.storage_dir
    temp_hub.stop()
    assert not temp_dir.exists()  # temporary storage is cleaned up


def test_cli_prints_url_and_serves(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tac_ecg_hf.testing.local_hub", "--port", "0", "--storage", str(tmp_path / "s")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path),
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else url
        api = HfApi(endpoint=url, token="t")
        deadline = time.time() + 10
        while True:
            try:
                assert api.whoami()["name"] == "local-user"
                break
            except httpx2.ConnectError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        api.create_repo("org/cli")
        assert (tmp_path / "s" / "repos" / "model" / "org" / "cli.json").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
