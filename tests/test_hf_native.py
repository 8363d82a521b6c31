"""The Hugging Face entry points a transformers/PEFT user reaches for (issue 8):

* every ``from_pretrained`` gives a float32 model that runs on a float32 batch (``AutoModel``,
  ``AutoModelForSequenceClassification`` + ``get_peft_model``, ``AutoPeftModel*``), ``problem_type`` is inferred from
  the labels, outputs are transformers output classes with ``output_hidden_states``;
* a repo published the PEFT way (encoder + feature extractor with transformers' ``push_to_hub``, the task adapters with
  PEFT's, which writes each named adapter to ``<repo>/<adapter>/``) is found by ``ECGTaskClassifier``,
  ``tac-ecg predict --model`` and the pipeline, online against the local test Hub and offline from the cache; PEFT's
  own loading by repo id and subfolder online, and the form the README shows offline;
* ``tac-ecg push DIR --repo-id`` of a run folder written by the package's training writers: a model card with the
  run's held-out metrics in ``model-index``, the base model by id, command and seed; no ``NaN`` in any JSON written;
* ``import tac_ecg_hf`` writes and logs nothing, and the package uses no private huggingface_hub API.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard, hf_hub_download, snapshot_download
from peft import AutoPeftModel, AutoPeftModelForSequenceClassification, PeftModel, get_peft_model
from support.hf_repos import save_task_repo, strict_json
from support.local_hub import local_hub_env
from support.repos import tiny_classifier
from transformers import AutoModel, AutoModelForSequenceClassification, pipeline
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndNoAttention, SequenceClassifierOutput

import tac_ecg_hf
from tac_ecg_hf import LRCConfig
from tac_ecg_hf.cli import main
from tac_ecg_hf.data.feature_extraction_ecg import ECGFeatureExtractor
from tac_ecg_hf.hub import bundled_path, bundled_repo_ids, list_task_adapters
from tac_ecg_hf.inference import ECGTaskClassifier

PACKAGE = Path(tac_ecg_hf.__file__).resolve().parent
REPO_ROOT = PACKAGE.parent
XRESNET = "tac-ecg/xresnet1d101-cetp"


def batch(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 12, 1000, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------------------
# float32 models from every from_pretrained, problem_type, output classes


@pytest.mark.parametrize("model_id", bundled_repo_ids())
def test_auto_classes_give_float32_models_that_run_on_float32(model_id, offline_home):
    encoder = AutoModel.from_pretrained(model_id).eval()
    assert next(encoder.parameters()).dtype == torch.float32
    with torch.no_grad():
        out = encoder(input_values=batch(), output_hidden_states=True)
    assert isinstance(out, BaseModelOutputWithPoolingAndNoAttention)
    assert out.pooler_output.dtype == torch.float32 and out.pooler_output.shape[0] == 3
    assert isinstance(out.hidden_states, tuple) and len(out.hidden_states) >= 2
    classifier = AutoModelForSequenceClassification.from_pretrained(model_id, num_labels=5)
    assert next(classifier.parameters()).dtype == torch.float32 and classifier.config.num_labels == 5


def test_peft_model_on_a_float32_batch_infers_problem_type_from_the_labels(offline_home):
    """The README's Python block: the bundled encoder + a new LRC-Adapter, trained on a float32 batch."""
    base = AutoModelForSequenceClassification.from_pretrained(XRESNET, num_labels=5)
    model = get_peft_model(base, LRCConfig.for_task("ptbxl-super", r=8), adapter_name="ptbxl-super")
    x = batch()
    multi_hot = torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 1]])
    out = model(input_values=x, labels=multi_hot, output_hidden_states=True)
    assert isinstance(out, SequenceClassifierOutput) and out.logits.shape == (3, 5)
    assert base.config.problem_type == "multi_label_classification"
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, multi_hot))
    assert isinstance(out.hidden_states, tuple) and all(h.dtype == torch.float32 for h in out.hidden_states)
    out.loss.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trained and all(p.requires_grad for n, p in model.named_parameters() if n in trained)
    assert not any(p.grad is not None for n, p in model.named_parameters() if not p.requires_grad)

    single = AutoModelForSequenceClassification.from_pretrained("tac-ecg/resnet-cetp", num_labels=4)
    class_ids = torch.tensor([0, 3, 1])
    out = single(input_values=x, labels=class_ids)
    assert single.config.problem_type == "single_label_classification"
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, class_ids))


