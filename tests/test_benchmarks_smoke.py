"""Smoke tests of the benchmark scripts: each runs with ``--quick`` (tiny encoder, few steps) in a subprocess and
writes JSON with the expected keys and positive numbers. Each speed/scale test takes about 20-30 s on 2 cores."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "benchmarks"


def _run_quick(script: str, out: Path, *extra: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / script), "--quick", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
    assert "| encoder |" in proc.stdout  # a markdown table was printed
    return json.loads((out / script.replace("bench_", "").replace(".py", ".json")).read_text())


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _check_machine(machine: dict) -> None:
    for key in ("cpu_model", "cpu_count", "cores_available", "torch_threads", "torch", "date", "loadavg_start", "loadavg_end"):
        assert key in machine, key
    assert _positive(machine["torch_threads"]) and _positive(machine["cores_available"])


def test_bench_speed_quick(tmp_path):
    data = _run_quick("bench_speed.py", tmp_path)
    assert data["benchmark"] == "speed"
    _check_machine(data["machine"])
    assert data["encoders"], "no encoder measured"
    for enc, r in data["encoders"].items():
        train = r["training"]
        assert set(train["methods"]) == {"lrc-serial", "lrc-parallel", "full"}
        for m, s in train["methods"].items():
            assert _positive(s["samples_per_s"]) and _positive(s["step_ms_median"]), (enc, m)
            assert s["samples_per_s_p25"] <= s["samples_per_s"] <= s["samples_per_s_p75"]
        assert train["methods"]["lrc-serial"]["trainable_params"] < train["methods"]["full"]["trainable_params"]
        for key in ("lrc-serial/full", "lrc-parallel/full"):
            assert _positive(train["ratios"][key]["samples_per_s_ratio"])
        inf = r["inference"]
        assert set(inf["models"]) == {"bare", "lrc-serial", "lrc-parallel", "lrc-parallel-merged"}
        assert all(_positive(s["samples_per_s"]) for s in inf["models"].values())
        assert inf["merge_max_abs_diff"] < 1e-4 and not inf["merged_has_adapter_layers"]
        sw = r["switching"]
        assert set(sw["set_adapter_us"]) == {"lrc-serial", "lrc-parallel"}
        assert all(_positive(s["median"]) for s in sw["set_adapter_us"].values())
        assert _positive(sw["load_adapter_ms"]["median"]) and sw["reload_logits_equal"] is True
        assert _positive(sw["full_from_pretrained_ms"]["median"]) and _positive(sw["full_state_dict_swap_ms"]["median"])
        assert all(_positive(b) for b in sw["adapter_file_bytes"].values())
        mem = r["memory"]
        assert set(mem) == {"lrc-serial", "lrc-parallel", "full"}
        for m, s in mem.items():
            assert _positive(s["peak_rss_mb"]) and _positive(s["param_memory_bytes"]), (enc, m)
            assert math.isfinite(s["peak_rss_delta_mb"])
            if sys.platform.startswith("linux"):  # the child's own peak, not one inherited from the parent
                assert s["peak_reset"] is True, s
        assert mem["lrc-serial"]["param_memory_bytes"] < mem["full"]["param_memory_bytes"]
    for png in data["plots"]:
        assert Path(png).is_file() and Path(png).stat().st_size < 200_000
    assert (tmp_path / "speed.md").is_file()


def test_bench_scale_quick(tmp_path):
    data = _run_quick("bench_scale.py", tmp_path)
    assert data["benchmark"] == "scale"
    _check_machine(data["machine"])
    rows = data["results"]
    settings = data["settings"]
    expected = {(length, settings["fixed_batch"]) for length in settings["lengths"]}
    expected |= {(settings["fixed_length"], batch) for batch in settings["batch_sizes"]}
    for mode in ("inference", "train"):
        got = {(r["length"], r["batch"]) for r in rows if r["mode"] == mode}
        assert got == expected, (mode, got)
    for r in rows:
        for key in ("step_ms_median", "samples_per_s", "ms_per_sample", "peak_rss_mb", "n_steps"):
            assert _positive(r[key]), (r["mode"], r["length"], r["batch"], key)
        assert math.isfinite(r["peak_rss_delta_mb"])
        if sys.platform.startswith("linux"):
            assert r["peak_reset"] is True, r
    assert {(f["encoder"], f["mode"]) for f in data["fits"]} == {(e, m) for e in settings["encoders"] for m in ("inference", "train")}
    png = Path(data["plots"][0])
    assert png.is_file() and 0 < png.stat().st_size < 200_000
    assert (tmp_path / "scale.md").is_file()


def test_bench_common_statistics():
    sys.path.insert(0, str(BENCH_DIR))
    try:
        import common
    finally:
        sys.path.remove(str(BENCH_DIR))
    s = common.summarize([3.0, 1.0, 2.0, 4.0])
    assert s["median"] == 2.5 and s["min"] == 1.0 and s["max"] == 4.0 and s["n"] == 4
    assert s["p25"] == pytest.approx(1.75) and s["p75"] == pytest.approx(3.25)
    t = common.throughput_summary([0.5, 0.25, 1.0], batch=10)
    assert t["samples_per_s"] == pytest.approx(20.0)
    assert t["samples_per_s_p25"] <= t["samples_per_s"] <= t["samples_per_s_p75"]
    table = common.markdown_table(["a", "b"], [[1, 2.5]])
    assert table.splitlines()[0] == "| a | b |" and "2.50" in table


def _unit_interval(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0


def test_bench_quality_quick(tmp_path, data_root, ptbxl_dir, cinc2017_dir):
    """bench_quality.py --quick on the real data (tiny encoder, 64 records per split, 1 epoch): JSON structure,
    metrics in [0, 1], parameter counts and storage ratios, tables and PNGs. About 30-60 s on 2 cores."""
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / "bench_quality.py"), "--quick", "--data-dir", str(data_root), "--out", str(tmp_path)],
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
    assert {(r["task"], r["method"], r["seed"]) for r in runs} == {(t, m, s) for t in tasks for m in methods for s in seeds}
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
        assert by[(task, "linear")]["trainable_params"] < by[(task, "lrc")]["trainable_params"] < by[(task, "full")]["trainable_params"]
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
