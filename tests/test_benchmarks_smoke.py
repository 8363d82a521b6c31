"""Smoke tests of the benchmark scripts: each runs with ``--quick`` (small settings) in a subprocess and writes JSON
with the expected keys and positive numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "benchmarks"


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _check_machine(machine: dict) -> None:
    for key in (
        "cpu_model",
        "cpu_count",
        "cores_available",
        "torch_threads",
        "torch",
        "date",
        "loadavg_start",
        "loadavg_end",
    ):
        assert key in machine, key
    assert _positive(machine["torch_threads"]) and _positive(machine["cores_available"])


def _import_common():
    sys.path.insert(0, str(BENCH_DIR))
    try:
        import common
    finally:
        sys.path.remove(str(BENCH_DIR))
    return common


def test_bench_speed_quick(tmp_path, cpsc2018_dir):
    """bench_speed.py --quick on 12 real CPSC2018 records (every section, no compile): JSON structure, positive
    throughputs and ratios, targets, markdown and PNGs. About 45 s at one thread on 2 busy cores."""
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "bench_speed.py"),
            "--quick",
            "--data-dir",
            str(cpsc2018_dir.parent),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, f"bench_speed.py failed:\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
    data = json.loads((tmp_path / "speed.json").read_text())
    assert data["benchmark"] == "speed" and "bench_speed.py --quick" in data["command"]
    _check_machine(data["machine"])
    assert data["machine"]["torch_threads"] == 1

    def ratios_positive(ratios: dict) -> None:
        for name, r in ratios.items():
            assert _positive(r["median"]) and r["min"] <= r["median"] <= r["max"], name
            assert all(_positive(v) for v in r["per_round"]), name

    def variants_positive(variants: dict) -> None:
        for name, v in variants.items():
            assert _positive(v["per_s"]) and _positive(v["median_s"]) and v["iqr_s"] >= 0 and v["n"] >= 1, name

    for model, r in data["forward"].items():
        assert set(r["variants"]) == {"fp32", "bf16"}, model  # --quick leaves torch.compile out
        variants_positive(r["variants"])
        ratios_positive(r["speedup_vs_fp32"])
        assert 0 < r["bf16_pooled_rel_error"] < 0.1 and 0 <= r["max_abs_dprob_vs_fp32"]["bf16"] < 0.1

    bulk = data["bulk"]
    assert set(bulk["variants"]) == {
        "bulk fp32",
        "forward fp32",
        "bulk bf16",
        "forward bf16",
        "single-record loop fp32",
        "read+prepare only",
    }
    variants_positive(bulk["variants"])
    ratios_positive(bulk["ratios"])
    assert bulk["rows_failed"] == {"fp32": 0, "bf16": 0}
    assert bulk["rows_written"] == {"fp32": bulk["records"], "bf16": bulk["records"]}
    assert bulk["windows"] >= bulk["records"] and 0 <= bulk["max_abs_dprob_bulk_best_vs_fp32"] < 0.1

    train = data["train"]
    assert set(train["variants"]) == {"adapter fp32", "full fp32", "adapter bf16", "full bf16"}
    variants_positive(train["variants"])
    ratios_positive(train["ratios"])
    assert 0 < train["trainable_params"]["adapter"] < train["trainable_params"]["full"]

    memory = data["memory"]
    assert [r["records"] for r in memory["runs"]] == sorted(data["settings"]["memory_sizes"])
    for r in memory["runs"]:
        assert r["rows_written"] == r["records"]
        assert _positive(r["peak_rss_mb"]) and _positive(r["tree_pss_peak_mb"]) and _positive(r["wall_s"])
    assert _positive(memory["growth"]) and memory["command"].startswith("tac-ecg predict DIR")

    cli = data["cli"]
    assert len(cli["commands"]) == 3 and all(_positive(s) for s in cli["best_s"].values())
    assert all(_positive(cli["ratios"][k]) for k in ("single_vs_import_torch_best", "folder_vs_single_best"))
    ratios_positive({k: v for k, v in cli["ratios"].items() if isinstance(v, dict)})
    imports = cli["importtime"]["import tac_ecg_hf"]
    assert imports["returncode"] == 0 and _positive(imports["total_s"]) and "tac_ecg_hf" in imports["by_package_s"]

    names = {t["name"] for t in data["targets"]}
    assert {
        "bulk_vs_forward_fp32",
        "adapter_vs_full_train_fp32",
        "memory_growth",
        "cli_single_vs_import_torch",
        "cli_folder_vs_single",
    } <= names
    assert all(_positive(t["value"]) and isinstance(t["met"], bool) for t in data["targets"])
    expected_plots = {f"speed_{n}.png" for n in ("forward", "bulk", "train", "cli", "memory")}
    assert {Path(p).name for p in data["plots"]} == expected_plots
    for png in data["plots"]:
        assert 0 < Path(png).stat().st_size < 200_000
    assert (tmp_path / "speed.md").read_text().startswith("Command: `python benchmarks/bench_speed.py --quick")
    assert (tmp_path / "SPEED_SECTION.md").read_text().startswith("## Speed (CPU)")


def test_run_measured_reports_the_child_not_the_parent():
    """The peak RSS of a child comes from under a small launcher: a big parent does not raise it (Linux records the
    pre-exec memory's peak in the child's ru_maxrss)."""
    common = _import_common()
    ballast = b"\x01" * (300 * 1024**2)  # this process's peak is at least 300 MB
    small = common.run_measured([sys.executable, "-c", "pass"])
    big = common.run_measured(
        [sys.executable, "-c", "import time; b = b'\\x01' * (200 * 2**20); time.sleep(0.3)"], sample_every=0.05
    )
    del ballast
    assert small["returncode"] == 0 and _positive(small["wall_s"])
    assert small["peak_rss_mb"] < 100 < 200 <= big["peak_rss_mb"] < 300
    assert 200 <= big["tree_pss_peak_mb"] < 300


def _unit_interval(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0


def test_bench_quality_quick(tmp_path, data_root, ptbxl_dir):
    """bench_quality.py --quick on the real data (tiny encoder, 24 records per split, 1 epoch, per-fold CETP, two
    methods, two label fractions, the ablations): JSON structure, metrics in [0, 1], storage ratios, tables, PNGs."""
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / "bench_quality.py"), "--quick", "--max-records", "24", "--folds", "10",
         "--methods", "lrc", "full", "--fractions", "0.5", "1", "--data-dir", str(data_root),
         "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--threads", "1"],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, f"bench_quality.py failed:\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
    data = json.loads((tmp_path / "out" / "quality_ptbxl-super_xresnet1d101_fractions.json").read_text())
    _check_machine(data["machine"])
    assert data["command"].startswith("python benchmarks/bench_quality.py --quick")
    methods = {(r["method"], r["fraction"]) for r in data["rows"]}
    assert methods == {(m, f) for m in ("lrc", "full") for f in (0.5, 1.0)}
    for row in data["rows"]:
        assert _unit_interval(row["test"]["macro_auc"]) and _unit_interval(row["test"]["macro_f1"])
        assert 0 < row["trainable_params"] <= row["total_params"]
    lrc = next(e for e in data["summary"] if e["method"] == "lrc" and e["fraction"] == 1.0)
    assert lrc["trainable_pct"] < 100 and lrc["adapter_bytes"] > 0
    report = (tmp_path / "out" / "quality_ptbxl-super_xresnet1d101_fractions.md").read_text()
    assert "## 100% of the training labels" in report and "softmax-AUC" in report
    for png in data["figures"]:
        assert (tmp_path / "out" / png).stat().st_size > 5_000


def test_paired_differences_pair_the_methods_fold_by_fold():
    """bench_quality's paired differences: per fold, only folds both methods ran, mean and sd of the differences."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        import bench_quality
    finally:
        sys.path.remove(str(BENCH_DIR))

    def row(method, fold, auc):
        return {"encoder": "e", "fraction": 0.1, "method": method, "fold": fold, "test": {"macro_auc": auc}}

    rows = [row("lrc", 1, 0.90), row("lrc", 2, 0.80), row("lrc", 3, 0.70), row("scratch", 1, 0.85),
            row("scratch", 2, 0.78), row("full", 3, 0.71)]  # fold 3 has no scratch, folds 1-2 no full
    pairs = {d["against"]: d for d in bench_quality.paired_differences(rows)}
    assert set(pairs) == {"scratch", "full"}
    scratch = pairs["scratch"]
    assert list(scratch["per_fold"]) == [1, 2]
    assert [round(v, 6) for v in scratch["per_fold"].values()] == [0.05, 0.02]
    mean, sd, n = scratch["difference"]
    assert n == 2 and math.isclose(mean, 0.035) and math.isclose(sd, math.sqrt(2 * 0.015**2))
    assert pairs["full"]["difference"][2] == 1 and math.isclose(pairs["full"]["difference"][0], -0.01)


def test_bench_zero_shot_quick(tmp_path, data_root):
    """bench_zero_shot.py on a few real records of each database: the bundled dual encoder, one prompt per class (the
    label map's descriptions for CPSC2018 / CinC 2017; lead-I records through the cinc2017 feature extractor)."""
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / "bench_zero_shot.py"), "--models", "tac-ecg/resnet-cetp", "--max-records",
         "8", "--data-dir", str(data_root), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, f"bench_zero_shot.py failed:\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
    data = json.loads((tmp_path / "zero_shot.json").read_text())
    _check_machine(data["machine"])
    assert [r["task"] for r in data["rows"]] == ["ptbxl-super", "cpsc2018", "cinc2017"]
    for row in data["rows"]:
        assert row["n"] == 8 and _unit_interval(row["macro_auc"])
        assert len(row["prompts"]) == len(row["auc_per_class"]) and all(row["prompts"].values())
    assert data["rows"][1]["prompts"]["I-AVB"] == "first-degree atrioventricular block"
    assert "| tac-ecg/resnet-cetp | cinc2017 |" in (tmp_path / "zero_shot.md").read_text()
