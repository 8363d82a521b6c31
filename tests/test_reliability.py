"""Reliability: bad input end to end, header/label disagreement, pickle refusal, config strictness, adapter
mismatch, Trainer resume after a kill, atomic adapter writes, fuzzed label/sidecar files.

What tests/test_data_*.py and tests/test_hub_*.py already cover is not repeated here (see docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability_helpers import (
    XRES_TINY,
    adapter_state,
    build_tiny_repo,
    losses,
    make_resume_trainer,
    randomise_adapters,
    tiny_classifier,
)
from tac_ecg_hf import AdapterMismatchError, LRCConfig, create_encoder_config
from tac_ecg_hf.data import (
    ECGFileError,
    ECGInputError,
    ECGQualityWarning,
    ECGRecord,
    ECGResamplingWarning,
    read_cinc2017,
    read_cpsc2018,
    read_record,
)
from tac_ecg_hf.inference import ECGTaskClassifier, available_tasks
from tac_ecg_hf.models.encoders import ENCODER_FAMILIES
from tac_ecg_hf.models.encoders.configuration_ecg_base import ConfigFieldError
from tac_ecg_hf.safety import UnsafeCheckpointError, atomic_save_pretrained, check_adapter_files, load_peft_adapter

TESTS_DIR = Path(__file__).resolve().parent
FUZZ = settings(
    max_examples=int(os.environ.get("TAC_ECG_FUZZ_EXAMPLES", "40")),
    deadline=5000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TAC_ECG_NO_CACHE_SEED"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    return env


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    return build_tiny_repo(tmp_path_factory.mktemp("tiny_repo") / "model")


@pytest.fixture(scope="module")
def classifier(tiny_repo):
    return ECGTaskClassifier.from_pretrained(tiny_repo)


def _write_cinc2020_record(directory: Path, rid: str, val: np.ndarray, names, fs=500, gain=1000, dx="RBBB"):
    """A PhysioNet/CinC 2020 style record (int16 'val' in a MAT v4 file + header), one header line per row."""
    scipy.io.savemat(directory / f"{rid}.mat", {"val": val.astype(np.int16)}, format="4")
    lines = [f"{rid} {len(names)} {fs} {val.shape[1]} 05-Feb-2020 11:39:16"]
    for row, name in zip(val.astype(np.int64), names):
        checksum = int(row.sum()) & 0xFFFF
        checksum = checksum - 0x10000 if checksum >= 0x8000 else checksum
        lines.append(f"{rid}.mat 16+24 {gain}/mV 16 0 {row[0]} {checksum} 0 {name}")
    lines += [f"#Dx: {dx}"]
    (directory / f"{rid}.hea").write_text("\n".join(lines) + "\n")
    return directory / f"{rid}.hea"


# ================================================================================================================
# 1. bad ECG input, end to end through ECGTaskClassifier.predict
# ================================================================================================================


def test_wrong_lead_order_gives_the_same_probabilities(classifier, cpsc2018_dir, tmp_path):
    """A record whose leads are stored in another order (aVL/aVF swapped, chest leads reversed) is reordered by
    name: the prediction is identical to the one on the correctly ordered file."""
    reference = classifier.predict(cpsc2018_dir / "A0001.hea", task="cpsc2018")
    val = scipy.io.loadmat(cpsc2018_dir / "A0001.mat")["val"]
    names = read_record(cpsc2018_dir / "A0001.hea").lead_names
    order = [0, 1, 2, 3, 5, 4, 11, 10, 9, 8, 7, 6]  # I II III aVR aVF aVL V6 V5 V4 V3 V2 V1
    hea = _write_cinc2020_record(tmp_path, "A0001", val[order], [names[i] for i in order])
    shuffled = read_record(hea)
    assert shuffled.lead_names[4:6] == ("aVF", "aVL")
    prediction = classifier.predict(hea, task="cpsc2018")
    np.testing.assert_array_equal(prediction.probabilities, reference.probabilities)
    # an array with lead names in yet another (reversed) order, upper-case spellings included
    record = read_record(cpsc2018_dir / "A0001.hea")
    rev_names = [n.upper() for n in record.lead_names[::-1]]
    array_prediction = classifier.predict(
        record.signal[::-1].copy(), task="cpsc2018", sampling_rate=500, lead_names=rev_names
    )
    np.testing.assert_array_equal(array_prediction.probabilities, reference.probabilities)


def test_long_record_is_windowed_and_averaged(classifier, cpsc2018_dir):
    record = read_record(cpsc2018_dir / "A0001.hea")  # 15 s at 500 Hz -> 1500 samples at 100 Hz
    with pytest.warns(ECGResamplingWarning):
        prediction = classifier.predict(record, task="cpsc2018")
    assert prediction.num_windows == 2  # [0, 1000) and the end-aligned [500, 1500)
    with pytest.warns(ECGResamplingWarning):
        windows = classifier.preprocessor("cpsc2018").windows(record)
    classifier.model.set_adapter("cpsc2018")
    with torch.no_grad():
        probs = torch.sigmoid(classifier.model(input_values=torch.from_numpy(windows)).logits).mean(0).numpy()
    np.testing.assert_allclose(prediction.probabilities, probs, rtol=1e-6)
    # a 4 s record is zero-padded to one 10 s window
    short = ECGRecord(record.signal[:, :2000], 500, record.lead_names, "short")
    with pytest.warns(ECGResamplingWarning):
        assert classifier.predict(short, task="cpsc2018").num_windows == 1


def test_other_sampling_rate_is_resampled_and_said(classifier, cpsc2018_dir):
    from tac_ecg_hf.data import resample

    record = read_record(cpsc2018_dir / "A0001.hea")
    with pytest.warns(ECGResamplingWarning, match=r"resampled from 500 Hz to 100 Hz"):
        at_500 = classifier.predict(record, task="cpsc2018")
    with pytest.warns(ECGResamplingWarning):
        signal_100 = resample(record.signal, 500, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ECGResamplingWarning)  # already at the model's rate: no resampling, no warning
        at_100 = classifier.predict(ECGRecord(signal_100, 100, record.lead_names, "A0001@100"), task="cpsc2018")
    np.testing.assert_allclose(at_500.probabilities, at_100.probabilities, rtol=1e-5, atol=1e-6)


def test_lead_count_names_nan_and_flat_leads_through_predict(classifier, cpsc2018_dir):
    record = read_record(cpsc2018_dir / "A0001.hea")
    three = ECGRecord(record.signal[:3], 500, record.lead_names[:3], "three-leads")
    with pytest.raises(ECGInputError, match=r"three-leads.*missing.*fill_missing"):
        classifier.predict(three, task="cpsc2018")
    renamed = ECGRecord(record.signal, 500, ["X%d" % i for i in range(12)], "odd-names")
    with pytest.raises(ECGInputError, match=r"odd-names.*not among the expected leads"):
        classifier.predict(renamed, task="cpsc2018")
    nan = record.signal.copy()
    nan[4, 100:110] = np.nan
    with pytest.raises(ECGInputError, match=r"A0001.*aVL \(10 NaN\)"):
        classifier.predict(ECGRecord(nan, 500, record.lead_names, "A0001"), task="cpsc2018")
    flat = record.signal.copy()
    flat[7] = 0.25
    with pytest.warns(ECGQualityWarning, match=r"flat lead\(s\) \['V2'\]"):
        classifier.predict(ECGRecord(flat, 500, record.lead_names, "A0001"), task="cpsc2018")


# ================================================================================================================
# 1b. header and label files that disagree
# ================================================================================================================


def test_cpsc2018_reference_and_header_disagree(cpsc2018_dir, tmp_path):
    for ext in (".hea", ".mat"):
        shutil.copyfile(cpsc2018_dir / f"A0001{ext}", tmp_path / f"A0001{ext}")  # '#Dx: RBBB'
    (tmp_path / "REFERENCE.csv").write_text("Recording,First_label,Second_label,Third_label\nA0001,5,,\n")
    (record,) = read_cpsc2018(tmp_path)  # 5 = RBBB: both sources agree
    assert record.labels == ("RBBB",)
    (tmp_path / "REFERENCE.csv").write_text("Recording,First_label,Second_label,Third_label\nA0001,2,,\n")
    with pytest.raises(ECGFileError, match=r"record 'A0001'.*REFERENCE\.csv gives labels \['AF'\].*#Dx: RBBB.*disagree"):
        list(read_cpsc2018(tmp_path))
    with pytest.warns(ECGQualityWarning, match="skipped record 'A0001'"):
        assert list(read_cpsc2018(tmp_path, on_error="skip")) == []


def test_cinc2017_label_file_contradicting_itself(cinc2017_dir, tmp_path):
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\nA00002,N\nA00001,A\n")
    with pytest.raises(ECGFileError, match=r"line 3: record 'A00001' is labelled 'A' here but 'N' on an earlier line"):
        list(read_cinc2017(tmp_path))
    for ext in (".hea", ".mat"):
        shutil.copyfile(cinc2017_dir / f"A00001{ext}", tmp_path / f"A00001{ext}")
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\nA00001,N\n")  # a repeated, consistent line is fine
    assert [r.labels for r in read_cinc2017(tmp_path)] == [("N",)]


# ================================================================================================================
# 1c. fuzzing the label files and sidecars that the dataset readers parse (record files: tests/test_data_readers.py)
# ================================================================================================================


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_labels")


@FUZZ
@given(text=st.lists(st.sampled_from(list("A0123456789,NAO~Qx \n\"\t;") + ["A00001", "Recording", "\r\n"]), max_size=60).map("".join))
def test_fuzz_cinc2017_reference(fuzz_root, text):
    (fuzz_root / "REFERENCE.csv").write_text(text)
    try:
        list(read_cinc2017(fuzz_root))
    except ECGInputError:
        pass


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_cpsc2018_reference_bytes(fuzz_root, data):
    root = fuzz_root / "cpsc"
    root.mkdir(exist_ok=True)
    (root / "REFERENCE.csv").write_bytes(b"Recording,First_label,Second_label,Third_label\n" + data)
    try:
        list(read_cpsc2018(root))
    except ECGInputError:
        pass


@FUZZ
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(
            st.sampled_from(["sampling_rate", "lead_names", "units", "gain", "baseline", "layout", "labels", "record_id", "x"]),
            children,
            max_size=4,
        ),
        max_leaves=10,
    )
)
def test_fuzz_npy_sidecar(fuzz_root, payload):
    """Any JSON sidecar next to a valid .npy gives a record or an ECGInputError, never another exception."""
    path = fuzz_root / "side.npy"
    if not path.exists():
        np.save(path, np.random.default_rng(0).standard_normal((12, 200)).astype(np.float32))
    (fuzz_root / "side.json").write_text(json.dumps(payload))
    try:
        record = read_record(path)
    except ECGInputError:
        return
    assert isinstance(record, ECGRecord) and np.isfinite(record.sampling_rate) and record.sampling_rate > 0


# ================================================================================================================
# 2. checkpoints: safetensors only, adapter/encoder mismatch, strict configs
# ================================================================================================================


def _to_pickle_checkpoint(folder: Path, safe_name: str, pickle_name: str) -> None:
    from safetensors.torch import load_file

    state = load_file(folder / safe_name)
    torch.save(state, folder / pickle_name)  # a real pickle written by torch.save
    (folder / safe_name).unlink()


def test_pickle_encoder_checkpoint_is_refused(tmp_path):
    from transformers import AutoModel, AutoModelForSequenceClassification

    model = tiny_classifier()
    model.encoder.save_pretrained(tmp_path)
    _to_pickle_checkpoint(tmp_path, "model.safetensors", "pytorch_model.bin")
    for loader in (AutoModel, AutoModelForSequenceClassification, ENCODER_FAMILIES["xresnet1d"][1]):
        with pytest.raises(UnsafeCheckpointError) as info:
            loader.from_pretrained(tmp_path)
        message = str(info.value)
        assert "pytorch_model.bin" in message and "safetensors" in message and "use_safetensors=False" in message
        assert str(tmp_path) in message
    assert isinstance(info.value, OSError)
    # explicit opt-in for a trusted file
    loaded = AutoModel.from_pretrained(tmp_path, use_safetensors=False).eval()
    x = torch.randn(2, 12, 128)
    with torch.no_grad():
        assert torch.equal(loaded(x).pooler_output, model.encoder(x).pooler_output)
    # with both files, safetensors is used and nothing is refused
    model.encoder.save_pretrained(tmp_path)
    assert AutoModel.from_pretrained(tmp_path) is not None


def test_pickle_cetp_checkpoint_is_refused(tmp_path):
    from transformers import BertConfig

    from tac_ecg_hf import CETPConfig, CETPModel

    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=100)
    config = CETPConfig(
        ecg_config=create_encoder_config("xresnet1d", **XRES_TINY).to_dict(),
        text_config=BertConfig(**text).to_dict(),
        projection_dim=16,
    )
    CETPModel(config).save_pretrained(tmp_path)
    _to_pickle_checkpoint(tmp_path, "model.safetensors", "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match=r"pytorch_model\.bin.*use_safetensors=False"):
        CETPModel.from_pretrained(tmp_path)
    assert isinstance(CETPModel.from_pretrained(tmp_path, use_safetensors=False), CETPModel)


def test_pickle_adapter_is_refused_unless_allowed(tiny_repo, tmp_path, cpsc2018_dir):
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo)
    _to_pickle_checkpoint(repo / "adapters" / "cinc2017", "adapter_model.safetensors", "adapter_model.bin")
    with pytest.raises(UnsafeCheckpointError) as info:
        ECGTaskClassifier.from_pretrained(repo, tasks=["cinc2017"])
    message = str(info.value)
    assert "adapter_model.bin" in message and "allow_pickle=True" in message and "cinc2017" in message
    # the safetensors adapter of the other task still loads
    assert ECGTaskClassifier.from_pretrained(repo, tasks=["cpsc2018"]).tasks == ["cpsc2018"]
    # the guard also protects direct PEFT loading through tac_ecg_hf.safety
    with pytest.raises(UnsafeCheckpointError):
        load_peft_adapter(tiny_classifier(), repo / "adapters" / "cinc2017", "cinc2017")
    check_adapter_files(repo / "adapters" / "cinc2017", allow_pickle=True)
    # explicit opt-in: the same predictions as from the safetensors adapter
    trusted = ECGTaskClassifier.from_pretrained(repo, tasks=["cinc2017"], allow_pickle=True)
    safe = ECGTaskClassifier.from_pretrained(tiny_repo, tasks=["cinc2017"])
    record = read_record(cpsc2018_dir / "A0001.hea")
    lead_i = ECGRecord(record.signal[:1], 500, ("I",), "lead-I")
    with pytest.warns(ECGResamplingWarning):
        np.testing.assert_array_equal(
            trusted.predict(lead_i, task="cinc2017").probabilities, safe.predict(lead_i, task="cinc2017").probabilities
        )


def test_pickle_only_encoder_in_a_model_repo_is_refused(tiny_repo, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo)
    _to_pickle_checkpoint(repo, "model.safetensors", "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match=r"pytorch_model\.bin.*allow_pickle=True"):
        ECGTaskClassifier.from_pretrained(repo, tasks=["cinc2017"])
    assert ECGTaskClassifier.from_pretrained(repo, tasks=["cinc2017"], allow_pickle=True).tasks == ["cinc2017"]


def test_adapter_for_another_architecture_is_refused(tmp_path):
    """Width, depth and lead count are covered in tests/test_lrc_adapter.py; here: another encoder family."""
    from peft import PeftModel, get_peft_model

    peft_model = get_peft_model(tiny_classifier(), LRCConfig.for_task("cinc2017", r=2), adapter_name="cinc2017")
    peft_model.save_pretrained(tmp_path)
    torch.manual_seed(0)
    resnet = ENCODER_FAMILIES["resnet1d"][2](create_encoder_config("resnet1d", layers=[1, 1], base_width=8, num_labels=4))
    with pytest.raises(AdapterMismatchError) as info:
        PeftModel.from_pretrained(resnet, tmp_path / "cinc2017", adapter_name="cinc2017")
    message = str(info.value)
    assert "model_type: adapter 'xresnet1d' vs encoder 'resnet1d'" in message and "cinc2017" in message


def _saved_config(tmp_path: Path, family="xresnet1d", **overrides) -> dict:
    tiny = {"xresnet1d": XRES_TINY, "resnet1d": dict(layers=[1, 1], base_width=8)}.get(family, {})
    create_encoder_config(family, **{**tiny, **overrides}).save_pretrained(tmp_path)
    return json.loads((tmp_path / "config.json").read_text())


def test_config_with_unknown_field_is_refused(tmp_path):
    from transformers import AutoConfig

    config = _saved_config(tmp_path)
    config["layrs"] = config.pop("layers")
    config["layers"] = [1, 1]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigFieldError, match=r"unknown field\(s\) \['layrs'\].*'layrs' -> 'layers'"):
        AutoConfig.from_pretrained(tmp_path)
    with pytest.raises(ConfigFieldError, match=r"\['kernal_size'\]"):
        create_encoder_config("resnet1d", kernal_size=5)
    assert isinstance(ConfigFieldError("x"), ValueError)


@pytest.mark.parametrize(
    "family, field", [("xresnet1d", "layers"), ("resnet1d", "base_width"), ("fcn1d", "widths"), ("xresnet1d", "in_channels"), ("lstm1d", "sampling_rate")]
)
def test_config_file_missing_architecture_fields_is_refused(tmp_path, family, field):
    from transformers import AutoConfig, AutoModel

    config = _saved_config(tmp_path, family)
    del config[field]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigFieldError, match=rf"lacks the field\(s\) \['{field}'\]"):
        AutoConfig.from_pretrained(tmp_path)
    with pytest.raises(ConfigFieldError, match=rf"config\.json of {tmp_path}"):
        AutoModel.from_pretrained(tmp_path)
    # in code, defaults are still fine
    assert create_encoder_config(family).model_type == family


def test_config_keys_written_by_transformers_are_accepted(tmp_path):
    from transformers import AutoConfig

    config = _saved_config(tmp_path)
    config.update(
        torch_dtype="float32", architectures=["XResNet1dModel"], _commit_hash="abc", _name_or_path="x",
        bos_token_id=None, use_cache=True, num_beams=1, output_attentions=False,
    )
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = AutoConfig.from_pretrained(tmp_path, num_labels=5, problem_type="multi_label_classification")
    assert loaded.num_labels == 5 and loaded.problem_type == "multi_label_classification"
    assert loaded.layers == XRES_TINY["layers"]


# ================================================================================================================
# 3. training survives interruption
# ================================================================================================================

_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from transformers import Trainer
    import reliability_helpers as H

    original = Trainer._save_rng_state

    def killed_while_saving(self, output_dir):
        # the second checkpoint (step 6) is killed half-written: weights and optimizer are on disk,
        # the RNG state and trainer_state.json are not; checkpoint-3 is complete
        if self.state.global_step >= 6:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, output_dir)

    Trainer._save_rng_state = killed_while_saving
    H.make_resume_trainer(sys.argv[1]).train()
    raise SystemExit("not killed")
    """
)


