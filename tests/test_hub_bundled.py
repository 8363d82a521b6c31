"""Bundled checkpoints: found by path, standing in when the Hub cannot serve them, and copied into the Hugging Face
cache only on request (seed_hf_cache), never over a real Hub copy."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants, snapshot_download
from support.local_hub import LocalHubServer, closed_port_endpoint, local_hub_env
from support.repos import save_run, state_equal, tiny_classifier
from transformers import AutoModelForSequenceClassification

from tac_ecg_hf.hub import (
    BUNDLED_REF,
    HubAccessError,
    bundled_commit_hash,
    bundled_path,
    bundled_repo_ids,
    list_task_adapters,
    resolve_repo,
    seed_hf_cache,
)

REPO_ID = "tac-ecg/tiny"
TASKS = ["cinc2017", "ptbxl-super"]


@pytest.fixture
def bundle(tmp_path):
    """A fake ``checkpoints`` root: one repo in the published layout, plus folders that are not repos."""
    root = tmp_path / "checkpoints"
    model = save_run(root / REPO_ID, TASKS)
    (root / REPO_ID / "__pycache__").mkdir()
    (root / REPO_ID / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (root / "tac-ecg" / "empty").mkdir()
    (root / "_private" / "x").mkdir(parents=True)
    (root / "_private" / "x" / "config.json").write_text("{}")
    return {"root": root, "repo": root / REPO_ID, "model": model}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Empty HF home, offline, no TAC_ECG_PREFER_HUB."""
    monkeypatch.delenv("TAC_ECG_PREFER_HUB", raising=False)
    local_hub_env(monkeypatch, cache_dir=tmp_path / "hf_home", offline=True)


def _python(code: str, home: Path, **env) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with the HF home ``home``, offline, without progress bars and without
    transformers' FutureWarnings (so that whatever else reaches stderr is a finding)."""
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "PYTHONWARNINGS": "ignore::FutureWarning", **env}
    env.pop("HF_HUB_CACHE", None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_discovery(bundle):
    root = bundle["root"]
    assert bundled_repo_ids(root) == [REPO_ID]
    assert bundled_path(REPO_ID, root) == bundle["repo"]
    for other in ("tac-ecg/empty", "_private/x", "tac-ecg/nope", "../x"):
        assert bundled_path(other, root) is None
    assert bundled_repo_ids(root / "missing") == []
    assert len(bundled_commit_hash(REPO_ID, root)) == 40
    with pytest.raises(KeyError, match=r"no bundled checkpoint 'tac-ecg/nope'; bundled: tac-ecg/tiny"):
        bundled_commit_hash("tac-ecg/nope", root)


def test_resolved_by_path_without_the_cache(bundle, monkeypatch):
    root = bundle["root"]
    local_hub_env(monkeypatch, closed_port_endpoint(), offline=False)
    assert resolve_repo(REPO_ID, root=root) == bundle["repo"]
    assert resolve_repo(REPO_ID, subfolder="cinc2017", root=root) == bundle["repo"] / "cinc2017"
    assert list_task_adapters(REPO_ID, root=root) == TASKS
    assert list_task_adapters(bundle["repo"]) == TASKS  # a local folder
    assert not Path(constants.HF_HUB_CACHE).exists()  # nothing written


def test_bundled_copy_stands_in_when_the_hub_cannot_serve(bundle, monkeypatch, caplog):
    root = bundle["root"]
    monkeypatch.setenv("TAC_ECG_PREFER_HUB", "1")
    with caplog.at_level(logging.WARNING, logger="tac_ecg_hf"):
        assert resolve_repo(REPO_ID, root=root) == bundle["repo"]  # offline, empty cache
    assert caplog.messages == [f"HF_HUB_OFFLINE=1 and '{REPO_ID}' (revision 'main') is not in the cache at "
                                f"{constants.HF_HUB_CACHE}/models--tac-ecg--tiny; run once online or point to a local "
                                f"directory. Using the copy of '{REPO_ID}' bundled with tac-ecg-hf."]
    caplog.clear()
    local_hub_env(monkeypatch, closed_port_endpoint(), offline=False)
    with caplog.at_level(logging.WARNING, logger="tac_ecg_hf"):
        assert list_task_adapters(REPO_ID, root=root) == TASKS
    assert caplog.messages[0].startswith("cannot reach http://127.0.0.1:")
    with LocalHubServer() as hub:  # a live Hub that does not know the id
        local_hub_env(monkeypatch, hub, offline=False)
        assert resolve_repo(REPO_ID, root=root) == bundled_path(REPO_ID, root)
        with pytest.raises(HubAccessError, match="repository 'tac-ecg/tiny' not found"):
            resolve_repo(REPO_ID, revision="v2", root=root)  # a revision is never served from the bundle
        assert hub.errors == []


def test_import_writes_and_logs_nothing(tmp_path):
    out = _python("import tac_ecg_hf, tac_ecg_hf.hub", tmp_path / "home")
    assert out.returncode == 0 and out.stderr == "", out.stderr[-2000:]
    assert not (tmp_path / "home").exists()


def test_seed_then_plain_from_pretrained_offline_in_a_fresh_process(bundle, tmp_path):
    home = tmp_path / "home"
    snapshots = seed_hf_cache(cache_dir=home / "hub", root=bundle["root"])
    commit = bundled_commit_hash(REPO_ID, bundle["root"])
    storage = home / "hub" / "models--tac-ecg--tiny"
    assert snapshots == [storage / "snapshots" / commit]
    assert (storage / "refs" / "main").read_text() == commit
    assert (snapshots[0] / "model.safetensors").resolve().parent == (storage / "blobs").resolve()
    assert not list(snapshots[0].rglob("*.pyc"))
    torch.save(bundle["model"].base_model.model.state_dict(), tmp_path / "expected.pt")
    code = f"""
import torch, tac_ecg_hf
from pathlib import Path
from huggingface_hub import snapshot_download
from peft import PeftModel
from transformers import AutoModelForSequenceClassification
base = AutoModelForSequenceClassification.from_pretrained({REPO_ID!r})
repo = Path(snapshot_download({REPO_ID!r}))
model = PeftModel.from_pretrained(base, str(repo / "cinc2017"), adapter_name="cinc2017")
expected = torch.load({str(tmp_path / "expected.pt")!r})
got = model.base_model.model.state_dict()
print(sorted(k for k in expected if "cinc2017" in k and not torch.equal(expected[k], got[k])))
"""
    out = _python(code, home)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"  # the cinc2017 adapter weights came back exactly
    assert out.stderr == ""  # quiet: no probe of a missing file, no warning
    # online with the endpoint down: huggingface_hub says it uses the cache; the .no_exist markers spare each
    # optional file it probes the ~23 s of retries
    start = time.perf_counter()
    out = _python(code, home, HF_HUB_OFFLINE="0", HF_ENDPOINT=closed_port_endpoint())
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-3000:]
    assert time.perf_counter() - start < 30 and "Retrying" not in out.stderr


