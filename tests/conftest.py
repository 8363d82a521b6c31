"""Shared pytest fixtures.

Real data: the folder of ``../shared/data`` (PTB-XL subset, CPSC2018, CinC2017) is found through the
environment variable ``TAC_ECG_DATA`` (default ``<repo>/../shared/data``); tests that need it are
skipped cleanly when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def ecg_data_root() -> Path:
    """Root of the real ECG data (``$TAC_ECG_DATA`` or ``<repo>/../shared/data``)."""
    return Path(os.environ.get("TAC_ECG_DATA", REPO_ROOT.parent / "shared" / "data")).expanduser()


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