def test_adapters_load_without_deprecation_warnings(offline_home):
    """PEFT 0.21 reads transformers' deprecated ``is_gradient_checkpointing`` on every wrap: our models answer it
    without the FutureWarning, for get_peft_model and for ECGTaskClassifier's task adapters alike."""
    import warnings

    from tac_ecg_hf.inference import ECGTaskClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        base = AutoModelForSequenceClassification.from_pretrained(XRESNET, num_labels=5)
        model = get_peft_model(base, LRCConfig.for_task("ptbxl-super", r=8), adapter_name="ptbxl-super")
        assert model.is_gradient_checkpointing is False
        ECGTaskClassifier.from_pretrained(XRESNET, tasks=["cpsc2018"])


@pytest.mark.parametrize("auto_class", [AutoPeftModel, AutoPeftModelForSequenceClassification])
def test_auto_peft_model_loads_a_task_adapter_in_float32(auto_class, offline_home):
    folder = str(bundled_path(XRESNET) / "cpsc2018")
    with pytest.raises(ValueError, match="import allowlist"):  # PEFT's safeguard: the base model class is imported
        auto_class.from_pretrained(folder)
    model = auto_class.from_pretrained(folder, import_allowlist=["tac_ecg_hf"]).eval()
    assert isinstance(model, PeftModel) and next(model.parameters()).dtype == torch.float32
    x = batch()
    with torch.no_grad():
        logits = model(input_values=x).logits
    clf = ECGTaskClassifier.from_pretrained(XRESNET, tasks=["cpsc2018"])
    torch.testing.assert_close(logits, clf.logits(x, "cpsc2018"))


# ----------------------------------------------------------------------------------------------------------------
# a repo published the PEFT way, found by the package's loaders online and offline

REPO_ID = "tac-test/peft-layout"
TASKS = ["cpsc2018", "ptbxl-super"]  # both read the 12 leads of the root feature extractor


@pytest.fixture(scope="module")
def peft_repo(hub, tmp_path_factory, data_root):
    """The encoder and its feature extractor pushed with transformers' ``push_to_hub``, the adapters with PEFT's;
    the probabilities a local copy of the same repo gives on a real record."""
    local = tmp_path_factory.mktemp("local_copy")
    model = save_task_repo(local, tasks=TASKS)
    with pytest.MonkeyPatch.context() as mp:
        local_hub_env(mp, hub, cache_dir=tmp_path_factory.mktemp("hf_home_push"), offline=False)
        tiny_classifier().push_to_hub(REPO_ID)  # the same random weights as the base of ``model``
        ECGFeatureExtractor().push_to_hub(REPO_ID)
        model.push_to_hub(REPO_ID)
    files = set(hub.list_files(REPO_ID))
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= files
    adapter_files = ("adapter_config.json", "adapter_model.safetensors")
    assert {f"{task}/{name}" for task in TASKS for name in adapter_files} <= files
    record = data_root / "cpsc2018" / "A0001.hea"
    clf = ECGTaskClassifier.from_pretrained(local)
    return {"local": local, "record": record,
            "expected": {task: clf.predict(record, task=task).probabilities for task in TASKS}}