def test_killed_trainer_resumes_with_the_same_result(tmp_path):
    """PEFT LRC-Adapter under transformers.Trainer: a run SIGKILLed after checkpoint-3 (and while writing
    checkpoint-6) resumes from the last complete checkpoint and ends with exactly the uninterrupted result."""
    from transformers.trainer_utils import get_last_checkpoint

    from tac_ecg_hf.training import checkpoint_is_complete, last_complete_checkpoint

    script = tmp_path / "killed_run.py"
    script.write_text(_KILL_SCRIPT)
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir)], env=_subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    reference = make_resume_trainer(tmp_path / "reference")  # meanwhile, the uninterrupted run
    reference.train()
    expected_state, expected_losses = adapter_state(reference), losses(reference)
    assert len(expected_losses) == 8

    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    assert checkpoint_is_complete(run_dir / "checkpoint-3")
    assert not checkpoint_is_complete(run_dir / "checkpoint-6")
    assert get_last_checkpoint(run_dir).endswith("checkpoint-6")  # what resume_from_checkpoint=True would take

    assert last_complete_checkpoint(run_dir, quarantine=True).endswith("checkpoint-3")
    assert (run_dir / "incomplete-checkpoint-6").is_dir() and not (run_dir / "checkpoint-6").exists()
    resumed = make_resume_trainer(run_dir)
    resumed.train(resume_from_checkpoint=True)
    state = adapter_state(resumed)
    assert state.keys() == expected_state.keys() and len(state) > 0
    # Same result up to float summation order: multi-threaded CPU conv backward may sum in another order in another
    # process (seen in CI: a 1-ulp difference), so compare at float32 precision rather than bit for bit.
    for key in state:
        torch.testing.assert_close(state[key], expected_state[key], rtol=1e-5, atol=1e-7, msg=key)
    assert losses(resumed) == pytest.approx(expected_losses, rel=1e-6)  # steps 1-3 from the checkpoint's log
    # the frozen encoder did not move (base BatchNorm statistics stay frozen in eval mode)
    from peft import get_peft_model

    fresh = get_peft_model(tiny_classifier(), LRCConfig.for_task("cinc2017", r=2, dropout=0.1), adapter_name="cinc2017")
    resumed_buffers = dict(resumed.model.named_buffers())
    for name, buffer in fresh.named_buffers():
        assert torch.equal(resumed_buffers[name], buffer), name


