#!/usr/bin/env python
"""Rebuild the checkpoints bundled in ``tac_ecg_hf/checkpoints`` with the package's own example scripts.

For each encoder: CETP pre-training (examples/pretrain_cetp.py), one LRC-Adapter per task (examples/finetune.py),
then assembly into the Hub repo layout (float16 safetensors, adapters under ``adapters/<task>/``, a model card from
``hub_cards/encoder_card.md`` with the held-out metrics and the exact commands) and the expected outputs on a few
real records that tests/test_bundled_checkpoints.py checks.

    python examples/build_bundled_checkpoints.py --data-dir ../shared/data            # everything (~30 min on 2 cores)
    python examples/build_bundled_checkpoints.py --assemble-only                     # re-assemble from runs/bundled
"""

from __future__ import annotations

import argparse
import json
import shlex
import string
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = ("ptbxl-super", "cpsc2018", "cinc2017")
SEED = 0

#: repo id -> (encoder preset, description, CETP epochs, epochs per task)
ENCODERS = {
    "tac-ecg/xresnet1d101-cetp": ("xresnet1d101", "XResNet1d-101 (TAC-ECG's encoder)", 10, {"ptbxl-super": 5, "cpsc2018": 30, "cinc2017": 20}),
    "tac-ecg/resnet-cetp": ("resnet1d18-small", "ResNet18-1d (width 32)", 15, {"ptbxl-super": 15, "cpsc2018": 40, "cinc2017": 30}),
}
#: real records whose outputs are stored as expected values (relative to the data root)
EXAMPLE_RECORDS = {"cpsc2018": ["cpsc2018/A0001.hea", "cpsc2018/A0002.hea"], "cinc2017": ["cinc2017/A00001.hea", "cinc2017/A00005.hea"]}


def run(cmd: list[str], log: Path) -> None:
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}); see {log}")


def commands_for(repo_id: str, data_dir: str, runs: Path, quick: bool) -> list[list[str]]:
    preset, _, cetp_epochs, task_epochs = ENCODERS[repo_id]
    name = repo_id.split("/")[-1]
    limit = ["--max-records", "64"] if quick else []
    cmds = [
        [
            "python", "examples/pretrain_cetp.py", "--data-dir", f"{data_dir}/ptbxl", "--encoder", preset,
            "--epochs", "1" if quick else str(cetp_epochs), "--batch-size", "64", "--lr", "1e-3", "--seed", str(SEED),
            "--output-dir", str(runs / name / "cetp"), *limit,
        ]
    ]
    for task in TASKS:
        cmds.append(
            [
                "python", "examples/finetune.py", "--task", task, "--method", "lrc", "--base", str(runs / name / "cetp" / "encoder"),
                "--data-dir", data_dir, "--epochs", "1" if quick else str(task_epochs[task]), "--rank", "8",
                "--seed", str(SEED), "--output-dir", str(runs / name / task), *limit,
            ]
        )
    return cmds


