"""Resume as a user runs it: ``examples/finetune.py`` killed (SIGKILL) after its first complete checkpoint and run
again with ``--resume_from_checkpoint True`` ends with the same adapter weights and the same held-out metrics as an
uninterrupted run (tiny encoder, real CinC 2017 records, seconds)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]


def _command(base_model: Path, data_root: Path, output_dir: Path, cache_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "examples/finetune.py", "--task", "cinc2017", "--method", "lrc", "--rank", "2",
        "--base_model", str(base_model), "--data_dir", str(data_root), "--sources", "cinc2017", "--max_records", "16",
        "--augment", "True", "--cache_dir", str(cache_dir), "--output_dir", str(output_dir),
        "--max_steps", "60", "--save_strategy", "steps", "--save_steps", "5", "--save_total_limit", "100",
        "--eval_strategy", "no", "--per_device_train_batch_size", "4", "--logging_steps", "1",
        "--seed", "0", "--data_seed", "0", "--disable_tqdm", "True", "--bootstrap_resamples", "0", *extra,
    ]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TAC_ECG_DEBUG"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env


def _run(command: list[str]) -> dict:
    proc = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((Path(command[command.index("--output_dir") + 1]) / "result.json").read_text())


def _complete_checkpoints(folder: Path) -> list[Path]:
    return sorted((p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
                  key=lambda p: int(p.name.split("-")[1]))


@pytest.mark.slow
def test_killed_finetune_resumes_to_the_same_result(tiny_repo, data_root, tmp_path):
    cache = tmp_path / "datasets"
    reference = _run(_command(tiny_repo, data_root, tmp_path / "uninterrupted", cache))

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_command(tiny_repo, data_root, killed, cache), cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not _complete_checkpoints(killed) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {stderr[-2000:]}"
    saved = _complete_checkpoints(killed)
    assert saved and int(saved[-1].name.split("-")[1]) < 60, saved
    assert not (killed / "result.json").exists()
    before = {p.name: (p / "trainer_state.json").stat().st_mtime_ns for p in saved}

    resumed = _run(_command(tiny_repo, data_root, killed, cache, "--resume_from_checkpoint", "True"))

    # it resumed (the checkpoints written before the kill were not written again), it did not start over
    for name, mtime in before.items():
        assert (killed / name / "trainer_state.json").stat().st_mtime_ns == mtime, name
    state = json.loads((killed / "checkpoint-60" / "trainer_state.json").read_text())
    assert state["global_step"] == 60
    # the same trained adapter, and the same held-out metrics through the public predict path
    want = load_file(tmp_path / "uninterrupted" / "cinc2017" / "adapter_model.safetensors")
    got = load_file(killed / "cinc2017" / "adapter_model.safetensors")
    assert want.keys() == got.keys() and want
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)
    for split in ("validation", "test"):
        assert resumed[split].keys() == reference[split].keys() and reference[split]
        for name, value in reference[split].items():
            if isinstance(value, float):
                assert resumed[split][name] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), (split, name)
            else:
                assert resumed[split][name] == value, (split, name)