# ================================================================================================================
# 3b. atomic adapter writes
# ================================================================================================================


def _peft(task="cinc2017", seed=0):
    from peft import get_peft_model

    spec_labels = {"cinc2017": 4, "cpsc2018": 9}[task]
    model = get_peft_model(tiny_classifier(num_labels=spec_labels), LRCConfig.for_task(task, r=2), adapter_name=task)
    randomise_adapters(model, seed=seed)
    return model


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _fake_result(task="cinc2017"):
    from tac_ecg_hf.training import FinetuneResult

    return FinetuneResult(task=task, method="lrc", seed=0, trainable_params=1, total_params=2,
                          test_metrics={"test_macro_auc": 0.5}, val_metrics={}, train_seconds=1.0,
                          train_samples_per_second=1.0)


def test_save_finetuned_crash_leaves_previous_adapter_intact(tmp_path, monkeypatch):
    import peft.peft_model

    from tac_ecg_hf.training import save_finetuned

    out = tmp_path / "run"
    save_finetuned(_peft(seed=1), _fake_result(), out)
    save_finetuned(_peft("cpsc2018", seed=3), _fake_result("cpsc2018"), out)  # a sibling adapter
    before = _tree(out / "adapters")
    assert available_tasks(out) == ["cinc2017", "cpsc2018"]

    real_save = peft.peft_model.safe_save_file

    def crash_midway(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])  # half a file on disk...
        raise OSError(28, "No space left on device")  # ...then the write fails

    monkeypatch.setattr(peft.peft_model, "safe_save_file", crash_midway)
    with pytest.raises(OSError, match="No space left"):
        save_finetuned(_peft(seed=2), _fake_result(), out)
    assert _tree(out / "adapters") == before  # previous adapter byte-identical, sibling untouched
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]  # no temporary leftovers
    monkeypatch.setattr(peft.peft_model, "safe_save_file", real_save)

    # a successful save replaces the adapter and keeps the sibling
    new = _peft(seed=2)
    save_finetuned(new, _fake_result(), out)
    after = _tree(out / "adapters")
    assert after["cinc2017/adapter_model.safetensors"] != before["cinc2017/adapter_model.safetensors"]
    assert after["cpsc2018/adapter_model.safetensors"] == before["cpsc2018/adapter_model.safetensors"]
    reloaded = load_peft_adapter(tiny_classifier(), out / "adapters" / "cinc2017", "cinc2017")
    for name, param in new.named_parameters():
        if "lrc_" in name:
            assert torch.equal(reloaded.get_parameter(name), param), name


