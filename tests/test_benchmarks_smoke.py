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
    assert imports["returncode"] == 0 and _positive(imports["total_s"]) and "torch" in imports["by_package_s"]

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


def test_bench_quality_quick(tmp_path, data_root, ptbxl_dir, cinc2017_dir):
    """bench_quality.py --quick on the real data (tiny encoder, 64 records per split, 1 epoch): JSON structure,
    metrics in [0, 1], parameter counts and storage ratios, tables and PNGs. About 30-60 s on 2 cores."""
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "bench_quality.py"),
            "--quick",
            "--data-dir",
            str(data_root),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, f"bench_quality.py failed:\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
    assert "| method |" in proc.stdout and "## Quality (real data)" in proc.stdout
    data = json.loads((tmp_path / "quality.json").read_text())
    assert data["benchmark"] == "quality"
    _check_machine(data["machine"])
    settings = data["settings"]
    assert settings["quick"] is True
    tasks, methods, seeds = settings["tasks"], settings["methods"], settings["seeds"]
    assert "ptbxl-super" in tasks and {"lrc", "linear", "full"} <= set(methods)
    assert _positive(data["encoder_params"])
    # CETP was pre-trained on training folds only; the test fold is held out
    assert set(data["cetp"]["pairs"]) <= {"train", "validation"} and _positive(data["cetp"]["pairs"]["train"])
    assert math.isfinite(data["cetp"]["metrics"]["train_loss"])

    runs = data["runs"]
    assert {(r["task"], r["method"], r["seed"]) for r in runs} == {
        (t, m, s) for t in tasks for m in methods for s in seeds
    }
    for r in runs:
        tm = r["test_metrics"]
        assert _unit_interval(tm["test_macro_auc"]) and _unit_interval(tm["test_macro_f1"]), (r["task"], r["method"])
        assert _unit_interval(tm["test_accuracy"])
        per_class = [v for k, v in tm.items() if k.startswith(("test_auc/", "test_f1/"))]
        assert per_class and all(_unit_interval(v) or math.isnan(v) for v in per_class)
        assert _unit_interval(r["val_metrics"]["val_macro_auc"])
        assert 0 < r["trainable_params"] <= r["total_params"]
        assert r["train_seconds"] > 0
    by = {(r["task"], r["method"]): r for r in runs if r["seed"] == seeds[0]}
    for task in tasks:
        assert (
            by[(task, "linear")]["trainable_params"]
            < by[(task, "lrc")]["trainable_params"]
            < by[(task, "full")]["trainable_params"]
        )
        assert by[(task, "full")]["trainable_params"] == by[(task, "full")]["total_params"]

    for task in tasks:
        for method in methods:
            s = data["summary"][task][method]
            assert s["n_seeds"] == len(seeds)
            assert _unit_interval(s["test_macro_auc_mean"]) and _unit_interval(s["test_macro_f1_mean"])
            assert 0 < s["trainable_pct"] <= 100
    storage = data["storage"]
    assert storage["k"] == [1, 2, 3, 4]
    for task in tasks:
        rows = storage["per_task"][task]["methods"]
        assert all(abs(rows["full"]["stored_pct_of_full"][k] - 100.0) < 1e-6 for k in ("1", "2", "3", "4"))
        lrc = [rows["lrc"]["stored_pct_of_full"][k] for k in ("1", "2", "3", "4")]
        assert lrc == sorted(lrc, reverse=True) and lrc[-1] < 100.0  # sharing the encoder pays off as tasks are added

    zs = data["zero_shot"]
    assert zs["task"] == "ptbxl-super" and zs["split"] == "test"
    assert {"en-labels", "en", "de", "en+de"} <= set(zs["prompt_sets"])
    for name, ps in zs["prompt_sets"].items():
        assert _unit_interval(ps["macro_auc"]), name
        assert set(ps["prompts"]) == {"NORM", "MI", "STTC", "CD", "HYP"} and all(ps["prompts"].values())

    names = {Path(p).name for p in data["plots"]}
    assert "roc_lrc_ptbxl-super.png" in names and "param_efficiency_ptbxl-super.png" in names
    for png in data["plots"]:
        assert Path(png).is_file() and 0 < Path(png).stat().st_size < 200_000
    assert (tmp_path / "quality.md").is_file()