def check_loaders(peft_repo, capsys):
    """ECGTaskClassifier, ``tac-ecg predict --model`` and the pipeline by repo id: the local copy's probabilities."""
    record, expected = peft_repo["record"], peft_repo["expected"]
    clf = ECGTaskClassifier.from_pretrained(REPO_ID)
    assert clf.tasks == TASKS
    for task in TASKS:
        np.testing.assert_allclose(clf.predict(record, task=task).probabilities, expected[task], atol=1e-6, rtol=0)
    capsys.readouterr()
    assert main(["predict", str(record), "--model", REPO_ID, "--task", "cpsc2018", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    labels = list(clf.adapter_config("cpsc2018").labels)
    np.testing.assert_allclose([payload["probabilities"][label] for label in labels], expected["cpsc2018"], atol=1e-4)
    result = pipeline("ecg-classification", model=REPO_ID, adapter="ptbxl-super")(str(record))
    got = {item["label"]: item["score"] for item in result}
    labels = list(clf.adapter_config("ptbxl-super").labels)
    np.testing.assert_allclose([got[label] for label in labels], expected["ptbxl-super"], atol=1e-6, rtol=0)


def test_peft_layout_repo_online(peft_repo, hub, tmp_path, monkeypatch, capsys):
    local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home", offline=False)
    assert list_task_adapters(REPO_ID) == TASKS
    check_loaders(peft_repo, capsys)
    # PEFT's own loading by repo id and subfolder, against the endpoint
    base = AutoModelForSequenceClassification.from_pretrained(REPO_ID)
    model = PeftModel.from_pretrained(base, REPO_ID, subfolder="cpsc2018", adapter_name="cpsc2018").eval()
    reference = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(peft_repo["local"]),
                                          str(peft_repo["local"] / "cpsc2018"), adapter_name="cpsc2018").eval()
    x = batch()
    with torch.no_grad():
        torch.testing.assert_close(model(input_values=x).logits, reference(input_values=x).logits)


def test_peft_layout_repo_offline_from_the_cache(peft_repo, hub, tmp_path, monkeypatch, capsys):
    local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home", offline=False)
    snapshot_download(REPO_ID)
    local_hub_env(monkeypatch, offline=True)
    requests = len(hub.requests)
    assert list_task_adapters(REPO_ID) == TASKS
    check_loaders(peft_repo, capsys)
    # the call the README shows for PEFT offline (PEFT 0.21 joins subfolder twice on the offline path)
    base = AutoModelForSequenceClassification.from_pretrained(REPO_ID)
    model = PeftModel.from_pretrained(base, str(Path(snapshot_download(REPO_ID)) / "ptbxl-super"),
                                      adapter_name="ptbxl-super").eval()
    clf = ECGTaskClassifier.from_pretrained(peft_repo["local"], tasks=["ptbxl-super"])
    x = batch()
    with torch.no_grad():
        torch.testing.assert_close(model(input_values=x).logits, clf.logits(x, "ptbxl-super"))
    assert len(hub.requests) == requests  # nothing asked of the Hub


# ----------------------------------------------------------------------------------------------------------------
# tac-ecg push of a run folder


@pytest.fixture
def run_folder(tmp_path, offline_home, monkeypatch):
    """A run folder as ``run_finetune`` writes it, through the same writers (without the training itself): the encoder
    files of ``tac-ecg/resnet-cetp``, the adapter in ``cpsc2018/`` with calibrated thresholds, ``result.json``, the
    metrics in the adapter config and ``card_metadata.json``. The metrics hold NaN where evaluation gives it (a class
    without positives has no AUC), which must come out as null."""
    from tac_ecg_hf.training import (
        DataArguments,
        FinetuneResult,
        ModelArguments,
        load_base_extractor,
        save_run,
        set_thresholds,
        task_feature_extractor,
        write_run_metadata,
    )

    local_hub_env(monkeypatch, None, cache_dir=offline_home, offline=True)
    out = tmp_path / "run"
    model_args = ModelArguments(base_model="tac-ecg/resnet-cetp", method="lrc", rank=4)
    data_args = DataArguments(task="cpsc2018", data_dir=str(tmp_path))
    base = AutoModelForSequenceClassification.from_pretrained(model_args.base_model, num_labels=9)
    model = get_peft_model(base, LRCConfig.for_task("cpsc2018", r=4), adapter_name="cpsc2018")
    fe = task_feature_extractor("cpsc2018", load_base_extractor(model_args.base_model))
    save_run(model, fe, "cpsc2018", model_args, out)
    set_thresholds(out, "cpsc2018", [0.4] * 9)
    nan = float("nan")
    test = {"n": 30, "macro_auc": 0.8125, "macro_f1": 0.5, "accuracy": 0.7, "auc/LBBB": nan,
            "macro_auc_ci95": [0.7, 0.9], "auc_skipped_classes": ["LBBB"]}
    result = FinetuneResult(task="cpsc2018", method="lrc", seed=7, trainable_params=10, total_params=100,
                            test_metrics=test, val_metrics={"n": 12, "macro_auc": nan}, train_seconds=1.5,
                            train_samples_per_second=nan, thresholds=[0.4] * 9, output_dir=str(out))
    command = "python examples/finetune.py --task cpsc2018 --method lrc --base_model tac-ecg/resnet-cetp --seed 7"
    write_run_metadata(out, result, data_args, model_args, command)
    return {"folder": out, "command": command, "test": test}


_REMOTE_LOAD = """
import json, sys
import torch
from transformers import AutoFeatureExtractor, AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
fe = AutoFeatureExtractor.from_pretrained(sys.argv[1], trust_remote_code=True)
with torch.no_grad():
    pooled = model(torch.load(sys.argv[2])).pooler_output
assert not any(m == "tac_ecg_hf" or m.startswith("tac_ecg_hf.") for m in sys.modules)
print(json.dumps({"model": type(model).__module__ + "." + type(model).__name__, "fe": type(fe).__name__,
                  "pooled": pooled.tolist()}))
"""


def test_an_adapter_run_on_a_bundled_base_loads_with_remote_code_without_the_package(run_folder, tmp_path):
    """The run folder copies the bundled base's config.json, whose auto_map names the encoder's modules, while the
    bundled checkpoint ships no code: the run folder gets the modules, so that its encoder and feature extractor load
    through the Auto classes with trust_remote_code where tac-ecg-hf is not installed, with the same outputs."""
    from tac_ecg_hf.hub.code import missing_remote_code

    folder = run_folder["folder"]
    assert missing_remote_code(bundled_path("tac-ecg/resnet-cetp"))  # the bundle itself holds no code ...
    assert missing_remote_code(folder) == {}  # ... the run folder all it names
    assert {"configuration_resnet1d.py", "modeling_resnet1d.py", "modeling_ecg_base.py",
            "feature_extraction_ecg.py"} <= {p.name for p in folder.glob("*.py")}
    x = torch.randn(2, 12, 500, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    (tmp_path / "load.py").write_text(_REMOTE_LOAD)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(HF_MODULES_CACHE=str(tmp_path / "hf_modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-I", "load.py", str(folder), "x.pt"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["model"].startswith("transformers_modules") and loaded["model"].endswith(".ResNet1dModel")
    assert loaded["fe"] == "ECGFeatureExtractor"
    with torch.no_grad():
        expected = AutoModel.from_pretrained(folder).eval()(x).pooler_output
    assert torch.allclose(torch.tensor(loaded["pooled"]), expected, atol=1e-6)


def test_the_run_folder_json_is_strict(run_folder):
    files = sorted(run_folder["folder"].rglob("*.json"))
    assert {f.name for f in files} >= {"result.json", "adapter_config.json", "card_metadata.json", "config.json",
                                       "preprocessor_config.json"}
    for path in files:
        strict_json(path.read_text())  # raises on NaN / Infinity
    result = strict_json((run_folder["folder"] / "result.json").read_text())
    assert result["test"]["auc/LBBB"] is None and result["validation"]["macro_auc"] is None


def test_push_publishes_the_run_with_a_model_card(run_folder, hub, monkeypatch, capsys):
    local_hub_env(monkeypatch, hub, offline=False)
    repo_id = "tac-test/cpsc2018-lrc"
    capsys.readouterr()
    assert main(["push", str(run_folder["folder"]), "--repo-id", repo_id, "--endpoint", hub.endpoint]) == 0
    assert repo_id in capsys.readouterr().out
    files = set(hub.list_files(repo_id))
    assert {"README.md", "config.json", "model.safetensors", "preprocessor_config.json",
            "cpsc2018/adapter_config.json", "cpsc2018/adapter_model.safetensors", "modeling_resnet1d.py"} <= files
    for name in (f for f in files if f.endswith(".json")):
        strict_json(Path(hf_hub_download(repo_id, name)).read_text())
    card = ModelCard.load(hf_hub_download(repo_id, "README.md"))
    assert card.data.base_model == "tac-ecg/resnet-cetp" and card.data.library_name == "tac-ecg-hf"
    reported = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert reported == {"macro-AUC": run_folder["test"]["macro_auc"], "macro-F1": run_folder["test"]["macro_f1"],
                        "accuracy": run_folder["test"]["accuracy"]}  # no NaN entry, no sample count as a metric
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}
    assert run_folder["command"] in card.text and "seed 7" in card.text
    # the published repo is one the package's loaders read
    clf = ECGTaskClassifier.from_pretrained(repo_id)
    assert clf.tasks == ["cpsc2018"] and clf.thresholds("cpsc2018") == [0.4] * 9


def test_push_adds_the_code_auto_map_names_and_leaves_the_folder_alone(run_folder, hub, monkeypatch, tmp_path):
    import shutil

    from tac_ecg_hf.hub import push_run

    local_hub_env(monkeypatch, hub, offline=False)
    folder = tmp_path / "no-code"
    shutil.copytree(run_folder["folder"], folder)
    for path in folder.rglob("*.py"):
        path.unlink()
    before = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    push_run(folder, "tac-test/no-code", endpoint=hub.endpoint)
    files = set(hub.list_files("tac-test/no-code"))
    assert {"configuration_resnet1d.py", "configuration_ecg_base.py", "modeling_resnet1d.py", "modeling_ecg_base.py",
            "feature_extraction_ecg.py", "errors.py"} <= files
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == before


# ----------------------------------------------------------------------------------------------------------------
# import side effects and private API


def test_import_writes_and_logs_nothing(tmp_path):
    home = tmp_path / "hf_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TAC_ECG_"))}
    env.update(HF_HOME=str(home), PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    out = subprocess.run([sys.executable, "-c", "import tac_ecg_hf, tac_ecg_hf.hub, tac_ecg_hf.pipelines"],
                         env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr == "" and out.stdout == ""
    assert list(home.rglob("*")) == [] and not (tmp_path / "xdg").exists()


def test_no_private_huggingface_hub_api():
    private_path = re.compile(r"huggingface_hub(\.\w+)*\._\w")
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        offenders += [f"{path.relative_to(PACKAGE)}: {m.group(0)}" for m in private_path.finditer(text)]
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("huggingface_hub"):
                names = [a.name for a in node.names if a.name.startswith("_")]
                offenders += [f"{path.relative_to(PACKAGE)}: from {node.module} import {n}" for n in names]
    assert offenders == []
