"""push_run: a trained run folder published to the test Hub with a generated model card (ModelCard/EvalResult),
downloaded back and parsed; strict JSON for the card metadata."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard, snapshot_download
from support.local_hub import LocalHubServer, local_hub_env
from support.repos import save_run, tiny_classifier

from tac_ecg_hf.hub import (
    GENERATED_MARKER,
    HubAccessError,
    build_model_card,
    hub_model_id,
    push_run,
    write_card_metadata,
    write_model_card,
)
from tac_ecg_hf.jsonutil import dump_json, dumps, to_jsonable

TASKS = ["cinc2017", "ptbxl-super"]
METRICS = {
    "cinc2017": {"test_macro_auc": 0.61, "test_macro_f1": 0.23, "test_accuracy": 0.56, "test_num_samples": 39,
                 "test_loss": 1.1, "test_auc/A": 0.7, "seed": 3, "command": "python examples/finetune.py --seed 3"},
    "ptbxl-super": {"test_macro_auc": 0.87, "test_macro_f1": float("nan"), "test_num_samples": 170, "seed": 3},
}


def _pull_card(repo_id: str) -> tuple[Path, ModelCard]:
    folder = Path(snapshot_download(repo_id))
    return folder, ModelCard.load(folder / "README.md")


def _metrics(card: ModelCard) -> dict:
    return {(r.dataset_name, r.metric_name): r.metric_value for r in card.data.eval_results}


def test_push_run_with_task_adapters(hub_env, tmp_path):
    run = tmp_path / "run"
    model = save_run(run, TASKS, METRICS)
    # PEFT recorded the base as a local cache snapshot path; push_run must name it by its Hub id
    base_path = str(tmp_path / "hf_home" / "hub" / "models--tac-ecg--resnet-cetp" / "snapshots" / ("a" * 40))
    for task in TASKS:
        config = json.loads((run / task / "adapter_config.json").read_text())
        (run / task / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base_path}))
    (run / "checkpoint-10").mkdir()
    (run / "checkpoint-10" / "optimizer.pt").write_bytes(b"pickle")
    (run / "training_args.bin").write_bytes(b"pickle")
    peft_card = (run / "README.md").read_text()  # what PEFT's save_pretrained wrote: a template to regenerate
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}

    commit = push_run(run, "me/tiny-run")
    assert commit.oid == hub_env.head("me/tiny-run")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # the folder is not modified
    files = set(hub_env.list_files("me/tiny-run"))
    assert {"config.json", "model.safetensors", "README.md", "cinc2017/adapter_config.json",
            "ptbxl-super/adapter_model.safetensors"} <= files
    assert not any(f.startswith("checkpoint-") or f.endswith((".bin", ".pt")) for f in files)

    folder, card = _pull_card("me/tiny-run")
    text = (folder / "README.md").read_text()
    assert GENERATED_MARKER in text and text != peft_card and str(tmp_path) not in text
    assert card.data.library_name == "tac-ecg-hf" and card.data.license == "cc-by-4.0"
    assert card.data.base_model == "tac-ecg/resnet-cetp" and card.data.base_model_relation == "adapter"
    assert card.data.pipeline_tag == "other" and {"peft", "lrc-adapter", "transformers"} <= set(card.data.tags)
    assert card.data.datasets == ["physionet/challenge-2017", "physionet/ptb-xl"]
    assert card.data.model_name == "me/tiny-run"
    assert _metrics(card) == {  # only the finite held-out metrics: no loss, per-class AUC, NaN, seed
        ("PhysioNet/CinC Challenge 2017", "macro-AUC"): 0.61, ("PhysioNet/CinC Challenge 2017", "macro-F1"): 0.23,
        ("PhysioNet/CinC Challenge 2017", "accuracy"): 0.56, ("PTB-XL", "macro-AUC"): 0.87}
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}
    assert "python examples/finetune.py --seed 3" in text and "seed 3" in text
    assert "tac-ecg predict record.hea --model me/tiny-run --task ptbxl-super" in text
    assert "not a medical device" in text.lower()
    assert model is not None


def test_push_full_run_with_card_metadata(hub_env, tmp_path):
    run = tmp_path / "full"
    tiny_classifier().save_pretrained(run)
    write_card_metadata(run, task="cpsc2018", method="full", seed=7, base_model=str(tmp_path / "somewhere"),
                        command="python examples/finetune.py --task cpsc2018 --method full --seed 7",
                        metrics={"macro_auc": np.float32(0.75), "macro_f1": float("inf"), "num_samples": 14})
    assert "Infinity" not in (run / "card_metadata.json").read_text()
    push_run(run, "me/tiny-full", commit_message="full fine-tune")
    folder, card = _pull_card("me/tiny-full")
    text = (folder / "README.md").read_text()
    assert card.data.base_model is None  # a local path with no Hub id is left out, and said so
    assert "a local checkpoint (`somewhere`), not published on the Hub" in text
    assert _metrics(card) == {("CPSC2018", "macro-AUC"): pytest.approx(0.75)}
    assert card.data.datasets == ["physionet/cpsc2018"]
    assert "AutoModelForSequenceClassification.from_pretrained(\"me/tiny-full\")" in text
    assert "--method full --seed 7" in text


def test_cards_written_by_a_person_are_kept(hub_env, tmp_path):
    run = tmp_path / "run"
    tiny_classifier().save_pretrained(run)
    (run / "README.md").write_text("---\nlicense: mit\n---\n# My own card\n")
    push_run(run, "me/own-card")
    own = "---\nlicense: mit\n---\n# My own card\n"
    assert (Path(snapshot_download("me/own-card")) / "README.md").read_text() == own
    assert write_model_card(run, "me/own-card") is None
    (run / "README.md").write_text(f"{GENERATED_MARKER}\nstale\n")
    assert write_model_card(run, "me/own-card") == run / "README.md"
    assert ModelCard.load(run / "README.md").data.library_name == "tac-ecg-hf"


def test_encoder_only_card_and_bad_folders(hub_env, tmp_path):
    run = tmp_path / "encoder"
    tiny_classifier().save_pretrained(run)
    card = build_model_card(run, "me/encoder")
    assert card.data.pipeline_tag == "feature-extraction" and not card.data.eval_results
    assert "No held-out metrics were recorded" in card.text
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"holds no model \(config.json\) and no task adapter"):
        push_run(tmp_path / "empty", "me/empty")


def test_push_without_a_token_says_how_to_log_in(tmp_path, monkeypatch):
    run = tmp_path / "run"
    tiny_classifier().save_pretrained(run)
    with LocalHubServer(require_token=True) as hub:
        local_hub_env(monkeypatch, hub, cache_dir=tmp_path / "hf_home", token=None)
        with pytest.raises(HubAccessError, match=r"refused access to 'me/x' \(HTTP 401\); log in with `hf auth"):
            push_run(run, "me/x", token=False)
        assert push_run(run, "me/x", token="t").oid == hub.head("me/x")


def test_hub_model_id():
    assert hub_model_id("tac-ecg/resnet-cetp") == "tac-ecg/resnet-cetp"
    assert hub_model_id("/cache/hub/models--org--name/snapshots/" + "a" * 40 + "/encoder") == "org/name"
    assert hub_model_id("/no/such/folder") is None and hub_model_id(None) is None


def test_strict_json(tmp_path):
    data = {"nan": float("nan"), "inf": -math.inf, "np": np.float64(0.5), "arr": np.arange(3), "i": np.int64(2),
            "t": (1, 2.0), 3: Path("x")}
    assert to_jsonable(data) == {"nan": None, "inf": None, "np": 0.5, "arr": [0, 1, 2], "i": 2, "t": [1, 2.0],
                                 "3": "x"}
    assert json.loads(dumps(data)) == to_jsonable(data)
    path = dump_json({"m": [np.nan, 1.0]}, tmp_path / "m.json")
    assert path.read_text() == '{\n  "m": [\n    null,\n    1.0\n  ]\n}\n' and not list(tmp_path.glob(".*"))
    with pytest.raises(TypeError):
        dumps({"x": object()})
