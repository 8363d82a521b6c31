"""The command line's fast path without transformers or PEFT (``tac_ecg_hf.lite``): the same probabilities as the
transformers path on every bundled adapter, no transformers/PEFT import, and the transformers path for whatever it
does not take (so that the errors and behaviour stay that path's)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tac_ecg_hf import lite
from tac_ecg_hf.inference import ECGTaskClassifier
from tac_ecg_hf.lite import load_lite_classifier

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ("tac-ecg/xresnet1d101-cetp", "tac-ecg/resnet-cetp")
TASKS = ("cpsc2018", "ptbxl-super", "cinc2017", "chapman")


def _records(data_root: Path) -> list[Path]:
    records = [data_root / "cpsc2018" / "A0001.hea", data_root / "cpsc2018" / "A0005.hea",
               data_root / "cinc2017" / "A00001.hea"]
    found = [r for r in records if r.is_file()]
    if not found:
        pytest.skip("no real CPSC2018 / CinC 2017 records")
    return found


@pytest.mark.parametrize("repo_id", BUNDLED)
def test_same_probabilities_as_transformers_on_every_bundled_adapter(repo_id, data_root):
    from tac_ecg_hf.data import read_record
    from tac_ecg_hf.inference import resolve_model

    path = resolve_model(repo_id)
    fast = load_lite_classifier(path, list(TASKS))
    assert fast is not None and type(fast.model).__name__ == "LiteECGClassifier"
    slow = ECGTaskClassifier.from_pretrained(repo_id, tasks=list(TASKS))
    records = [read_record(r) for r in _records(data_root)]
    for task in TASKS:
        assert fast.thresholds(task) == slow.thresholds(task)
        assert list(fast.adapter_config(task).labels) == list(slow.adapter_config(task).labels)
        for record in records:
            try:
                b = slow.predict(record, task)
            except ValueError as err:  # a single-lead record for a 12-lead task: the same refusal
                with pytest.raises(type(err), match=re.escape(str(err))):
                    fast.predict(record, task)
                continue
            a = fast.predict(record, task)
            assert np.abs(a.probabilities - b.probabilities).max() <= 1e-5, (repo_id, task, record.record_id)
            assert a.decision == b.decision and a.num_windows == b.num_windows and a.notes == b.notes
    # bf16 autocast runs the same operations
    fast.set_precision("bf16")
    slow.set_precision("bf16")
    a, b = fast.predict(records[0], "cpsc2018"), slow.predict(records[0], "cpsc2018")
    assert np.abs(a.probabilities - b.probabilities).max() <= 1e-4


def test_single_prediction_imports_neither_transformers_nor_peft(cpsc2018_dir):
    # nor what one prediction does not need and once crept in (python -X importtime of the command): huggingface_hub's
    # HfApi (0.2 s, through snapshot_download and the model-card code), sympy (0.4 s, through torch.broadcast_shapes)
    code = (
        "import sys\n"
        "from tac_ecg_hf.cli import main\n"
        f"rc = main(['predict', {str(cpsc2018_dir / 'A0001.hea')!r}, '--task', 'cpsc2018', '--json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'peft', 'datasets', 'sympy')\n"
        "               or m in ('huggingface_hub.hf_api', 'huggingface_hub.repocard', 'tac_ecg_hf.hub.card'))\n"
        "print('RESULT', rc, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "RESULT 0 []", proc.stdout[-2000:]
    assert '"decision"' in proc.stdout


def test_import_of_the_package_loads_no_modelling_code():
    code = (
        "import sys, tac_ecg_hf, tac_ecg_hf.cli, tac_ecg_hf.data, tac_ecg_hf.inference, tac_ecg_hf.lite\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'peft', 'datasets')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------------------------
# tiny repositories: what the fast path takes, and what it leaves to transformers


def _compare(root: Path, tasks: list[str], seed: int = 0) -> None:
    fast = load_lite_classifier(root, tasks)
    assert fast is not None, "the fast path should take this repository"
    slow = ECGTaskClassifier.from_pretrained(root, tasks=tasks)
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(12, 2500)).astype(np.float32)
    leads = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    for task in tasks:
        a = fast.predict(signal, task, sampling_rate=250, lead_names=leads)
        b = slow.predict(signal, task, sampling_rate=250, lead_names=leads)
        assert np.abs(a.probabilities - b.probabilities).max() <= 1e-6, task
        assert a.decision == b.decision


@pytest.mark.parametrize("family", ["xresnet1d", "resnet1d"])
def test_tiny_serial_adapters_of_both_families(family, tmp_path):
    from support.tiny import build_tiny_repo

    root = build_tiny_repo(tmp_path / "repo", tasks=("cinc2017", "cpsc2018"), family=family)
    _compare(root, ["cinc2017", "cpsc2018"])


def test_lite_encoder_folds_its_conv_batchnorm_pairs_as_the_transformers_path(tmp_path, monkeypatch):
    """The fast path's encoder is the same ``ConvBnAct1d`` blocks: in inference every pair takes the folded conv,
    those whose BatchNorm carries a serial adapter too (``_Adapted.adapt_base_output``), with the same probabilities
    as the transformers path (``_compare``)."""
    from support.tiny import build_tiny_repo

    from tac_ecg_hf.models.encoders import layers

    root = build_tiny_repo(tmp_path / "repo", tasks=("cpsc2018",), family="xresnet1d")
    fast = load_lite_classifier(root, ["cpsc2018"])
    pairs = sum(type(m) is layers.ConvBnAct1d for m in fast.model.modules())
    adapted_bns = sum(
        type(m) is layers.ConvBnAct1d and isinstance(m.bn, lite._Adapted) for m in fast.model.modules()
    )
    assert pairs > 0 and adapted_bns > 0
    calls = {"folded": 0, "adapted after a fold": 0}
    frozen_conv, adapt = layers.frozen_conv1d, lite._Adapted.adapt_base_output

    def counted_conv(*args):
        calls["folded"] += 1
        return frozen_conv(*args)

    def counted_adapt(self, out):
        calls["adapted after a fold"] += 1
        return adapt(self, out)

    monkeypatch.setattr(layers, "frozen_conv1d", counted_conv)
    monkeypatch.setattr(lite._Adapted, "adapt_base_output", counted_adapt)
    with torch.no_grad():
        fast.logits(torch.randn(2, 12, fast.feature_extractor("cpsc2018").num_samples), "cpsc2018")
    assert calls == {"folded": pairs, "adapted after a fold": adapted_bns}, calls
    monkeypatch.undo()
    _compare(root, ["cpsc2018"])


def test_tiny_parallel_adapter(tmp_path):
    from support.tiny import tiny_encoder, tiny_peft_model

    from tac_ecg_hf.data import ECGFeatureExtractor

    root = tmp_path / "repo"
    encoder = tiny_encoder("xresnet1d", 0)
    encoder.save_pretrained(root)
    ECGFeatureExtractor().save_pretrained(root)
    tiny_peft_model("cpsc2018", "xresnet1d", encoder=encoder, variant="parallel", r=2).save_pretrained(root)
    assert json.loads((root / "cpsc2018" / "adapter_config.json").read_text())["variant"] == "parallel"
    _compare(root, ["cpsc2018"])


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    from support.tiny import build_tiny_repo

    return build_tiny_repo(tmp_path_factory.mktemp("lite") / "repo", tasks=("cpsc2018",))


def _edited(tiny_repo: Path, tmp_path: Path, file: str, edit) -> Path:
    root = tmp_path / "edited"
    shutil.copytree(tiny_repo, root)
    data = json.loads((root / file).read_text())
    edit(data)
    (root / file).write_text(json.dumps(data))
    return root


@pytest.mark.parametrize(
    "file, edit",
    [
        ("config.json", lambda d: d.update(layrs=[1, 1])),  # a typo: transformers refuses it
        ("config.json", lambda d: d.pop("kernel_size")),  # a missing network field
        ("config.json", lambda d: d.update(architectures=["XResNet1dForSequenceClassification"])),
        ("cpsc2018/adapter_config.json", lambda d: d.update(encoder_fingerprint=None)),
        ("cpsc2018/adapter_config.json", lambda d: d.update(encoder_fingerprint="sha256:" + "0" * 64)),
        ("cpsc2018/adapter_config.json", lambda d: d.update(r=3)),  # the tensors are rank 2
        ("cpsc2018/adapter_config.json", lambda d: d.update(target_modules=d["target_modules"] + "|encoder.pool")),
        ("cpsc2018/adapter_config.json", lambda d: d.update(peft_type="LORA")),
        ("cpsc2018/adapter_config.json", lambda d: d.update(thresholds=[2.0] * 9)),
        ("preprocessor_config.json", lambda d: d.update(bandpas=[0.5, 40])),
    ],
)
def test_what_the_fast_path_leaves_to_transformers(tiny_repo, tmp_path, file, edit):
    root = _edited(tiny_repo, tmp_path, file, edit)
    assert load_lite_classifier(root, ["cpsc2018"]) is None


def test_other_families_and_the_switch_go_to_transformers(tmp_path, tiny_repo, monkeypatch):
    from support.tiny import build_tiny_repo

    root = build_tiny_repo(tmp_path / "lstm", tasks=("cpsc2018",), family="lstm1d")
    assert load_lite_classifier(root, ["cpsc2018"]) is None
    assert load_lite_classifier(tiny_repo, ["cpsc2018"]) is not None
    monkeypatch.setenv("TAC_ECG_LITE", "0")
    assert load_lite_classifier(tiny_repo, ["cpsc2018"]) is None


def test_cli_errors_are_the_transformers_path_errors(tiny_repo, tmp_path, cpsc2018_dir, capsys):
    """An adapter made for other weights: the fast path declines, and the command says what transformers says."""
    from tac_ecg_hf.cli import main

    root = _edited(tiny_repo, tmp_path, "cpsc2018/adapter_config.json",
                   lambda d: d.update(encoder_fingerprint="sha256:" + "0" * 64))
    code = main(["predict", str(cpsc2018_dir / "A0001.hea"), "--task", "cpsc2018", "--model", str(root)])
    err = capsys.readouterr().err
    assert code == 2 and "tac-ecg predict: error:" in err and "trained on encoder weights" in err, err


def test_pickle_only_checkpoints_are_refused_as_before(tiny_repo, tmp_path):
    from tac_ecg_hf.safety import UnsafeCheckpointError

    root = tmp_path / "pickled"
    shutil.copytree(tiny_repo, root)
    state = {k: v for k, v in __import__("safetensors.torch").torch.load_file(root / "model.safetensors").items()}
    torch.save(state, root / "pytorch_model.bin")
    (root / "model.safetensors").unlink()
    with pytest.raises(UnsafeCheckpointError):
        load_lite_classifier(root, ["cpsc2018"])
    assert load_lite_classifier(root, ["cpsc2018"], allow_pickle=True) is None  # left to transformers


# ----------------------------------------------------------------------------------------------------------------
# the config gate is at least as strict as the encoder configs


_BAD_VALUES = [0, -1, 3.5, True, None, "x", [], [0], [2], [1, 0], [10**6], 10**9, 2, 8, 9000, 1.5]


@pytest.mark.parametrize("family", ["xresnet1d", "resnet1d"])
def test_config_gate_refuses_whatever_the_encoder_config_refuses(family, tmp_path):
    from support.tiny import tiny_encoder

    from tac_ecg_hf import ENCODER_FAMILIES

    config_cls = ENCODER_FAMILIES[family][0]
    tiny_encoder(family, 0).config.save_pretrained(tmp_path / "base")
    good = json.loads((tmp_path / "base" / "config.json").read_text())
    fields = [*lite._INPUT_FIELDS, *lite._OPTIONAL_FIELDS, *lite.FAMILY_FIELDS[family]]
    checked = refused = 0
    for field in fields:
        for value in _BAD_VALUES:
            data = copy.deepcopy(good)
            data[field] = value
            try:
                config_cls.from_dict(data)
                transformers_refuses = False
            except ValueError:
                transformers_refuses = True
            folder = tmp_path / f"{field}-{checked}"
            folder.mkdir()
            (folder / "config.json").write_text(json.dumps(data))
            checked += 1
            if transformers_refuses:
                refused += 1
                with pytest.raises(lite._NotLite):
                    lite._encoder_config(folder)
    assert refused > len(fields)  # the values above are mostly bad ones
    assert lite._encoder_config(tmp_path / "base").model_type == family


def test_lrc_fields_are_lrcconfigs():
    """The fast path reads exactly the fields an LRCConfig has."""
    import dataclasses

    from peft.config import PeftConfig

    from tac_ecg_hf import LRCConfig

    own = {f.name for f in dataclasses.fields(LRCConfig)} - {f.name for f in dataclasses.fields(PeftConfig)}
    assert own == set(lite.LRC_FIELDS)
    assert set(lite._PEFT_FIELDS) <= {f.name for f in dataclasses.fields(PeftConfig)}
