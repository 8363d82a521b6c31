"""Shared pytest fixtures.

Real data: the folder ``../shared/data`` (PTB-XL subset, CPSC2018, CinC2017, CinC2020, LUDB, Chapman labels) is found
through the environment variable ``TAC_ECG_DATA`` (default: ``shared/data`` beside the checkout or one of its parent
folders); tests that need it are skipped cleanly when it is absent.

Tiny models: the definitions live in :mod:`support.tiny` (also imported by the scripts tests run in subprocesses);
the fixtures below build each once per session. Bounded runs: :mod:`support.capped` runs a case in a fresh child
process under a 6 GB address-space cap and a time limit (``capped_runner``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def ecg_data_root() -> Path:
    """Root of the real ECG data: ``$TAC_ECG_DATA``, else ``shared/data`` next to the checkout or next to one of its
    parent folders (a git worktree under ``<project>/wt/<name>`` finds ``<project>/shared/data``)."""
    if os.environ.get("TAC_ECG_DATA"):
        return Path(os.environ["TAC_ECG_DATA"]).expanduser()
    for folder in REPO_ROOT.parents:
        if (folder / "shared" / "data").is_dir():
            return folder / "shared" / "data"
    return REPO_ROOT.parent / "shared" / "data"


def _dataset_dir(name: str, marker: str) -> Path:
    path = ecg_data_root() / name
    if not (path / marker).is_file():
        pytest.skip(f"real {name} data not found at {path} (set TAC_ECG_DATA to the folder holding {name}/)")
    return path


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = ecg_data_root()
    if not root.is_dir():
        pytest.skip(f"real ECG data not found at {root} (set TAC_ECG_DATA)")
    return root


@pytest.fixture(scope="session")
def ptbxl_dir() -> Path:
    return _dataset_dir("ptbxl", "ptbxl_database.csv")


@pytest.fixture(scope="session")
def cpsc2018_dir() -> Path:
    return _dataset_dir("cpsc2018", "A0001.hea")


@pytest.fixture(scope="session")
def cinc2017_dir() -> Path:
    return _dataset_dir("cinc2017", "REFERENCE.csv")


@pytest.fixture(scope="session")
def cinc2020_dir() -> Path:
    return _dataset_dir("cinc2020", "HR00009.hea")


@pytest.fixture(scope="session")
def ludb_dir() -> Path:
    return _dataset_dir("ludb", "ludb.csv")


@pytest.fixture(scope="session")
def chapman_dir() -> Path:
    return _dataset_dir("chapman", "Diagnostics.xlsx")


# ---------------------------------------------------------------------------------------------------------------------
# tiny models


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """A tiny model repository (XResNet1d encoder, cinc2017 + cpsc2018 adapters) in the published layout. Read-only:
    tests that change files use ``tiny_repo_copy``."""
    from support.tiny import build_tiny_repo

    return build_tiny_repo(tmp_path_factory.mktemp("tiny_repo") / "model")


@pytest.fixture
def tiny_repo_copy(tiny_repo, tmp_path) -> Path:
    """A private copy of ``tiny_repo`` that a test may edit."""
    return Path(shutil.copytree(tiny_repo, tmp_path / "model"))


@pytest.fixture
def tiny_cetp():
    """A fresh CETP dual encoder (tiny XResNet1d, tiny random BERT text tower, projection 16)."""
    from support.tiny import tiny_cetp as build

    return build()


@pytest.fixture(scope="session")
def bundled_xresnet() -> Path:
    """The bundled ``tac-ecg/xresnet1d101-cetp`` folder (read-only: copy it before editing)."""
    from tac_ecg_hf.hub import bundled_path

    path = bundled_path("tac-ecg/xresnet1d101-cetp")
    if path is None:
        pytest.skip("this installation bundles no tac-ecg/xresnet1d101-cetp")
    return path


# ---------------------------------------------------------------------------------------------------------------------
# bounded runs


@pytest.fixture(scope="session")
def capped_runner(tmp_path_factory):
    """Runs cases in fresh child processes under 6 GB of address space and a time limit (see support.capped), offline,
    with an empty Hugging Face cache."""
    from support.capped import CappedRunner

    hf_home = tmp_path_factory.mktemp("capped_hf_home")
    runner = CappedRunner(env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)})
    yield runner
    runner.close()


# -- the local test Hub (tests/support/local_hub.py) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def hub():
    """A Hub-compatible server on 127.0.0.1 for one test module; server-side errors fail the module."""
    from support.local_hub import LocalHubServer

    with LocalHubServer() as server:
        yield server
        assert server.errors == [], "\n".join(server.errors)


@pytest.fixture
def hub_env(hub, tmp_path, monkeypatch):
    """The HF stack pointed at ``hub``, online, with an empty HF home."""
    from support.local_hub import local_hub_env

    local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home", offline=False)
    return hub


@pytest.fixture(scope="module")
def offline_home(tmp_path_factory):
    """An empty HF_HOME, offline, seeded by ``tac-ecg seed-cache`` (the README's set-up) for the whole module."""
    from support.local_hub import local_hub_env

    from tac_ecg_hf.cli import main

    home = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as mp:
        local_hub_env(mp, None, cache_dir=home, offline=True)
        assert main(["seed-cache"]) == 0
        yield home
