"""The ``tac-ecg`` command line: happy paths on real records with a tiny model repository, and bad input, which must
exit with status 2 and exactly one line on stderr, leaving the input files untouched; a bug exits with status 1.

The issue-10 cases on the bundled model, under a memory and time cap, are in test_reliability_cases.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.local_hub import closed_port_endpoint, local_hub_env

from tac_ecg_hf.cli import main

PREFIX = "tac-ecg predict: error: "


@pytest.fixture(autouse=True)
def _isolated_hub(tmp_path, monkeypatch):
    """No test may reach the network or the user's cache: an empty cache, offline by default."""
    local_hub_env(monkeypatch, None, cache_dir=tmp_path / "hf_home", offline=True)


def snapshot(folder: Path) -> dict:
    """name -> (sha256, size, mtime_ns) of every file under ``folder``."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(folder))] = (digest, stat.st_size, stat.st_mtime_ns)
    return out


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def copy_record(src_dir: Path, rid: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for ext in (".hea", ".mat"):
        shutil.copyfile(src_dir / f"{rid}{ext}", dst / f"{rid}{ext}")
    return dst / f"{rid}.hea"


# ----------------------------------------------------------------------------------------------------------------
# happy paths
# ----------------------------------------------------------------------------------------------------------------


def test_predict_text_json_and_plot(tiny_repo, cinc2017_dir, tmp_path, capsys):
    from tac_ecg_hf.inference import ECGTaskClassifier

    inputs = tmp_path / "inputs"
    record = copy_record(cinc2017_dir, "A00001", inputs)
    before = snapshot(inputs)

    code, out, err = run(["predict", "--model", tiny_repo, "--task", "cinc2017", record], capsys)
    assert code == 0, err
    assert "record A00001  task cinc2017" in out and "decision (most probable class):" in out
    assert err == ""

    code, out, err = run(["predict", "--model", tiny_repo, "--task", "cinc2017", "--json", record], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["record"] == "A00001" and result["task"] == "cinc2017" and result["windows"] >= 1
    assert set(result["probabilities"]) == {"N", "A", "O", "~"}
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-3
    direct = ECGTaskClassifier.from_pretrained(tiny_repo, tasks=["cinc2017"]).predict(record, task="cinc2017")
    for label, p in zip(direct.labels, direct.probabilities):
        assert result["probabilities"][label] == round(float(p), 4)
    assert result["notes"] == direct.notes

    plot = tmp_path / "plots" / "out.png"
    code, out, err = run(["predict", "--model", tiny_repo, "--task", "cinc2017", "--plot", plot, record], capsys)
    assert code == 0, err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot written to {plot}" in out
    assert os.listdir(plot.parent) == ["out.png"]  # no temporary file left
    assert snapshot(inputs) == before  # input files unchanged, nothing created next to them


def test_predict_npy_with_fs_and_leads_in_any_order(tiny_repo, cpsc2018_dir, tmp_path, capsys):
    from tac_ecg_hf.data import read_record

    record = read_record(cpsc2018_dir / "A0001.hea")
    path = tmp_path / "rec.npy"
    np.save(path, record.signal[::-1].T.copy())  # time-first, leads reversed
    leads = ",".join(record.lead_names[::-1])
    code, out, err = run(
        ["predict", "--model", tiny_repo, "--task", "cpsc2018", "--fs", "500", "--leads", leads, "--json", path],
        capsys,
    )
    assert code == 0, err
    argv = ["predict", "--model", tiny_repo, "--task", "cpsc2018", "--json", cpsc2018_dir / "A0001.hea"]
    code, ref, err = run(argv, capsys)
    assert json.loads(out)["probabilities"] == json.loads(ref)["probabilities"]  # lead order does not matter


def test_two_tasks_in_one_call(tiny_repo, cpsc2018_dir, capsys):
    code, out, err = run(["predict", "--model", tiny_repo, "--tasks", "cpsc2018,cinc2017", "--json",
                          cpsc2018_dir / "A0001.hea"], capsys)
    assert code == 0, err
    results = json.loads(out)
    assert [r["task"] for r in results] == ["cpsc2018", "cinc2017"]
    assert any("reads only lead(s) ['I']" in note for note in results[1]["notes"])


def test_list_shows_the_bundled_models(capsys):
    from tac_ecg_hf.hub import bundled_repo_ids

    code, out, err = run(["list"], capsys)
    assert code == 0 and err == ""
    for repo_id in bundled_repo_ids():
        assert repo_id in out


# ----------------------------------------------------------------------------------------------------------------
# bad input: exit 2, one line on stderr, input untouched
# ----------------------------------------------------------------------------------------------------------------


def _corrupt_header(folder: Path, cpsc2018_dir: Path) -> list:
    hea = copy_record(cpsc2018_dir, "A0001", folder)
    lines = hea.read_text().splitlines()
    hea.write_text("\n".join(lines[:5]) + "\n")  # 12 signals declared, 4 signal lines: truncated
    return [hea, "--task", "cpsc2018"]


def _truncated_mat(folder: Path, cpsc2018_dir: Path) -> list:
    hea = copy_record(cpsc2018_dir, "A0001", folder)
    mat = folder / "A0001.mat"
    mat.write_bytes(mat.read_bytes()[:3000])
    return [hea, "--task", "cpsc2018"]


def _npy_without_fs(folder: Path, cpsc2018_dir: Path) -> list:
    np.save(folder / "x.npy", np.zeros((12, 5000), dtype=np.float32))
    return [folder / "x.npy", "--task", "cpsc2018"]


def _nan_npy(folder: Path, cpsc2018_dir: Path) -> list:
    signal = np.random.default_rng(0).standard_normal((12, 5000)).astype(np.float32)
    signal[4, 10:20] = np.nan
    np.save(folder / "nan.npy", signal)
    return [folder / "nan.npy", "--fs", "500", "--task", "cpsc2018"]


def _missing_file(folder: Path, cpsc2018_dir: Path) -> list:
    return [folder / "nope.hea", "--task", "cpsc2018"]


def _unknown_task(folder: Path, cpsc2018_dir: Path) -> list:
    return [copy_record(cpsc2018_dir, "A0001", folder), "--task", "ptbxl-sub"]


def _no_task(folder: Path, cpsc2018_dir: Path) -> list:
    return [copy_record(cpsc2018_dir, "A0001", folder)]


def _missing_leads(folder: Path, cpsc2018_dir: Path) -> list:
    np.save(folder / "three.npy", np.random.default_rng(0).standard_normal((3, 5000)).astype(np.float32))
    return [folder / "three.npy", "--fs", "500", "--leads", "V1,V2,V3", "--task", "cpsc2018"]


def _plot_over_input(folder: Path, cpsc2018_dir: Path) -> list:
    hea = copy_record(cpsc2018_dir, "A0001", folder)
    return [hea, "--task", "cpsc2018", "--plot", folder / "A0001.mat"]


def _bad_threshold_type(folder: Path, cpsc2018_dir: Path) -> list:
    return [copy_record(cpsc2018_dir, "A0001", folder), "--task", "cpsc2018", "--threshold", "high"]


def _dtype(folder: Path, cpsc2018_dir: Path) -> list:
    return [copy_record(cpsc2018_dir, "A0001", folder), "--task", "cpsc2018", "--dtype", "fp16"]


def _model_folder_missing(folder: Path, cpsc2018_dir: Path) -> list:
    return [copy_record(cpsc2018_dir, "A0001", folder), "--task", "cpsc2018", "--model", "./no/such folder!"]


BAD_INPUTS = {
    "missing-file": (_missing_file, r"nope\.hea does not exist"),
    "corrupt-hea": (_corrupt_header, r"declares 12 signals but the header has 4 signal lines"),
    "truncated-mat": (_truncated_mat, r"A0001\.mat.*truncated"),
    "npy-without-fs": (_npy_without_fs, r"sampling rate"),
    "unknown-task": (_unknown_task, r"no adapter for task\(s\) \['ptbxl-sub'\]"),
    "no-task": (_no_task, r"give --task TASK"),
    "nan-npy": (_nan_npy, r"non-finite samples \(NaN/inf\) in 1 lead\(s\) \(row 4: 10\)"),
    "missing-leads": (_missing_leads, r"lead I is missing"),
    "plot-over-input": (_plot_over_input, r"--plot .*A0001\.mat would overwrite the input record's files"),
    "threshold-not-a-number": (_bad_threshold_type, r"argument --threshold: invalid float value: 'high'"),
    "dtype": (_dtype, r"argument --dtype: invalid choice: 'fp16'"),
    "model-folder-missing": (_model_folder_missing, r"is neither a folder nor a Hub repo id"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case, tiny_repo, cpsc2018_dir, tmp_path, capsys):
    make, pattern = BAD_INPUTS[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    argv = make(inputs, cpsc2018_dir)
    if "--model" not in argv:
        argv += ["--model", tiny_repo]
    before = snapshot(inputs)
    try:
        code, out, err = run(["predict", *argv], capsys)
    except SystemExit as exit_info:  # argparse's own refusals exit from parse_args
        code, captured = exit_info.code, capsys.readouterr()
        out, err = captured.out, captured.err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), err
    assert re.search(pattern, lines[0], re.IGNORECASE), lines[0]
    assert out == ""
    assert snapshot(inputs) == before  # unchanged, and nothing created next to the input


def test_a_bug_is_exit_1_not_a_bad_input(tiny_repo, cpsc2018_dir, monkeypatch, capsys):
    """A ValueError from inside a library (here numpy, through a broken window function) is a bug: exit 1, "internal
    error", even though the CLI maps the package's own ValueError subclasses to exit 2."""
    from tac_ecg_hf.data.preprocessing import ECGPreprocessor

    def broken(self, signal, start):
        return np.reshape(signal, (7, -1, 3))  # ValueError: cannot reshape

    # the preprocessing of ECGFeatureExtractor and of the fast path (tac_ecg_hf.lite) alike
    monkeypatch.setattr(ECGPreprocessor, "_window", broken)
    code, out, err = run(["predict", "--model", tiny_repo, "--task", "cpsc2018", cpsc2018_dir / "A0001.hea"], capsys)
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("tac-ecg predict: internal error: ValueError: cannot reshape")