def assemble(repo_id: str, runs: Path, root: Path, data_dir: str, commands: list[list[str]]) -> dict:
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModel

    import tac_ecg_hf  # noqa: F401  (registers the encoders)

    name = repo_id.split("/")[-1]
    target = root / repo_id
    if target.exists():
        import shutil

        shutil.rmtree(target)
    target.mkdir(parents=True)
    encoder = AutoModel.from_pretrained(runs / name / "cetp" / "encoder", dtype=torch.float32)
    encoder.to(torch.float16).save_pretrained(target)
    metrics = {}
    for task in TASKS:
        src = runs / name / task / "adapters" / task
        dst = target / "adapters" / task
        dst.mkdir(parents=True)
        weights = {k: v.to(torch.float16).contiguous() for k, v in load_file(src / "adapter_model.safetensors").items()}
        save_file(weights, dst / "adapter_model.safetensors", metadata={"format": "pt"})
        config = json.loads((src / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = repo_id
        (dst / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    # the card reports what `tac-ecg evaluate` recomputes from the bundled (float16) files, not the float32 run
    from tac_ecg_hf.evaluation import evaluate_bundled

    for task in TASKS:
        dst = target / "adapters" / task
        config = json.loads((dst / "adapter_config.json").read_text())
        bundled = evaluate_bundled(str(target), task, data_dir=data_dir, split="test")
        training = config.get("metrics") or {}
        config["metrics"] = {
            "test_macro_auc": round(bundled["macro_auc"], 6),
            "test_macro_f1": round(bundled["macro_f1"], 6),
            "test_accuracy": round(bundled["accuracy"], 6),
            "test_num_samples": bundled["n"],
            "trainable_params": training.get("trainable_params"),
            "total_params": training.get("total_params"),
            "seed": training.get("seed"),
            "command": training.get("command"),
            "float32_training_run": {k: v for k, v in training.items() if k.startswith("test_")},
        }
        (dst / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        metrics[task] = config["metrics"]
    cetp_metrics = json.loads((runs / name / "cetp" / "cetp_metrics.json").read_text())
    card = render_card(repo_id, encoder, metrics, commands, cetp_metrics, runs / name)
    (target / "README.md").write_text(card)
    return metrics


def render_card(repo_id, encoder, metrics, commands, cetp_metrics, run_dir) -> str:
    from tac_ecg_hf.tasks import get_task

    preset, desc, _, _ = ENCODERS[repo_id]
    cetp_config = json.loads((run_dir / "cetp" / "cetp" / "config.json").read_text())
    rows = ["| task | labels | test n | macro-AUC | macro-F1 | accuracy | adapter params (% of encoder) |", "|---|---|---|---|---|---|---|"]
    index = []
    for task, m in metrics.items():
        spec = get_task(task)
        ratio = 100.0 * m.get("trainable_params", 0) / max(1, m.get("total_params", 1) - m.get("trainable_params", 0))
        rows.append(
            f"| `{task}` | {', '.join(spec.labels)} | {int(m.get('test_num_samples', 0))} | {m.get('test_macro_auc', float('nan')):.3f} "
            f"| {m.get('test_macro_f1', float('nan')):.3f} | {m.get('test_accuracy', float('nan')):.3f} "
            f"| {m.get('trainable_params', 0):,} ({ratio:.1f}%) |"
        )
        index.append(
            f"  - name: {repo_id.split('/')[-1]}-{task}\n    results:\n      - task: {{type: ecg-classification, name: {task}}}\n"
            f"        dataset: {{name: {task}, type: {task}, split: test}}\n        metrics:\n"
            f"          - {{type: roc_auc, name: macro-AUC, value: {m.get('test_macro_auc', 0):.4f}}}\n"
            f"          - {{type: f1, name: macro-F1, value: {m.get('test_macro_f1', 0):.4f}}}"
        )
    template = string.Template((Path(__file__).resolve().parents[1] / "hub_cards" / "encoder_card.md").read_text())
    config = encoder.config
    return template.substitute(
        repo_id=repo_id,
        model_index="\n".join(index),
        encoder_desc=desc,
        model_type=f"{config.model_type}, preset {preset}",
        encoder_params=f"{sum(p.numel() for p in encoder.parameters()):,}",
        leads=", ".join(config.lead_names),
        num_samples=config.num_samples,
        sampling_rate=config.sampling_rate,
        projection_dim=cetp_config.get("projection_dim"),
        adapter_list=", ".join(f"`{t}`" for t in metrics),
        metrics_table="\n".join(rows),
        data_note=(
            f"CETP pre-training: final training contrastive loss {cetp_metrics.get('train_loss', float('nan')):.3f}, "
            f"validation loss {cetp_metrics.get('eval_loss', float('nan')):.3f} (chance level ln(64) = 4.159 per batch of 64)."
        ),
        cetp_train_pairs="1,198",
        seed=SEED,
        commands="\n".join(" ".join(shlex.quote(c) for c in cmd) for cmd in commands),
    )


def expected_outputs(root: Path, data_dir: str) -> dict:
    from tac_ecg_hf.inference import ECGTaskClassifier

    out = {}
    for repo_id in ENCODERS:
        clf = ECGTaskClassifier.from_pretrained(root / repo_id)
        for task, records in EXAMPLE_RECORDS.items():
            for rel in records:
                pred = clf.predict(str(Path(data_dir) / rel), task=task)
                out.setdefault(repo_id, {}).setdefault(task, {})[rel] = [round(float(p), 6) for p in pred.probabilities]
    return out


def _step_done(cmd: list[str]) -> bool:
    out = REPO / cmd[cmd.index("--output-dir") + 1]
    if "pretrain_cetp.py" in cmd[1]:
        return (out / "encoder" / "model.safetensors").is_file() and (out / "cetp_metrics.json").is_file()
    task = cmd[cmd.index("--task") + 1]
    return (out / "adapters" / task / "adapter_model.safetensors").is_file()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--runs", default="runs/bundled")
    p.add_argument("--root", default=str(REPO / "tac_ecg_hf" / "checkpoints"), help="where the Hub-layout folders go")
    p.add_argument("--encoders", nargs="*", default=list(ENCODERS))
    p.add_argument("--assemble-only", action="store_true")
    p.add_argument("--resume", action="store_true", help="skip training steps whose outputs already exist")
    p.add_argument("--quick", action="store_true", help="tiny settings (smoke test); use with a temporary --root")
    p.add_argument("--expected", default=str(REPO / "tests" / "data" / "bundled_expected.json"))
    args = p.parse_args(argv)

    runs, root = Path(args.runs).resolve(), Path(args.root).resolve()
    for repo_id in args.encoders:
        cmds = commands_for(repo_id, args.data_dir, Path(args.runs), args.quick)
        if not args.assemble_only:
            for i, cmd in enumerate(cmds):
                if args.resume and _step_done(cmd):
                    print("done already:", " ".join(cmd[:4]), "...", flush=True)
                    continue
                run([sys.executable, *cmd[1:]], runs / repo_id.split("/")[-1] / f"log-{i}.txt")
        metrics = assemble(repo_id, runs, root, args.data_dir, cmds)
        print(repo_id, json.dumps({t: {k: v for k, v in m.items() if k in ("test_macro_auc", "test_macro_f1")} for t, m in metrics.items()}))
    if set(args.encoders) == set(ENCODERS):
        expected = {"data_dir_relative": True, "records": expected_outputs(root, args.data_dir)}
        Path(args.expected).parent.mkdir(parents=True, exist_ok=True)
        Path(args.expected).write_text(json.dumps(expected, indent=2))
        print(f"expected outputs written to {args.expected}")


if __name__ == "__main__":
    main()
