"""Every case of issue 10, end to end through ``tac-ecg predict`` on a copy of the real CPSC2018 record A0001 and of
the bundled ``tac-ecg/xresnet1d101-cetp`` folder, each in a fresh child process capped at 6 GB of address space and
90 s (support.capped): a refusal exits 2 with one line on stderr saying what and how to fix it, a silent change of
the input becomes a note in the output. docs/reliability.md lists each case with its test.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.capped import ADDRESS_SPACE_CAP, TIME_LIMIT

PREFIX = "tac-ecg predict: error: "


MEASURED: list = []  # (seconds, peak MB) of every case, summarised at the end of the module (pytest -s)


@pytest.fixture(scope="module")
def runner(capped_runner, bundled_xresnet, cpsc2018_dir):
    capped_runner.warm_up(bundled_xresnet, cpsc2018_dir / "A0001.hea", "cpsc2018")
    yield capped_runner
    if MEASURED:
        print(f"\n{len(MEASURED)} capped cases: slowest {max(s for s, _ in MEASURED):.2f} s, "
              f"largest peak RSS {max(m for _, m in MEASURED):.0f} MB")


@pytest.fixture
def record(cpsc2018_dir, tmp_path) -> Path:
    """A copy of A0001 (12 leads, 500 Hz, 15 s, #Dx: RBBB)."""
    folder = tmp_path / "record"
    folder.mkdir()
    for ext in (".hea", ".mat"):
        shutil.copyfile(cpsc2018_dir / f"A0001{ext}", folder / f"A0001{ext}")
    return folder / "A0001.hea"


@pytest.fixture
def model(bundled_xresnet, tmp_path) -> Path:
    """A copy of the bundled xresnet1d101-cetp folder, for the test to edit."""
    return Path(shutil.copytree(bundled_xresnet, tmp_path / "xresnet1d101-cetp"))


def edit_json(path: Path, **changes) -> dict:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return data


def set_header_rate(hea: Path, rate: str) -> None:
    text = hea.read_text()
    hea.write_text(text.replace("A0001 12 500 7500", f"A0001 12 {rate} 7500", 1))


def as_npy(record: Path, out: Path, samples: int | None = None, leads=None) -> tuple[Path, str]:
    from tac_ecg_hf.data import read_record

    r = read_record(record)
    rows = [r.lead_names.index(n) for n in leads] if leads else list(range(len(r.lead_names)))
    np.save(out, r.signal[rows, :samples])
    return out, ",".join(r.lead_names[i] for i in rows)


def predict(runner, *argv):
    result = runner.cli(["predict", *argv])
    MEASURED.append((result.seconds, result.max_rss_mb))
    assert not result.timed_out and result.signal is None, result.describe()
    assert result.seconds < TIME_LIMIT, result.describe()
    return result


def refused(runner, pattern: str, *argv) -> str:
    """The case exits 2 with exactly one line on stderr matching ``pattern`` and nothing on stdout."""
    result = predict(runner, *argv)
    assert result.exit_code == 2, result.describe()
    lines = result.stderr_lines
    assert len(lines) == 1 and lines[0].startswith(PREFIX), result.describe()
    assert re.search(pattern, lines[0]), lines[0]
    assert result.stdout == "", result.describe()
    return lines[0]


def predicted(runner, *argv) -> dict:
    """The case exits 0; returns the JSON prediction (``--json`` is added)."""
    result = predict(runner, *argv, "--json")
    assert result.exit_code == 0 and result.stderr == "", result.describe()
    return json.loads(result.stdout)


def test_cap_is_the_issue_s():
    assert ADDRESS_SPACE_CAP == 6 * 1024**3 and TIME_LIMIT == 90


def test_reference_prediction_on_the_copies(runner, record, model):
    """The unedited copies predict (the refusals below are the edits', not the setup's)."""
    result = predicted(runner, record, "--task", "cpsc2018", "--model", model)
    assert result["windows"] == 2 and result["decision"] and result["reference"] == ["RBBB"]


# -- memory blow-up from one header field -----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["0.01", "0.0001"])
def test_header_sampling_rate_far_below_an_ecg_is_refused(runner, record, model, rate):
    set_header_rate(record, rate)
    refused(runner, rf"sampling rate {rate} Hz is outside the 50-20000 Hz", record, "--task", "cpsc2018", "--model",
            model)


def test_fs_flag_far_below_an_ecg_is_refused_for_npy(runner, record, model, tmp_path):
    npy, leads = as_npy(record, tmp_path / "a.npy")
    refused(runner, r"sampling rate 0.01 Hz is outside", npy, "--fs", "0.01", "--leads", leads, "--task", "cpsc2018",
            "--model", model)


# -- configs that hang or allocate gigabytes ------------------------------------------------------------------------


def test_encoder_config_with_100000_blocks_is_refused(runner, record, model):
    edit_json(model / "config.json", layers=[3, 4, 100_000, 3])
    refused(runner, r"layers\[2\] must be an integer in \[1, 1,000\], got 100000", record, "--task", "cpsc2018",
            "--model", model)


def test_encoder_config_with_65536_channels_is_refused(runner, record, model):
    edit_json(model / "config.json", block_widths=[65536, 64, 64, 64])
    refused(runner, r"block_widths\[0\] must be an integer in \[1, 2,048\], got 65536", record, "--task", "cpsc2018",
            "--model", model)


def test_adapter_rank_200000_is_refused(runner, record, model):
    edit_json(model / "cpsc2018" / "adapter_config.json", r=200_000)
    refused(runner, r"LRCConfig\.r must be an integer in \[1, 1024\], got 200000", record, "--task", "cpsc2018",
            "--model", model)


def test_preprocessor_num_samples_1e9_is_refused(runner, record, model):
    edit_json(model / "preprocessor_config.json", num_samples=1_000_000_000)
    for task_fe in model.glob("*/preprocessor_config.json"):
        edit_json(task_fe, num_samples=1_000_000_000)
    refused(runner, r"num_samples=1000000000 exceeds the maximum", record, "--task", "cpsc2018", "--model", model)


# -- adapters that do not fit -----------------------------------------------------------------------------------------


def test_target_modules_that_match_nothing_are_refused(runner, record, model):
    edit_json(model / "cpsc2018" / "adapter_config.json", target_modules=["nothing.matches.this"])
    refused(runner, r"target_modules=.*match no module of this 'xresnet1d' model", record, "--task", "cpsc2018",
            "--model", model)


def _foreign_adapter(model: Path, keep_targets: bool, paste: bool) -> None:
    """The resnet-cetp model's cpsc2018 adapter in the xresnet folder, optionally with the xresnet adapter's
    encoder_signature and encoder_fingerprint pasted in."""
    from tac_ecg_hf.hub import bundled_path

    own = json.loads((model / "cpsc2018" / "adapter_config.json").read_text())
    shutil.rmtree(model / "cpsc2018")
    shutil.copytree(bundled_path("tac-ecg/resnet-cetp") / "cpsc2018", model / "cpsc2018")
    config = json.loads((model / "cpsc2018" / "adapter_config.json").read_text())
    for key in ("encoder_signature", "encoder_fingerprint"):
        if paste:
            config[key] = own[key]
        else:
            config.pop(key, None)
    if not keep_targets:
        config["target_modules"] = None  # the xresnet defaults: the modules exist, the tensors do not fit them
    (model / "cpsc2018" / "adapter_config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "keep_targets, paste",
    [(True, True), (False, True), (False, False)],
    ids=["pasted-signature", "pasted-signature-default-targets", "signature-deleted"],
)
def test_another_model_s_adapter_is_refused(runner, record, model, keep_targets, paste):
    _foreign_adapter(model, keep_targets, paste)
    pattern = r"match no module" if keep_targets else r"does not fit this model: .*(shape\(s\) differ|get no value)"
    refused(runner, pattern, record, "--task", "cpsc2018", "--model", model)


# -- bad checkpoints are bad input (exit 2), not internal errors ------------------------------------------------------


def test_label_count_that_differs_from_the_head_is_refused(runner, record, model):
    edit_json(model / "cpsc2018" / "adapter_config.json", labels=["a", "b", "c"], thresholds=None)
    refused(runner, r"shape\(s\) differ \(head\.classifier\.lrc_head\.bias: file \(9,\) vs model \(3,\)", record,
            "--task", "cpsc2018", "--model", model)


@pytest.mark.parametrize("factor", [0.5, 2], ids=["half", "double"])
def test_rank_that_differs_from_the_weights_is_refused(runner, record, model, factor):
    """Half the rank of the weights is the case PEFT's 4-bit size heuristic let through to a torch RuntimeError."""
    path = model / "cpsc2018" / "adapter_config.json"
    r = json.loads(path.read_text())["r"]
    edit_json(path, r=int(r * factor))
    refused(runner, rf"shape\(s\) differ \(.*: file \({r},.*\) vs model \({int(r * factor)},", record, "--task",
            "cpsc2018", "--model", model)


@pytest.mark.parametrize("which", ["cpsc2018/adapter_model.safetensors", "model.safetensors"])
def test_truncated_safetensors_are_refused(runner, record, model, which):
    path = model / which
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    refused(runner, r"(not a readable safetensors file|truncated or corrupt)", record, "--task", "cpsc2018",
            "--model", model)


def test_adapter_config_holding_a_list_is_refused(runner, record, model):
    (model / "cpsc2018" / "adapter_config.json").write_text("[1, 2, 3]")
    refused(runner, r"adapter_config\.json holds a JSON list, not an object", record, "--task", "cpsc2018",
            "--model", model)


@pytest.mark.parametrize("which", ["adapter", "encoder"])
def test_allow_pickle_on_a_pickle_torch_refuses(runner, record, model, which):
    """A pickle holding more than tensors (here a reference to ``builtins.print``, as a malicious file holds
    ``os.system``) is refused by torch's weights-only unpickler even with --allow-pickle."""
    import torch

    if which == "adapter":
        folder, safe, unsafe = model / "cpsc2018", "adapter_model.safetensors", "adapter_model.bin"
    else:
        folder, safe, unsafe = model, "model.safetensors", "pytorch_model.bin"
    from safetensors.torch import load_file

    torch.save({**load_file(folder / safe), "payload": print}, folder / unsafe)
    (folder / safe).unlink()
    message = refused(runner, r"refused by torch's weights-only unpickler", record, "--task", "cpsc2018", "--model",
                      model, "--allow-pickle")
    assert "Unsupported global: GLOBAL" in message and "print" in message and "\x1b" not in message, message
    refused(runner, r"holds only a pickle checkpoint.*allow_pickle=True", record, "--task", "cpsc2018", "--model",
            model)


# -- silent wrong results become refusals or notes --------------------------------------------------------------------


def test_one_second_record_is_refused(runner, record, model, tmp_path):
    npy, leads = as_npy(record, tmp_path / "one.npy", samples=500)
    refused(runner, r"1\.00 s long, shorter than the 5 s minimum", npy, "--fs", "500", "--leads", leads, "--task",
            "cpsc2018", "--model", model)


def test_seven_second_record_is_padded_with_a_note(runner, record, model, tmp_path):
    npy, leads = as_npy(record, tmp_path / "seven.npy", samples=3500)
    argv = [npy, "--fs", "500", "--leads", leads, "--task", "cpsc2018", "--model", model]
    note = "record is 7.0 s, shorter than the model's 10 s window: padded with 3.0 s of zeros"
    assert note in predicted(runner, *argv)["notes"]
    text = predict(runner, *argv)
    assert text.exit_code == 0 and f"note: {note}" in text.stdout.splitlines(), text.describe()


def test_twelve_leads_for_cinc2017_use_lead_i_with_a_note(runner, record, model, tmp_path):
    result = predicted(runner, record, "--task", "cinc2017", "--model", model)
    assert any("reads only lead(s) ['I']; ignored 11 other lead(s)" in n for n in result["notes"]), result["notes"]
    npy, leads = as_npy(record, tmp_path / "lead_i.npy", leads=["I"])
    lead_i = predicted(runner, npy, "--fs", "500", "--leads", leads, "--task", "cinc2017", "--model", model)
    assert lead_i["probabilities"] == result["probabilities"]  # exactly lead I, nothing of the other eleven


@pytest.mark.parametrize("threshold", ["nan", "-1", "1.5", "inf"])
def test_threshold_outside_zero_one_is_refused(runner, record, model, threshold):
    refused(runner, r"threshold must be a number in \[0, 1\]", record, "--task", "cpsc2018", "--model", model,
            "--threshold", threshold)


def test_negative_gain_is_said(runner, record, model):
    record.write_text(record.read_text().replace("1000/mV", "-1000/mV"))
    result = predicted(runner, record, "--task", "cpsc2018", "--model", model)
    gain_notes = [n for n in result["notes"] if "negative" in n]
    assert len(gain_notes) == 1 and "'I' -1000" in gain_notes[0] and "'V6' -1000" in gain_notes[0], result["notes"]
    assert "polarity" in gain_notes[0]
