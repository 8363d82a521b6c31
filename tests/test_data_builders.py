"""The `datasets` builders of tac_ecg_hf.data.builders: one ECGDatasetBuilder over every database reader, examples
holding the record prepared by the feature extractor, the training transform, task datasets across sources, ECG-text
pairs, and the cache (tiny subsets through max_records)."""

from __future__ import annotations

import time

import datasets
import numpy as np
import pandas as pd
import pytest
from test_data_readers import make_chapman

from tac_ecg_hf.data import (
    PTBXL,
    CinC2017,
    ECGFeatureExtractor,
    ECGInputError,
    ECGTransform,
    assign_split,
    decode_signal,
    get_database,
    load_cetp_pairs,
    load_ecg_dataset,
    load_task_dataset,
)
from tac_ecg_hf.tasks import get_task
from tac_ecg_hf.training import task_feature_extractor

SPLITS = ("train", "validation", "test")


@pytest.fixture(autouse=True)
def _quiet_progress():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets_cache")


def test_cinc2017_examples_hold_the_prepared_record(cinc2017_dir, cache):
    fe = task_feature_extractor("cinc2017", ECGFeatureExtractor())  # 12-lead model, lead I read
    ds = load_ecg_dataset(
        "cinc2017", cinc2017_dir, task="cinc2017", feature_extractor=fe, cache_dir=cache, max_records=4
    )
    assert list(ds) == list(SPLITS) and all(len(ds[s]) == 4 for s in SPLITS)
    features = ds["train"].features
    assert features["labels"] == datasets.ClassLabel(names=["N", "A", "O", "~"])
    assert features["signal"] == datasets.Value("binary") and features["fold"] == datasets.Value("int16")
    db = CinC2017(cinc2017_dir)
    assert ds["train"]["record_id"] == db.record_ids("train")[:4]
    assert set(ds["train"]["database"]) == {"cinc2017"} and set(ds["train"]["fold"]) == {-1}
    for example in ds["train"]:
        record = db.load(example["record_id"])
        signal = decode_signal(example)
        expected = fe.prepare(record).signal
        assert signal.shape == expected.shape == (12, expected.shape[1]) and signal[1:].any() == 0  # lead I only
        np.testing.assert_allclose(signal, expected, rtol=1e-3, atol=1e-3)  # float16 storage
        assert features["labels"].int2str(example["labels"]) == db.task_labels(record, "cinc2017")[0]


def test_cpsc2018_multi_label_vectors(cpsc2018_dir, cache):
    ds = load_ecg_dataset("cpsc2018", cpsc2018_dir, task="cpsc2018", cache_dir=cache, max_records=3)
    assert ds["train"].features["labels"] == datasets.List(datasets.Value("float32"), length=9)
    db = get_database("cpsc2018", cpsc2018_dir)
    spec = get_task("cpsc2018")
    for example in ds["validation"]:
        assert assign_split(example["record_id"]) == db.split_of(example["record_id"]) == "validation"
        labels = db.task_labels(db.load(example["record_id"]), "cpsc2018")
        assert [name for name, v in zip(spec.labels, example["labels"]) if v] == sorted(labels, key=spec.labels.index)


def test_ptbxl_folds_become_splits(ptbxl_dir, cache):
    ds = load_ecg_dataset("ptbxl", ptbxl_dir, task="ptbxl-super", cache_dir=cache, max_records=6)
    database = pd.read_csv(ptbxl_dir / "ptbxl_database.csv", index_col="ecg_id")
    for split, folds in {"train": set(range(1, 9)), "validation": {9}, "test": {10}}.items():
        ids = [int(i) for i in ds[split]["record_id"]]
        assert len(ids) == 6 and {int(database.at[i, "strat_fold"]) for i in ids} <= folds
        assert list(ds[split]["fold"]) == [int(database.at[i, "strat_fold"]) for i in ids]
    labels = np.asarray(ds["test"]["labels"])
    assert labels.shape == (6, 5) and (labels.sum(axis=1) >= 1).all()  # records without a superclass are left out


def test_transform_windows_and_reproducible_random_crops(cinc2017_dir, cache):
    """Validation: the centre window. Training: a random crop per example drawn from (seed, epoch, record), so the
    same example gets the same crop whatever batch it is in (a resumed run skips batches without transforming them)
    and another crop in another epoch."""
    fe = task_feature_extractor("cinc2017", ECGFeatureExtractor())
    ds = load_ecg_dataset(
        "cinc2017", cinc2017_dir, task="cinc2017", feature_extractor=fe, cache_dir=cache, max_records=4
    )
    rows = ds["train"][:4]
    centre = ECGTransform(fe, train=False)(rows)["input_values"]
    for i, window in enumerate(centre):
        prepared = fe.prepare(CinC2017(cinc2017_dir).load(rows["record_id"][i]))
        np.testing.assert_allclose(window, fe.crop_window(prepared, "center"), atol=2e-2)
    train = ECGTransform(fe, train=True, seed=0)
    together = train(rows)["input_values"]
    alone = train({k: v[2:3] for k, v in rows.items()})["input_values"][0]
    np.testing.assert_array_equal(together[2], alone)
    np.testing.assert_array_equal(ECGTransform(fe, train=True, seed=0)(rows)["input_values"][0], together[0])
    train.epoch = 1
    assert any(not np.array_equal(a, b) for a, b in zip(train(rows)["input_values"], together))
    assert all(w.shape == (12, 1000) and w.dtype == np.float32 for w in together)
    assert train(rows)["labels"] == rows["labels"]