_KILL_DURING_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import peft.peft_model
    import reliability_helpers as H
    from peft import get_peft_model
    from tac_ecg_hf import LRCConfig
    from tac_ecg_hf.safety import atomic_save_pretrained

    real_save = peft.peft_model.safe_save_file

    def killed_midway(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 3])
        os.kill(os.getpid(), signal.SIGKILL)

    peft.peft_model.safe_save_file = killed_midway
    model = get_peft_model(H.tiny_classifier(), LRCConfig.for_task("cinc2017", r=2), adapter_name="cinc2017")
    H.randomise_adapters(model, seed=9)
    atomic_save_pretrained(model, sys.argv[1])
    """
)


def test_kill_during_atomic_save_keeps_previous_adapter(tmp_path):
    target = tmp_path / "model" / "adapters"
    atomic_save_pretrained(_peft(seed=1), target)
    before = _tree(target)
    script = tmp_path / "kill_save.py"
    script.write_text(_KILL_DURING_SAVE)
    proc = subprocess.run([sys.executable, str(script), str(target)], env=_subprocess_env(), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert _tree(target) == before  # the killed save never touched the target
    leftovers = [p.name for p in target.parent.iterdir() if ".tmp-" in p.name]
    assert len(leftovers) == 1 and leftovers[0].startswith(".adapters.tmp-")  # a hidden sibling, not in the target
    assert available_tasks(target.parent) == ["cinc2017"]
    atomic_save_pretrained(_peft(seed=2), target)  # the next save removes the dead process's temporary folder
    assert not [p for p in target.parent.iterdir() if ".tmp-" in p.name]
    assert _tree(target)["cinc2017/adapter_model.safetensors"] != before["cinc2017/adapter_model.safetensors"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-aside"])
def test_atomic_save_of_a_model_folder(tmp_path, monkeypatch, exchange):
    """A plain model folder is replaced as a unit; what the new save does not write (adapters/) is kept, a stale
    pickle weight file is not. Both swap strategies (atomic exchange, rename aside where unsupported) are tested."""
    import tac_ecg_hf.safety as safety

    if not exchange:
        monkeypatch.setattr(safety, "_exchange", lambda a, b: False)
    target = tmp_path / "repo"
    first = tiny_classifier(seed=0).encoder
    first.save_pretrained(target)
    (target / "adapters" / "x").mkdir(parents=True)
    (target / "adapters" / "x" / "adapter_config.json").write_text("{}")
    (target / "pytorch_model.bin").write_bytes(b"stale pickle")
    second = tiny_classifier(seed=1).encoder
    atomic_save_pretrained(second, target)
    assert (target / "adapters" / "x" / "adapter_config.json").read_text() == "{}"
    assert not (target / "pytorch_model.bin").exists()
    from transformers import AutoModel

    loaded = AutoModel.from_pretrained(target)
    for key, value in second.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    with pytest.raises(FileExistsError):
        (tmp_path / "afile").write_text("x")
        atomic_save_pretrained(second, tmp_path / "afile")
    assert (tmp_path / "afile").read_text() == "x"
