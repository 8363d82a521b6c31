"""Tests of the `datasets` builders in tac_ecg_hf.data.builders (tiny subsets via max_records)."""

from __future__ import annotations

import os
import time
import warnings

import datasets
import numpy as np
import pandas as pd
import pytest

from tac_ecg_hf.data import (
    CinC2017Builder,
    ECGInputError,
    ECGPreprocessor,
    assign_split,
    get_builder,
    load_cetp_pairs,
    load_ecg_dataset,
    read_cinc2017,
    read_cpsc2018,
)
from tac_ecg_hf.tasks import STANDARD_LEADS
from test_data_readers import make_chapman

SPLITS = {"train", "validation", "test"}


@pytest.fixture(autouse=True)
def _quiet_progress():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def test_cinc2017_builder(cinc2017_dir, tmp_path):
    ds = load_ecg_dataset("cinc2017", cinc2017_dir, cache_dir=tmp_path, max_records=4)
    assert set(ds) == SPLITS and all(len(ds[s]) == 4 for s in SPLITS)
    features = ds["train"].features
    assert features["input_values"] == datasets.Array2D((12, 1000), "float16")
    assert features["labels"] == datasets.ClassLabel(names=["N", "A", "O", "~"])
    assert features["record_id"] == datasets.Value("string")
    row = ds["train"].with_format("numpy")[0]
    x = row["input_values"]
    assert x.shape == (12, 1000) and x.dtype in (np.float16, np.float32)  # stored as float16
    assert np.abs(x[0]).max() > 0 and not x[1:].any()  # the single lead goes to lead I, the rest is zero
    expected = {r.record_id: r for r in read_cinc2017(cinc2017_dir, split="train", limit=4)}
    assert list(ds["train"]["record_id"]) == list(expected)
    assert [features["labels"].int2str(i) for i in ds["train"]["labels"]] == [r.labels[0] for r in expected.values()]
    # same preprocessing as ECGPreprocessor (up to float16 rounding)
    first = expected[row["record_id"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = ECGPreprocessor(fill_missing_leads=True)(first)
    np.testing.assert_allclose(x.astype(np.float32), reference, atol=2e-2, rtol=1e-2)
    torch_row = ds["test"].with_format("torch")[0]
    assert tuple(torch_row["input_values"].shape) == (12, 1000)


def test_cpsc2018_builder_multilabel(cpsc2018_dir, tmp_path):
    ds = load_ecg_dataset("cpsc2018", cpsc2018_dir, cache_dir=tmp_path, max_records=3, num_samples=500, sampling_rate=50)
    features = ds["train"].features
    assert features["labels"] == datasets.List(datasets.Value("float32"), length=9)
    assert features["input_values"] == datasets.Array2D((12, 500), "float16")
    data = ds["validation"].with_format("numpy")[:]
    assert data["input_values"].shape == (3, 12, 500)
    labels = data["labels"]
    assert labels.shape == (3, 9) and labels.dtype == np.float32 and set(np.unique(labels)) <= {0.0, 1.0}
    for rid, vector in zip(data["record_id"], labels):
        assert assign_split(rid) == "validation"
        (record,) = read_cpsc2018(cpsc2018_dir, record_ids=[rid])
        assert [name for name, v in zip(("Normal", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"), vector) if v] == list(record.labels)
    x = data["input_values"].astype(np.float32)
    np.testing.assert_allclose(x.mean(axis=-1), 0, atol=0.02)  # z-scored per lead


def test_ptbxl_builder_folds_map_to_splits(ptbxl_dir, tmp_path):
    ds = load_ecg_dataset("ptbxl-super", ptbxl_dir, cache_dir=tmp_path, max_records=6, array_file="ptbxl_1519_100hz_f16.npz")
    assert ds["train"].features["labels"] == datasets.List(datasets.Value("float32"), length=5)
    database = pd.read_csv(ptbxl_dir / "ptbxl_database.csv", index_col="ecg_id")
    expected_folds = {"train": set(range(1, 9)), "validation": {9}, "test": {10}}
    for split, folds in expected_folds.items():
        ids = [int(i) for i in ds[split]["record_id"]]
        assert len(ids) == 6 and {int(database.at[i, "strat_fold"]) for i in ids} <= folds
    labels = ds["test"].with_format("numpy")[:]["labels"]
    assert labels.shape == (6, 5) and (labels.sum(axis=1) >= 1).all()  # ptbxl-super drops unlabelled records


def test_cetp_pairs_builder(ptbxl_dir, tmp_path):
    report = load_cetp_pairs(ptbxl_dir, cache_dir=tmp_path, max_records=3)
    assert set(report["train"].features) == {"input_values", "text", "record_id"}
    assert all(isinstance(t, str) and t for t in report["train"]["text"])
    scp = load_cetp_pairs(ptbxl_dir, text_source="scp", cache_dir=tmp_path, max_records=3)
    assert list(scp["train"]["record_id"]) == list(report["train"]["record_id"])
    assert all(t.endswith(".") and t == t.strip() for t in scp["train"]["text"])
    both = load_cetp_pairs(ptbxl_dir, text_source="both", cache_dir=tmp_path, max_records=3)
    for b, s, r in zip(both["train"]["text"], scp["train"]["text"], report["train"]["text"]):
        assert b == f"{s} {r}"
    with pytest.raises(ValueError, match="text_source"):
        load_cetp_pairs(ptbxl_dir, text_source="notes", cache_dir=tmp_path)


def test_scp_codes_to_text(ptbxl_dir):
    from tac_ecg_hf.data import scp_codes_to_text
    from tac_ecg_hf.data.readers import load_ptbxl_metadata

    _, statements = load_ptbxl_metadata(ptbxl_dir)
    assert scp_codes_to_text({"NORM": 100.0, "SR": 0.0}, statements) == "sinus rhythm. normal ECG."
    text = scp_codes_to_text({"IMI": 35.0, "AFIB": 0.0, "LVH": 100.0}, statements, qualify=True)
    assert text == "atrial fibrillation. left ventricular hypertrophy. possible inferior myocardial infarction."


def test_chapman_builder_and_stale_cache(tmp_path):
    root = tmp_path / "chapman"
    rhythms = {f"MUSE_{i}": r for i, r in enumerate(["SB", "AFIB", "SR", "ST", "SA", "AF", "SVT", "SR", "XYZ", "SB"] * 2)}
    make_chapman(root, rhythms, n=5000)
    cache = tmp_path / "cache"
    ds = load_ecg_dataset("chapman", root, cache_dir=cache)
    features = ds["train"].features
    assert features["labels"] == datasets.ClassLabel(names=["SB", "AFIB", "GSVT", "SR"])
    assert sum(len(ds[s]) for s in SPLITS) == 18  # 'XYZ' rows are dropped
    train_ids = [rid for rid in rhythms if rhythms[rid] != "XYZ" and assign_split(rid) == "train"]
    assert list(ds["train"]["record_id"]) == train_ids
    names = [features["labels"].int2str(i) for i in ds["train"]["labels"]]
    group = {"SB": "SB", "AFIB": "AFIB", "AF": "AFIB", "SR": "SR", "SA": "SR", "ST": "GSVT", "SVT": "GSVT"}
    assert names == [group[rhythms[rid]] for rid in train_ids]

    # same config: the cache is reused
    again = load_ecg_dataset("chapman", root, cache_dir=cache)
    assert again["train"].cache_files == ds["train"].cache_files
    # other parameters: another cache entry with the new shape
    shorter = load_ecg_dataset("chapman", root, cache_dir=cache, num_samples=250, sampling_rate=25)
    assert shorter["train"].features["input_values"].shape == (12, 250)
    assert shorter["train"].cache_files != ds["train"].cache_files
    # edited source files: the fingerprint changes and the dataset is rebuilt, not served stale
    table = pd.read_excel(root / "Diagnostics.xlsx")
    first = train_ids[0]
    table.loc[table["FileName"] == first, "Rhythm"] = "AFIB" if rhythms[first] != "AFIB" else "SB"
    time.sleep(0.01)
    table.to_excel(root / "Diagnostics.xlsx", index=False)
    rebuilt = load_ecg_dataset("chapman", root, cache_dir=cache)
    assert rebuilt["train"].cache_files != ds["train"].cache_files
    assert rebuilt["train"].features["labels"].int2str(rebuilt["train"]["labels"][0]) != names[0]


@pytest.mark.filterwarnings("ignore:.*split is empty")
def test_builder_skips_unusable_records_with_summary(tmp_path):
    root = tmp_path / "chapman"
    make_chapman(root, {f"R{i}": "SR" for i in range(6)}, n=1000)
    bad = next(rid for rid in (f"R{i}" for i in range(6)) if assign_split(rid) == "train")
    csv = root / "ECGData" / f"{bad}.csv"
    lines = csv.read_text().splitlines()
    lines[3] = ",".join(["nan"] * 12)
    csv.write_text("\n".join(lines))
    with pytest.warns(UserWarning, match=rf"skipped 1 unusable records.*{bad}.*NaN"):
        ds = load_ecg_dataset("chapman", root, cache_dir=tmp_path / "c1")
    assert bad not in ds["train"]["record_id"]
    with pytest.raises(ECGInputError, match=bad):
        load_ecg_dataset("chapman", root, cache_dir=tmp_path / "c2", on_error="raise")


def test_builder_arguments(tmp_path, cinc2017_dir):
    with pytest.raises(KeyError, match="Unknown ECG dataset 'mitbih'"):
        load_ecg_dataset("mitbih", tmp_path)
    with pytest.raises(ECGInputError, match="does not exist"):
        load_ecg_dataset("cinc2017", tmp_path / "missing", cache_dir=tmp_path)
    with pytest.raises(ECGInputError, match="pass data_dir"):
        CinC2017Builder(cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="max_records"):
        get_builder("cinc2017", cinc2017_dir, tmp_path, max_records=0)
    a = get_builder("cinc2017", cinc2017_dir, tmp_path, max_records=2)
    b = get_builder("cinc2017", os.path.relpath(cinc2017_dir), tmp_path, max_records=2)
    c = get_builder("cinc2017", cinc2017_dir, tmp_path, max_records=3)
    assert a.cache_dir == b.cache_dir != c.cache_dir
    assert a.preprocessor.fill_missing_leads and a.preprocessor.target_leads == STANDARD_LEADS