def test_task_dataset_concatenates_sources(data_root, cache):
    fe = task_feature_extractor("cinc2017", ECGFeatureExtractor())  # lead I of the 12-lead model, as training reads it
    ds = load_task_dataset("cinc2017", data_root, sources=["cinc2017", "ptbxl"], feature_extractor=fe, cache_dir=cache,
                           max_records=3)
    for split in SPLITS:
        assert set(ds[split]["database"]) == {"cinc2017", "ptbxl"}
        assert ds[split].features["labels"] == datasets.ClassLabel(names=["N", "A", "O", "~"])
    with pytest.raises(ECGInputError, match="No data for task 'cinc2017'"):
        load_task_dataset("cinc2017", data_root / "nothing-here", cache_dir=cache)


def test_cetp_pairs_carry_the_database_text(ptbxl_dir, data_root, cache):
    pairs = load_cetp_pairs(data_root, sources=["ptbxl"], text_source="scp", cache_dir=cache, max_records=3)
    assert list(pairs) == list(SPLITS) and "labels" not in pairs["train"].features
    db = PTBXL(ptbxl_dir)
    for example in pairs["validation"]:
        assert example["text"] == db.text(db.load(example["record_id"]), "scp")
    both = load_cetp_pairs(data_root, sources=["ptbxl"], text_source="both", cache_dir=cache, max_records=3)
    assert all(t.startswith(s) for t, s in zip(both["train"]["text"], pairs["train"]["text"]))
    with pytest.raises(ValueError, match="text_source"):
        load_cetp_pairs(data_root, sources=["ptbxl"], text_source="notes", cache_dir=cache, max_records=3)


def test_cache_is_reused_and_never_stale(tmp_path):
    root = tmp_path / "chapman"
    names = ["SB", "AFIB", "SR", "ST", "SA", "AF", "SVT", "SR", "XYZ", "SB"] * 2
    rhythms = {f"MUSE_{i}": r for i, r in enumerate(names)}
    make_chapman(root, rhythms, n=5000)
    cache = tmp_path / "cache"
    ds = load_ecg_dataset("chapman", root, task="chapman", cache_dir=cache)
    assert sum(len(ds[s]) for s in SPLITS) == 18  # the two 'XYZ' rhythms have no chapman label
    train_ids = [rid for rid in rhythms if rhythms[rid] != "XYZ" and assign_split(rid) == "train"]
    assert ds["train"]["record_id"] == train_ids
    again = load_ecg_dataset("chapman", root, task="chapman", cache_dir=cache)
    assert again["train"].cache_files == ds["train"].cache_files
    other_fe = ECGFeatureExtractor(num_samples=500, sampling_rate=50, bandpass=(0.5, 20.0))
    shorter = load_ecg_dataset("chapman", root, task="chapman", feature_extractor=other_fe, cache_dir=cache)
    assert shorter["train"].cache_files != ds["train"].cache_files
    assert len(decode_signal(shorter["train"][0])[0]) == 500  # 10 s at 50 Hz
    table = pd.read_excel(root / "Diagnostics.xlsx")
    first = train_ids[0]
    table.loc[table["FileName"] == first, "Rhythm"] = "AFIB" if rhythms[first] not in ("AFIB", "AF") else "SB"
    time.sleep(0.01)
    table.to_excel(root / "Diagnostics.xlsx", index=False)
    rebuilt = load_ecg_dataset("chapman", root, task="chapman", cache_dir=cache)
    assert rebuilt["train"].cache_files != ds["train"].cache_files
    assert rebuilt["train"]["labels"][0] != ds["train"]["labels"][0]


def test_unusable_records_are_skipped_with_a_summary_or_raise(tmp_path):
    root = tmp_path / "chapman"
    make_chapman(root, {f"R{i}": "SR" for i in range(6)}, n=5000)
    bad = next(rid for rid in (f"R{i}" for i in range(6)) if assign_split(rid) == "train")
    csv = root / "ECGData" / f"{bad}.csv"
    lines = csv.read_text().splitlines()
    lines[3] = ",".join(["nan"] * 12)
    csv.write_text("\n".join(lines))
    with pytest.warns(UserWarning, match=rf"skipped 1 unusable records.*{bad}.*NaN"):
        ds = load_ecg_dataset("chapman", root, task="chapman", cache_dir=tmp_path / "c1")
    assert bad not in ds["train"]["record_id"]
    with pytest.raises(ECGInputError, match=bad):
        load_ecg_dataset("chapman", root, task="chapman", cache_dir=tmp_path / "c2", on_error="raise")


def test_builder_arguments(tmp_path, cinc2017_dir):
    with pytest.raises(ValueError, match="Unknown database 'mitbih'"):
        load_ecg_dataset("mitbih", tmp_path)
    with pytest.raises(ECGInputError, match="is not a directory"):
        load_ecg_dataset("cinc2017", tmp_path / "missing", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="max_records"):
        load_ecg_dataset("cinc2017", cinc2017_dir, cache_dir=tmp_path, max_records=0)
    with pytest.raises(KeyError, match="Unknown task"):
        load_ecg_dataset("cinc2017", cinc2017_dir, task="nope", cache_dir=tmp_path)
