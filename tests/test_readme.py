"""Every code block of the README runs: the Python blocks as written, in a fresh process with an empty Hugging Face
cache seeded the way the README's set-up line seeds it, offline; the shell blocks line by line (the set-up line is what
.ci/run does, the test line is this suite; the training lines run with a few steps in a temporary folder)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
BASH = [code for lang, code in BLOCKS if lang == "bash"]


@pytest.fixture(scope="module")
def seeded_env(tmp_path_factory, data_root):
    """The environment after the README's set-up line: the bundled models in an empty cache, offline."""
    home = tmp_path_factory.mktemp("hf_home")
    env = {
        **os.environ,
        "HF_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TAC_ECG_DATA": str(data_root),
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run(["tac-ecg", "seed-cache"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return env


def _data_relative(code: str, data_root: Path) -> str:
    return code.replace("../shared/data", str(data_root))


def test_the_readme_has_the_blocks_it_promises():
    assert len(PYTHON) >= 4 and len(BASH) >= 2
    first = BASH[0].strip().splitlines()
    assert first[0].startswith("python3 -m venv .venv") and "pip install torch==2.13.0" in first[0]
    assert "tac-ecg seed-cache" in first[0]
    assert first[1].startswith("tac-ecg predict ") and first[2] == "python -m pytest -q"
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci and "pip install --quiet torch==2.13.0" in ci and "seed-cache" in ci


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs(index, seeded_env, data_root, tmp_path):
    code = _data_relative(PYTHON[index], data_root)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=seeded_env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"README python block {index} failed:\n{code}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), "each block prints what it shows"


def test_main_command_classifies_the_record(seeded_env, data_root, tmp_path):
    command = _data_relative(BASH[0].strip().splitlines()[1], data_root)
    proc = subprocess.run(
        shlex.split(command), cwd=tmp_path, env=seeded_env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "decision" in proc.stdout and "RBBB" in proc.stdout  # A0001 is a right bundle branch block
    assert (tmp_path / "a0001.png").stat().st_size > 10_000


@pytest.mark.slow
def test_training_block_runs_with_a_few_steps(seeded_env, data_root, tmp_path):
    """The 'Training your own' commands, each with --max_steps 2 on 24 records, into a temporary runs/ folder; the
    push goes to the local test Hub."""
    from support.local_hub import LocalHubServer

    block = next(b for b in BASH if "examples/pretrain_cetp.py" in b)
    steps = 2
    with LocalHubServer() as hub:
        env = {
            **seeded_env,
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_TOKEN": "hf_local_test_token",
        }
        for line in block.strip().splitlines():
            args = shlex.split(_data_relative(line, data_root).replace("runs/", f"{tmp_path}/runs/"))
            if args[0] == "python":
                steps += "--resume_from_checkpoint" in args  # the resumed run goes one step further
                args = [
                    sys.executable,
                    str(REPO / args[1]),
                    *args[2:],
                    "--max_steps",
                    str(steps),
                    "--max_records",
                    "24",
                    "--save_strategy",
                    "steps",
                    "--save_steps",
                    "1",
                    "--eval_strategy",
                    "no",
                    "--cache_dir",
                    str(tmp_path / "cache"),
                ]
            proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{line}\n{proc.stderr[-3000:]}"
        assert any(repo.startswith("me/") for repo in hub.repos), "the push reached the Hub"
