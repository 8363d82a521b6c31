"""Corpora that do not fit in memory stream through ``datasets``: the builder as an ``IterableDataset`` gives the same
examples as the cached one, the transform applies to it, and CETP pre-trains from a stream (``--streaming``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np

from tac_ecg_hf.data import ECGFeatureExtractor, ECGTransform
from tac_ecg_hf.data.builders import load_ecg_dataset, with_transform

REPO = Path(__file__).resolve().parents[1]


def test_streamed_examples_equal_the_cached_ones(cpsc2018_dir, tmp_path):
    fe = ECGFeatureExtractor()
    cached = load_ecg_dataset("cpsc2018", cpsc2018_dir, task="cpsc2018", feature_extractor=fe, cache_dir=tmp_path)
    streamed = load_ecg_dataset("cpsc2018", cpsc2018_dir, task="cpsc2018", feature_extractor=fe, streaming=True)
    assert isinstance(streamed["train"], datasets.IterableDataset)
    first = [example for _, example in zip(range(3), streamed["train"])]
    assert [e["record_id"] for e in first] == cached["train"]["record_id"][:3]
    assert [e["signal"] for e in first] == cached["train"][:3]["signal"]
    windows = with_transform(streamed["validation"], ECGTransform(fe, train=False))
    reference = with_transform(cached["validation"], ECGTransform(fe, train=False))
    got = next(iter(windows))
    assert set(got) == {"input_values", "labels"}
    np.testing.assert_array_equal(np.asarray(got["input_values"]), np.asarray(reference[0]["input_values"]))


def test_cetp_pretrains_from_a_stream(data_root, tmp_path):
    import os

    out = tmp_path / "cetp"
    cmd = [
        sys.executable, str(REPO / "examples" / "pretrain_cetp.py"), "--data_dir", str(data_root), "--sources", "ludb",
        "--encoder", "resnet1d18-small", "--encoder_overrides", '{"layers": [1, 1, 1, 1], "base_width": 8}',
        "--streaming", "--per_device_train_batch_size", "8", "--eval_strategy", "no", "--save_strategy", "no",
        "--disable_tqdm", "true",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd + ["--max_steps", "2", "--output_dir", str(out)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "cetp_metrics.json").read_text())
    assert metrics["train_pairs"] is None and metrics["train_runtime"] > 0  # a stream has no length
    assert (out / "cetp" / "model.safetensors").is_file() and (out / "model.safetensors").is_file()
    refused = subprocess.run(cmd + ["--output_dir", str(tmp_path / "x")], capture_output=True, text=True, timeout=300,
                             env=env)
    assert refused.returncode != 0 and "--streaming needs --max_steps" in refused.stderr