def test_seed_is_idempotent_silent_and_follows_bundle_updates(bundle, tmp_path, caplog, recwarn):
    cache = tmp_path / "cache"
    storage = cache / "models--tac-ecg--tiny"
    with caplog.at_level(logging.DEBUG):
        first = seed_hf_cache(REPO_ID, cache_dir=cache, root=bundle["root"])
        state = {p: p.lstat().st_mtime_ns for p in storage.rglob("*")}
        assert seed_hf_cache([REPO_ID], cache_dir=cache, root=bundle["root"]) == first
    assert {p: p.lstat().st_mtime_ns for p in storage.rglob("*")} == state  # nothing rewritten
    assert [r for r in caplog.records if r.name.startswith("tac_ecg_hf")] == [] and len(recwarn) == 0
    # a new bundled version (package upgrade) moves refs/main, which pointed to the previous bundled copy
    (bundle["repo"] / "config.json").write_text(json.dumps({**json.loads((bundle["repo"] / "config.json").read_text()),
                                                            "note": "v2"}))
    second = seed_hf_cache(REPO_ID, cache_dir=cache, root=bundle["root"])
    assert second != first
    assert (storage / "refs" / "main").read_text() == (storage / "refs" / BUNDLED_REF).read_text() == second[0].name


def test_an_upgrade_replaces_what_version_0_1_seeded_but_no_hub_copy(bundle, tmp_path):
    """tac-ecg-hf 0.1 seeded the cache on import and listed its commits in ``.tac_ecg_bundled.json``: those are moved
    on, a commit it did not list (a real download) is not."""
    cache = tmp_path / "cache"
    storage = cache / "models--tac-ecg--tiny"
    (storage / "refs").mkdir(parents=True)
    (storage / ".tac_ecg_bundled.json").write_text(json.dumps({"repo_id": REPO_ID, "commits": ["a" * 40]}))
    (storage / "refs" / "main").write_text("a" * 40)
    new = seed_hf_cache(REPO_ID, cache_dir=cache, root=bundle["root"])[0].name
    assert (storage / "refs" / "main").read_text() == new
    (storage / "refs" / "main").write_text("b" * 40)  # a real Hub download since
    (storage / "refs" / BUNDLED_REF).unlink()
    seed_hf_cache(REPO_ID, cache_dir=cache, root=bundle["root"])
    assert (storage / "refs" / "main").read_text() == "b" * 40


def test_a_hub_copy_always_wins(bundle, tmp_path, monkeypatch):
    """The Hub hosts another version of the id: online loading returns it, and seeding never moves refs/main back."""
    seed_hf_cache(REPO_ID, root=bundle["root"])
    hub_model = tiny_classifier(seed=1)
    with LocalHubServer() as hub:
        local_hub_env(monkeypatch, hub, offline=False)
        hub_model.push_to_hub(REPO_ID)
        head = hub.head(REPO_ID)
        loaded = AutoModelForSequenceClassification.from_pretrained(REPO_ID)
        assert state_equal(loaded, hub_model) and not state_equal(loaded, bundle["model"].base_model.model)
        assert hub.errors == []
    storage = Path(constants.HF_HUB_CACHE) / "models--tac-ecg--tiny"
    assert (storage / "refs" / "main").read_text() == head
    seed_hf_cache(REPO_ID, root=bundle["root"])
    assert (storage / "refs" / "main").read_text() == head
    local_hub_env(monkeypatch, offline=True)
    assert state_equal(AutoModelForSequenceClassification.from_pretrained(REPO_ID), hub_model)
    # the bundled copy stays reachable offline under its own ref
    bundled = snapshot_download(REPO_ID, revision=BUNDLED_REF)
    assert Path(bundled).name == bundled_commit_hash(REPO_ID, bundle["root"])


def test_real_bundled_checkpoint_offline_after_seeding(tmp_path):
    """The one test on the package's own checkpoints: seed, then plain transformers offline in a fresh process."""
    if bundled_path("tac-ecg/resnet-cetp") is None:
        pytest.skip("tac-ecg/resnet-cetp is not bundled in this installation")
    home = tmp_path / "home"
    seed_hf_cache(["tac-ecg/resnet-cetp"], cache_dir=home / "hub")
    out = _python("import tac_ecg_hf\nfrom transformers import AutoModel\n"
                  "print(type(AutoModel.from_pretrained('tac-ecg/resnet-cetp')).__name__)", home)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["ResNet1dModel"]