def test_unknown_model_offline_and_unreachable_hub(cpsc2018_dir, tmp_path, capsys, monkeypatch):
    record = copy_record(cpsc2018_dir, "A0001", tmp_path / "inputs")
    before = snapshot(record.parent)
    code, out, err = run(["predict", "--model", "nobody/no-such-model", "--task", "cpsc2018", record], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(PREFIX + "HF_HUB_OFFLINE=1 and 'nobody/no-such-model'") and "not in the cache" in err

    local_hub_env(monkeypatch, closed_port_endpoint(), cache_dir=tmp_path / "hf2", offline=False)
    code, out, err = run(["predict", "--model", "nobody/no-such-model", "--task", "cpsc2018", record], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(PREFIX + "cannot reach http://127.0.0.1:")
    assert snapshot(record.parent) == before


def test_pickle_adapter_needs_allow_pickle(tiny_repo_copy, cinc2017_dir, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    adapter = tiny_repo_copy / "cinc2017"
    torch.save(load_file(adapter / "adapter_model.safetensors"), adapter / "adapter_model.bin")
    (adapter / "adapter_model.safetensors").unlink()
    record = copy_record(cinc2017_dir, "A00001", tmp_path / "inputs")
    code, out, err = run(["predict", "--model", tiny_repo_copy, "--task", "cinc2017", record], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "allow_pickle=True" in err, err
    argv = ["predict", "--model", tiny_repo_copy, "--task", "cinc2017", "--allow-pickle", record]
    code, out, err = run(argv, capsys)
    assert code == 0, err


def test_subprocess_exit_code_and_single_stderr_line(tiny_repo, tmp_path):
    """The real entry point: the model is loaded (progress bars, library warnings) before predict fails on a record
    that lacks leads; stderr must still hold exactly the one error line."""
    path = tmp_path / "three.npy"
    np.save(path, np.random.default_rng(0).standard_normal((3, 3000)).astype(np.float32))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "TAC_ECG_DEBUG")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    proc = subprocess.run(
        [sys.executable, "-m", "tac_ecg_hf.cli", "predict", str(path), "--fs", "500", "--leads", "V1,V2,V3",
         "--task", "cpsc2018", "--model", str(tiny_repo)],
        capture_output=True, text=True, env=env, timeout=240,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(PREFIX), proc.stderr[-3000:]
    assert "is missing" in proc.stderr and proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "hf_home") == ["three.npy"]
