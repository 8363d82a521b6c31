"""Running a command under ``accelerate launch`` with two CPU processes (gloo), from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCELERATE = Path(sys.executable).parent / "accelerate"


def accelerate_env(home: Path) -> dict:
    """The venv's bin dir on PATH (accelerate starts the workers through it), this checkout (and tests/) first on
    PYTHONPATH, one thread, an empty offline HF_HOME; no launcher variables inherited."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ACCELERATE_", "WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_"))}
    env.update(
        PATH=f"{ACCELERATE.parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), str(REPO_ROOT / "tests"), env.get("PYTHONPATH")) if p),
        OMP_NUM_THREADS="1", HF_HOME=str(home), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
    )
    return env


def launch_two_processes(args: list[str], home: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``accelerate launch --multi_gpu --num_processes 2 ... ARGS``: two real CPU processes. (``--cpu
    --num_processes 2`` starts only one.) The scripts must create their ``Accelerator``/``PartialState`` with
    ``cpu=True`` for accelerate to join them with gloo."""
    if not ACCELERATE.is_file():
        pytest.skip(f"no accelerate launcher at {ACCELERATE}")
    command = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", *args]
    return subprocess.run(command, env=accelerate_env(home), capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT)
