"""Crash-safe saving: ``atomic_save_pretrained`` (and the run folders of ``run_finetune``, written with it) never
leaves a half-written adapter or model in place, whether the save raises (disk full) or the process is killed mid-way.
The folder swap itself (``replace_dir``) is tested in test_weights_verification.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from support.tiny import tiny_classifier, tiny_encoder, tiny_peft_model

from tac_ecg_hf.inference import available_tasks
from tac_ecg_hf.safety import atomic_save_pretrained, load_task_adapter

TESTS_DIR = Path(__file__).resolve().parent


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _lrc_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters() if "lrc_" in k}


def test_failed_save_leaves_the_previous_adapter_intact(tmp_path, monkeypatch):
    import peft.peft_model

    out = tmp_path / "run"
    atomic_save_pretrained(tiny_peft_model("cinc2017", seed=1), out)
    atomic_save_pretrained(tiny_peft_model("cpsc2018", seed=3), out)  # a sibling adapter
    before = _tree(out)
    assert available_tasks(out) == ["cinc2017", "cpsc2018"]
    real_save = peft.peft_model.safe_save_file

    def crash_midway(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])  # half a file on disk...
        raise OSError(28, "No space left on device")  # ...then the write fails

    monkeypatch.setattr(peft.peft_model, "safe_save_file", crash_midway)
    with pytest.raises(OSError, match="No space left"):
        atomic_save_pretrained(tiny_peft_model("cinc2017", seed=2), out)
    assert _tree(out) == before  # the previous adapter byte for byte, the sibling untouched
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]  # no temporary leftovers
    monkeypatch.setattr(peft.peft_model, "safe_save_file", real_save)

    new = tiny_peft_model("cinc2017", seed=2)
    atomic_save_pretrained(new, out)  # a successful save replaces the adapter and keeps the sibling
    after = _tree(out)
    assert after["cinc2017/adapter_model.safetensors"] != before["cinc2017/adapter_model.safetensors"]
    assert after["cpsc2018/adapter_model.safetensors"] == before["cpsc2018/adapter_model.safetensors"]
    reloaded = load_task_adapter(tiny_classifier(seed=2, num_labels=4), out / "cinc2017", "cinc2017")
    for name, value in _lrc_state(new).items():
        assert torch.equal(reloaded.get_parameter(name), value), name


_KILL_DURING_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import peft.peft_model
    from support.tiny import tiny_peft_model
    from tac_ecg_hf.safety import atomic_save_pretrained

    real_save = peft.peft_model.safe_save_file

    def killed_midway(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 3])
        os.kill(os.getpid(), signal.SIGKILL)

    peft.peft_model.safe_save_file = killed_midway
    atomic_save_pretrained(tiny_peft_model("cinc2017", seed=9), sys.argv[1])
    """
)


def test_kill_during_save_keeps_the_previous_adapter(tmp_path):
    target = tmp_path / "model"
    atomic_save_pretrained(tiny_peft_model("cinc2017", seed=1), target)
    before = _tree(target)
    script = tmp_path / "kill_save.py"
    script.write_text(_KILL_DURING_SAVE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(TESTS_DIR.parent),
                                                        os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    proc = subprocess.run([sys.executable, str(script), str(target)], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert _tree(target) == before  # the killed save never touched the target
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.tmp-")  # a hidden sibling, outside the repo
    assert available_tasks(target) == ["cinc2017"]
    atomic_save_pretrained(tiny_peft_model("cinc2017", seed=2), target)  # the next save works despite the leftover
    assert _tree(target)["cinc2017/adapter_model.safetensors"] != before["cinc2017/adapter_model.safetensors"]


def test_atomic_save_of_a_model_folder(tmp_path):
    """A model folder is replaced as a unit; what the new save does not write (a task adapter folder) is kept, a
    stale pickle weight file is not."""
    from transformers import AutoModel

    target = tmp_path / "repo"
    tiny_encoder(seed=0).save_pretrained(target)
    (target / "cinc2017").mkdir()
    (target / "cinc2017" / "adapter_config.json").write_text("{}")
    (target / "pytorch_model.bin").write_bytes(b"stale pickle")
    second = tiny_encoder(seed=1)
    atomic_save_pretrained(second, target)
    assert (target / "cinc2017" / "adapter_config.json").read_text() == "{}"
    assert not (target / "pytorch_model.bin").exists()
    loaded = AutoModel.from_pretrained(target)
    for key, value in second.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FileExistsError):
        atomic_save_pretrained(second, tmp_path / "afile")
    assert (tmp_path / "afile").read_text() == "x"
