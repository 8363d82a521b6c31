"""Bundled checkpoints: discovery, offline cache seeding, resolve fallback, push to a (local) Hub."""

from __future__ import annotations

from pathlib import Path

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from huggingface_hub import HfApi  # noqa: E402
from huggingface_hub import constants as hf_constants  # noqa: E402

from tac_ecg_hf.hub import (  # noqa: E402
    CHECKPOINTS_ROOT,
    HubAccessError,
    HubErrorKind,
    bundled_commit_hash,
    bundled_files,
    bundled_path,
    bundled_repo_ids,
    push_bundled,
    resolve_repo,
    seed_hf_cache,
)
from tac_ecg_hf.testing.local_hub import LocalHubServer, closed_port_endpoint, local_hub_env  # noqa: E402

REPO_ID = "tac-ecg/tiny-bert"


def _tiny_bert():
    cfg = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=99
    )
    torch.manual_seed(0)
    return transformers.BertModel(cfg)


@pytest.fixture
def bundle(tmp_path):
    """A fake ``checkpoints`` root with one model repo (plus a LoRA adapter subfolder) and noise."""
    peft = pytest.importorskip("peft")
    root = tmp_path / "checkpoints"
    repo = root / "tac-ecg" / "tiny-bert"
    model = _tiny_bert()
    model.save_pretrained(repo)
    (repo / "README.md").write_text("---\nlibrary_name: transformers\n---\n# tiny\n")
    lora = peft.get_peft_model(_tiny_bert(), peft.LoraConfig(r=2, lora_alpha=4, target_modules=["query"]))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_()
    lora.save_pretrained(repo / "adapters" / "af")  # adapters/af/adapter_config.json + adapter_model.safetensors
    # noise that must be ignored
    (repo / "__pycache__").mkdir()
    (repo / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (repo / ".DS_Store").write_bytes(b"\0")
    (root / "tac-ecg" / "empty").mkdir()
    (root / "README.md").write_text("not a repo")
    return {"root": root, "repo": repo, "model": model, "lora": lora}


def _state_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------


def test_discovery(bundle):
    root = bundle["root"]
    assert bundled_repo_ids(root) == [REPO_ID]
    assert bundled_path(REPO_ID, root) == bundle["repo"]
    assert bundled_path("tac-ecg/empty", root) is None
    assert bundled_path("tac-ecg/nope", root) is None
    assert bundled_path("../etc", root) is None
    assert bundled_repo_ids(root / "missing") == []
    assert CHECKPOINTS_ROOT.name == "checkpoints" and CHECKPOINTS_ROOT.parent.name == "tac_ecg_hf"
    assert isinstance(bundled_repo_ids(), list)  # package default root works whatever it contains

    files = {f.path: f for f in bundled_files(REPO_ID, root)}
    assert set(files) == {
        "README.md", "config.json", "model.safetensors",
        "adapters/af/README.md", "adapters/af/adapter_config.json", "adapters/af/adapter_model.safetensors",
    }
    assert files["model.safetensors"].is_lfs and files["model.safetensors"].etag == files["model.safetensors"].sha256
    assert not files["config.json"].is_lfs and len(files["config.json"].etag) == 40

    commit = bundled_commit_hash(REPO_ID, root)
    assert len(commit) == 40 and commit == bundled_commit_hash(REPO_ID, root)
    (bundle["repo"] / "config.json").write_text((bundle["repo"] / "config.json").read_text() + "\n")
    assert bundled_commit_hash(REPO_ID, root) != commit


def test_seed_cache_then_offline_from_pretrained(bundle, tmp_path, monkeypatch):
    peft = pytest.importorskip("peft")
    # no endpoint at all: any network attempt would fail loudly (closed port)
    local_hub_env(monkeypatch, closed_port_endpoint(), cache_dir=tmp_path / "hf_home", offline=True)
    cache = Path(hf_constants.HF_HUB_CACHE)

    seeded = seed_hf_cache(root=bundle["root"])
    snapshot = seeded[REPO_ID]
    commit = bundled_commit_hash(REPO_ID, bundle["root"])
    storage = cache / "models--tac-ecg--tiny-bert"
    assert snapshot == storage / "snapshots" / commit
    assert (storage / "refs" / "main").read_text() == commit
    assert (snapshot / "model.safetensors").resolve().parent == (storage / "blobs").resolve()

    model = transformers.AutoModel.from_pretrained(REPO_ID)
    assert _state_equal(model, bundle["model"])
    path = huggingface_hub.hf_hub_download(REPO_ID, "adapters/af/adapter_config.json")
    assert Path(path).read_bytes() == (bundle["repo"] / "adapters/af/adapter_config.json").read_bytes()
    assert Path(huggingface_hub.snapshot_download(REPO_ID)) == snapshot
    assert resolve_repo(REPO_ID, subfolder="adapters/af", use_bundled=False) == snapshot / "adapters" / "af"

    # NB: peft 0.21 offline + Hub id + subfolder looks for "adapters/af/adapters/af/adapter_model.safetensors"
    # (it prefixes the subfolder twice in load_peft_weights' offline branch). Load adapters through the
    # resolved local folder instead, which works online and offline.
    adapter_dir = resolve_repo(REPO_ID, subfolder="adapters/af", use_bundled=False)
    lora = peft.PeftModel.from_pretrained(model, str(adapter_dir))
    sa = {k: v for k, v in bundle["lora"].state_dict().items() if "lora_" in k}
    sb = {k: v for k, v in lora.state_dict().items() if "lora_" in k}
    assert sa and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_seeded_cache_serves_unreachable_endpoint_without_retries(bundle, tmp_path, monkeypatch):
    """Not offline, endpoint down: the seeded refs + .no_exist markers avoid huggingface_hub's retry loop."""
    import time

    local_hub_env(monkeypatch, closed_port_endpoint(), cache_dir=tmp_path / "hf_home", offline=False)
    seed_hf_cache(REPO_ID, root=bundle["root"])
    start = time.perf_counter()
    model = transformers.AutoModel.from_pretrained(REPO_ID)
    assert time.perf_counter() - start < 10  # a single missing-file probe would retry for ~23 s
    assert _state_equal(model, bundle["model"])


def test_seed_is_idempotent_and_respects_foreign_refs(bundle, tmp_path):
    cache = tmp_path / "cache"
    first = seed_hf_cache(REPO_ID, cache_dir=cache, root=bundle["root"])
    storage = cache / "models--tac-ecg--tiny-bert"
    listing = sorted((p.relative_to(storage).as_posix(), p.is_symlink()) for p in storage.rglob("*"))
    placed = [p for p in storage.rglob("*") if p.parent.name == "blobs" or "snapshots" in p.parts]
    mtimes = {p: p.lstat().st_mtime_ns for p in placed}
    second = seed_hf_cache([REPO_ID], cache_dir=cache, root=bundle["root"])
    assert first == second
    assert sorted((p.relative_to(storage).as_posix(), p.is_symlink()) for p in storage.rglob("*")) == listing
    assert {p: p.lstat().st_mtime_ns for p in placed} == mtimes  # nothing rewritten

    # copies instead of symlinks
    copies = seed_hf_cache(REPO_ID, cache_dir=tmp_path / "copies", root=bundle["root"], use_symlinks=False)
    weights = copies[REPO_ID] / "model.safetensors"
    assert not weights.is_symlink() and weights.read_bytes() == (bundle["repo"] / "model.safetensors").read_bytes()

    # a ref pointing at a real (non-bundled) download is kept unless force=True
    foreign = "f" * 40
    (storage / "snapshots" / foreign).mkdir()
    (storage / "refs" / "main").write_text(foreign)
    seed_hf_cache(REPO_ID, cache_dir=cache, root=bundle["root"])
    assert (storage / "refs" / "main").read_text() == foreign
    seed_hf_cache(REPO_ID, cache_dir=cache, root=bundle["root"], force=True)
    assert (storage / "refs" / "main").read_text() == bundled_commit_hash(REPO_ID, bundle["root"])

    # content change -> new commit, ref moves (it pointed to a bundled commit)
    (bundle["repo"] / "README.md").write_text("changed\n")
    third = seed_hf_cache(REPO_ID, cache_dir=cache, root=bundle["root"])
    assert third[REPO_ID] != first[REPO_ID]
    assert (storage / "refs" / "main").read_text() == third[REPO_ID].name

    with pytest.raises(KeyError, match="no bundled checkpoint"):
        seed_hf_cache("tac-ecg/nope", cache_dir=cache, root=bundle["root"])


def test_resolve_repo_falls_back_to_bundled(bundle, tmp_path, monkeypatch):
    local_hub_env(monkeypatch, closed_port_endpoint(), cache_dir=tmp_path / "hf_home")
    root = bundle["root"]
    assert resolve_repo(REPO_ID, bundled_root=root) == bundle["repo"]  # unreachable -> bundled
    assert resolve_repo(REPO_ID, subfolder="adapters/af", bundled_root=root) == bundle["repo"] / "adapters" / "af"
    assert resolve_repo(REPO_ID, bundled_root=root, prefer_bundled=True) == bundle["repo"]
    with pytest.raises(HubAccessError) as info:
        resolve_repo(REPO_ID, bundled_root=root, use_bundled=False)
    assert info.value.kind == HubErrorKind.UNREACHABLE
    with pytest.raises(HubAccessError):  # a specific revision is never served from the bundle
        resolve_repo(REPO_ID, revision="v2", bundled_root=root)


def test_push_bundled_to_local_hub(bundle, tmp_path, monkeypatch):
    with LocalHubServer() as hub:
        local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home")
        commit = push_bundled(REPO_ID, root=bundle["root"])
        files = HfApi().list_repo_files(REPO_ID)
        assert {f.path for f in bundled_files(REPO_ID, bundle["root"])} <= set(files)
        assert not any("__pycache__" in f or f.endswith(".pyc") or "DS_Store" in f for f in files)
        assert commit.oid == HfApi().model_info(REPO_ID).sha

        # explicit endpoint/token, other target repo, private, on a branch
        other = push_bundled(REPO_ID, endpoint=hub.endpoint, token="t", private=True, root=bundle["root"],
                             target_repo_id="me/copy", revision="dev")
        info = HfApi(endpoint=hub.endpoint, token="t").model_info("me/copy", revision="dev")
        assert info.private and info.sha == other.oid

        loaded = transformers.AutoModel.from_pretrained(REPO_ID)
        assert _state_equal(loaded, bundle["model"])
        assert hub.errors == []

    with pytest.raises(HubAccessError, match="cannot reach"):
        push_bundled(REPO_ID, endpoint=closed_port_endpoint(), token="t", root=bundle["root"])
    with pytest.raises(KeyError):
        push_bundled("tac-ecg/nope", root=bundle["root"])
