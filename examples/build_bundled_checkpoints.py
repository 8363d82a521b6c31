#!/usr/bin/env python
"""Rebuild the checkpoints bundled in ``tac_ecg_hf/checkpoints`` with the package's own Trainer scripts.

For each encoder:

1. CETP pre-training on every ECG-text pair at hand (examples/pretrain_cetp.py; training splits, best validation
   epoch, augmentation): the encoder at the root and the dual encoder in ``cetp/`` (zero-shot).
2. One LRC-Adapter per task (examples/finetune.py) on every record that carries the task's labels in the shared
   label space (PTB-XL, CPSC2018, CPSC-extra/Georgia/raw PTB-XL from PhysioNet 2020, LUDB, CinC 2017), per-class
   thresholds calibrated on validation records, the best validation epoch kept.
3. Estimates: stratified 5-fold cross-validation of the cpsc2018 and cinc2017 adapters (out-of-fold predictions pooled,
   each fold decided with its own calibrated thresholds), reported on the task's own database and on all sources;
   the chapman adapter also trained without LUDB and scored on all LUDB records (another hospital's rhythm labels).
4. Assembly into the Hub layout (float32 safetensors, no generated code), then every reported metric recomputed from
   the assembled files through the public predict path (``tac_ecg_hf.evaluation``), a model card per model, and the
   expected outputs on a few real records that tests/test_bundled_checkpoints.py checks.

    python examples/build_bundled_checkpoints.py --data-dir ../shared/data            # everything (~2 h on 2 cores)
    python examples/build_bundled_checkpoints.py --assemble-only                     # re-assemble from runs/bundled
    python examples/build_bundled_checkpoints.py --quick --root /tmp/bundled         # smoke test (minutes)
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = ("ptbxl-super", "cpsc2018", "cinc2017", "chapman")
SEED = 0
CV_FOLDS = 5
CV_EPOCHS = 25  # the estimates' adapters: fewer epochs than the shipped ones (the best validation epoch is kept)
#: the task's own database, on whose records its cross-validation estimate is reported first
CV_TASKS = {"cpsc2018": "cpsc2018", "cinc2017": "cinc2017"}
#: zero-shot prompts for ptbxl-super (English, as the SCP statement texts CETP was trained with)
ZERO_SHOT_PROMPTS = {
    "NORM": "normal ECG. sinus rhythm.",
    "MI": "myocardial infarction.",
    "STTC": "ST-T change. non-specific ST changes.",
    "CD": "conduction disturbance. bundle branch block.",
    "HYP": "left ventricular hypertrophy.",
}

#: repo id -> encoder preset, description, CETP epochs, epochs per task
ENCODERS = {
    "tac-ecg/xresnet1d101-cetp": {
        "preset": "xresnet1d101",
        "description": "XResNet1d-101 (TAC-ECG's encoder)",
        "cetp_epochs": 40,
        "task_epochs": {"ptbxl-super": 30, "cpsc2018": 40, "cinc2017": 40, "chapman": 40},
    },
    "tac-ecg/resnet-cetp": {
        "preset": "resnet1d18-small",
        "description": "ResNet18-1d (width 32)",
        "cetp_epochs": 40,
        "task_epochs": {"ptbxl-super": 30, "cpsc2018": 40, "cinc2017": 40, "chapman": 40},
    },
}
#: real records whose outputs are stored as expected values (relative to the data root)
EXAMPLE_RECORDS = {
    "cpsc2018": ["cpsc2018/A0001.hea", "cpsc2018/A0002.hea"],
    "cinc2017": ["cinc2017/A00001.hea", "cinc2017/A00005.hea"],
    "ptbxl-super": ["cinc2020/HR00001.hea"],
    "chapman": ["ludb/data/1.hea"],
}


def run(cmd: list[str], log: Path) -> None:
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, *cmd[1:]], cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}); see {log}")
    print(f"  done in {time.time() - start:.0f} s", flush=True)


def common(quick: bool, data_dir: str, cache: Path) -> list[str]:
    limit = ["--max_records", "40"] if quick else []
    return [
        "--data_dir",
        data_dir,
        "--cache_dir",
        str(cache),
        "--seed",
        str(SEED),
        "--bf16",
        "--disable_tqdm",
        "true",
        "--save_total_limit",
        "1",
        *limit,
    ]


def cetp_command(spec: dict, out: Path, data_dir: str, cache: Path, quick: bool) -> list[str]:
    return [
        "python",
        "examples/pretrain_cetp.py",
        "--encoder",
        spec["preset"],
        "--output_dir",
        str(out),
        "--num_train_epochs",
        "1" if quick else str(spec["cetp_epochs"]),
        "--per_device_train_batch_size",
        "128",
        "--learning_rate",
        "1e-3",
        "--warmup_steps",
        "0.05",
        "--augment",
        "--text_source",
        "both",
        "--load_best_model_at_end",
        "--metric_for_best_model",
        "eval_loss",
        "--greater_is_better",
        "false",
        *common(quick, data_dir, cache),
    ]


def task_command(
    task: str,
    base: Path,
    out: Path,
    epochs: int,
    data_dir: str,
    cache: Path,
    quick: bool,
    extra: list[str] | None = None,
) -> list[str]:
    return [
        "python",
        "examples/finetune.py",
        "--task",
        task,
        "--method",
        "lrc",
        "--base_model",
        str(base),
        "--output_dir",
        str(out),
        "--num_train_epochs",
        "1" if quick else str(epochs),
        "--per_device_train_batch_size",
        "64",
        "--warmup_steps",
        "0.05",
        "--load_best_model_at_end",
        "--metric_for_best_model",
        "eval_macro_auc",
        *common(quick, data_dir, cache),
        *(extra or []),
    ]


def commands_for(repo_id: str, runs: Path, data_dir: str, quick: bool) -> dict[str, list[str]]:
    spec = ENCODERS[repo_id]
    name = repo_id.split("/")[-1]
    cache = runs / "datasets-cache"
    cetp = runs / name / "cetp"
    cmds = {"cetp": cetp_command(spec, cetp, data_dir, cache, quick)}
    for task in TASKS:
        cmds[task] = task_command(task, cetp, runs / name / task, spec["task_epochs"][task], data_dir, cache, quick)
    for task in CV_TASKS:
        for fold in range(CV_FOLDS):
            cmds[f"cv-{task}-{fold}"] = task_command(
                task,
                cetp,
                runs / name / f"cv-{task}-{fold}",
                CV_EPOCHS,
                data_dir,
                cache,
                quick,
                ["--cv_folds", str(CV_FOLDS), "--cv_fold", str(fold)],
            )
    cmds["chapman-without-ludb"] = task_command(
        "chapman",
        cetp,
        runs / name / "chapman-without-ludb",
        spec["task_epochs"]["chapman"],
        data_dir,
        cache,
        quick,
        ["--sources", "ptbxl,physionet2020"],
    )
    return cmds


def _claim(cmd: list[str]) -> bool:
    """Mark a step as taken (a file created exclusively in its output folder); False if another process has it."""
    import os

    out = REPO / cmd[cmd.index("--output_dir") + 1]
    out.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(out / f".claimed-{os.getpid()}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    others = [p for p in out.glob(".claimed-*") if p.name != f".claimed-{os.getpid()}"]
    if any(_alive(int(p.name.rsplit("-", 1)[1])) for p in others):
        (out / f".claimed-{os.getpid()}").unlink()
        return False
    return True


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _done(cmd: list[str]) -> bool:
    out = REPO / cmd[cmd.index("--output_dir") + 1]
    return (out / ("cetp_metrics.json" if "pretrain_cetp.py" in cmd[1] else "result.json")).is_file()


# ------------------------------------------------------------------------------------------------------------------
# assembly


def _fmt_ci(metrics: dict, key: str) -> str:
    value, ci = metrics.get(key), metrics.get(f"{key}_ci95") or [None, None]
    if value is None:
        return "n/a"
    low, high = ci
    return f"{value:.3f} ({low:.3f}-{high:.3f})" if low is not None and high is not None else f"{value:.3f}"


def _row(label: str, metrics: dict, multi: bool) -> str:
    empty = f"{100 * metrics['empty_decision_rate']:.0f}%" if multi and "empty_decision_rate" in metrics else "-"
    return (
        f"| {label} | {metrics.get('n', 0)} | {_fmt_ci(metrics, 'macro_auc')} | {_fmt_ci(metrics, 'macro_f1')} | "
        f"{metrics.get('accuracy', float('nan')):.3f} | {empty} |"
    )


def task_details(
    task: str, held_out: dict, cv: dict | None, extra_rows: list[tuple[str, dict]], thresholds, sources
) -> str:
    from tac_ecg_hf.tasks import get_task

    spec = get_task(task)
    lines = [
        "| evaluation | n | macro-AUC (95% CI) | macro-F1 (95% CI) | accuracy | records with no label decided |",
        "|---|---|---|---|---|---|",
        _row(
            "held-out test split of every source (never seen in CETP or adapter training)", held_out, spec.multi_label
        ),
    ]
    for label, metrics in ([] if cv is None else list(cv.items())) + extra_rows:
        lines.append(_row(label, metrics, spec.multi_label))
    lines.append("")
    lines.append(
        f"Trained on the training-split records of every source that carry {task} labels in the package's label "
        "space (`tac_ecg_hf/data/label_map.csv`); the test split of every source was held out (its records per "
        f"source: {', '.join(f'{k} {v}' for k, v in sources.items())}). Metrics come from the public predict path "
        "(all windows of a record averaged) on the files of this repository; CIs are percentile bootstraps over "
        "records."
    )
    if spec.multi_label and thresholds:
        lines.append("")
        lines.append(
            "Calibrated per-class decision thresholds (F1-optimal on validation records), used by `predict`, "
            "the CLI and the pipeline: "
            + ", ".join(f"{label} {t:.3f}" for label, t in zip(spec.labels, thresholds))
            + "."
        )
    if spec.exhaustive:
        lines.append("")
        lines.append(
            f"Every {task} record has at least one of these classes, so a prediction never decides nothing: "
            "when no class reaches its threshold the most probable one is decided, with a note."
        )
    if task == "chapman":
        lines.append("")
        lines.append(
            "No Chapman-Shaoxing signals were available: this adapter is trained on other sources' rhythm "
            "labels mapped to Chapman's four groups (SB; AFIB = AF + AFL; GSVT = SVT, AT, AVNRT, AVRT, SAAWR, "
            "ST; SR = SR + SI). It has not been evaluated on Chapman-Shaoxing recordings."
        )
    if task == "cinc2017":
        lines.append("")
        lines.append(
            "Reads lead I only (the 12-lead encoder's other leads are zero). The Noisy class (~) has "
            "examples in CinC 2017 only."
        )
    return "\n".join(lines)


def assemble(repo_id: str, runs: Path, root: Path, data_dir: str, cmds: dict[str, list[str]], quick: bool) -> dict:
    from tac_ecg_hf.evaluation import evaluate_split, pooled_metrics, read_predictions
    from tac_ecg_hf.hub import write_card_metadata, write_model_card
    from tac_ecg_hf.jsonutil import dump_json

    name = repo_id.split("/")[-1]
    target = root / repo_id
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    cetp = runs / name / "cetp"
    for file in ("config.json", "model.safetensors", "preprocessor_config.json"):
        shutil.copy2(cetp / file, target / file)
    shutil.copytree(cetp / "cetp", target / "cetp", ignore=shutil.ignore_patterns("*.py", "README.md"))
    cetp_metrics = json.loads((cetp / "cetp_metrics.json").read_text())
    for task in TASKS:
        shutil.copytree(runs / name / task / task, target / task, ignore=shutil.ignore_patterns("*.py", "README.md"))
    summary = {}
    for task in TASKS:
        result = json.loads((runs / name / task / "result.json").read_text())
        held_out = evaluate_split(str(target), task, data_dir, split="test")  # recomputed from the bundled files
        cv, extra = None, []
        if task in CV_TASKS:
            rows = read_predictions(runs / name / f"cv-{task}-{f}" / "test_predictions.jsonl" for f in range(CV_FOLDS))
            cv = {
                f"{CV_FOLDS}-fold CV, {CV_TASKS[task]} records (out-of-fold)": pooled_metrics(
                    rows, task, [CV_TASKS[task]]
                ),
                f"{CV_FOLDS}-fold CV, all sources (out-of-fold)": pooled_metrics(rows, task),
            }
        if task == "chapman":
            extra.append(
                (
                    "trained without LUDB, scored on every LUDB record (another hospital)",
                    evaluate_split(
                        str(runs / name / "chapman-without-ludb"), task, data_dir, split=None, sources=["ludb"]
                    ),
                )
            )
        sources = held_out.get("sources", {})
        details = task_details(task, held_out, cv, extra, result.get("thresholds"), sources)
        config = json.loads((target / task / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = repo_id
        config["metrics"] = {
            "test": held_out,
            "cv": cv,
            "extra": dict(extra) or None,
            "seed": SEED,
            "command": " ".join(shlex.quote(c) for c in cmds[task]),
            "trainable_params": result.get("trainable_params"),
            "total_params": result.get("total_params"),
        }
        dump_json(config, target / task / "adapter_config.json")
        (target / task / "card_metadata.json").unlink(missing_ok=True)
        headline = ("macro_auc", "macro_f1", "accuracy", "empty_decision_rate", "n")
        write_card_metadata(
            target / task,
            task=task,
            method="lrc",
            metrics={k: held_out[k] for k in headline if k in held_out},
            split="test",
            command=config["metrics"]["command"],
            seed=SEED,
            base_model=repo_id,
            details=details,
        )
        summary[task] = {
            "test": {k: held_out.get(k) for k in ("n", "macro_auc", "macro_f1", "empty_decision_rate")},
            "cv": {
                k: {m: v.get(m) for m in ("n", "macro_auc", "macro_f1", "empty_decision_rate")}
                for k, v in (cv or {}).items()
            },
        }
    zero_shot = zero_shot_metrics(target, data_dir)
    write_card_metadata(
        target / "cetp",
        method="cetp",
        seed=SEED,
        command=" ".join(shlex.quote(c) for c in cmds["cetp"]),
        details=(
            f"CETP on {cetp_metrics.get('train_pairs')} training ECG-text pairs "
            f"({cetp_metrics.get('validation_pairs')} for model selection; best validation contrastive loss "
            f"{cetp_metrics.get('eval_loss', float('nan')):.3f}). "
            f"Zero-shot ptbxl-super on the held-out test fold (n={zero_shot['n']}): macro-AUC "
            f"{_fmt_ci(zero_shot, 'macro_auc')} with the prompts {json.dumps(ZERO_SHOT_PROMPTS)}."
        ),
    )
    write_card_metadata(target, base_model=None, license="cc-by-4.0")
    write_model_card(target, repo_id)
    for leftover in target.rglob("*.py"):
        leftover.unlink()
    summary["zero-shot"] = {k: zero_shot.get(k) for k in ("n", "macro_auc")}
    return summary


def zero_shot_metrics(repo: Path, data_dir: str) -> dict:
    """Zero-shot ptbxl-super macro-AUC of the bundled dual encoder on the held-out PTB-XL test fold."""
    from tac_ecg_hf.evaluation import zero_shot_metrics as evaluate_zero_shot

    return evaluate_zero_shot(repo, "ptbxl-super", data_dir, ZERO_SHOT_PROMPTS, database="ptbxl", split="test")


def expected_outputs(root: Path, data_dir: str) -> dict:
    from tac_ecg_hf.inference import ECGTaskClassifier

    out = {}
    for repo_id in ENCODERS:
        clf = ECGTaskClassifier.from_pretrained(root / repo_id)
        for task, records in EXAMPLE_RECORDS.items():
            for rel in records:
                pred = clf.predict(str(Path(data_dir) / rel), task=task)
                out.setdefault(repo_id, {}).setdefault(task, {})[rel] = [
                    round(float(p), 6) for p in pred.probabilities
                ]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--runs", default="runs/bundled")
    p.add_argument("--root", default=str(REPO / "tac_ecg_hf" / "checkpoints"), help="where the Hub-layout folders go")
    p.add_argument("--encoders", nargs="*", default=list(ENCODERS))
    p.add_argument("--assemble-only", action="store_true")
    p.add_argument("--expected-only", action="store_true", help="only rewrite the bundled models' expected outputs")
    p.add_argument("--resume", action="store_true", help="skip training steps whose outputs already exist")
    p.add_argument("--reverse", action="store_true", help="run the steps last first (a second process on a free core)")
    p.add_argument("--quick", action="store_true", help="tiny settings (smoke test); use with a temporary --root")
    p.add_argument("--expected", default=str(REPO / "tests" / "data" / "bundled_expected.json"))
    args = p.parse_args(argv)

    from tac_ecg_hf.jsonutil import dump_json

    # the commands (recorded in the cards) keep the paths as given, relative to the repository; this process uses
    # them resolved
    runs, root = (REPO / args.runs).resolve(), Path(args.root).resolve()
    data_dir = str((REPO / args.data_dir).resolve())
    for repo_id in [] if args.expected_only else args.encoders:
        cmds = commands_for(repo_id, Path(args.runs), args.data_dir, args.quick)
        if not args.assemble_only:
            steps = list(cmds.items())
            for step, cmd in reversed(steps) if args.reverse else steps:
                if args.resume and _done(cmd):
                    print(f"done already: {step}", flush=True)
                    continue
                if not _claim(cmd):  # another build process (--reverse, to share the cores) runs this step
                    print(f"run by another process: {step}", flush=True)
                    continue
                run(cmd, runs / repo_id.split("/")[-1] / "logs" / f"{step}.txt")
            if not all(_done(cmd) for cmd in cmds.values()):
                print(f"{repo_id}: steps still running elsewhere; assemble later with --assemble-only", flush=True)
                continue
        summary = assemble(repo_id, runs, root, data_dir, cmds, args.quick)
        print(repo_id, json.dumps(summary, indent=2, default=str), flush=True)
        dump_json(summary, runs / repo_id.split("/")[-1] / "summary.json")
    if set(args.encoders) == set(ENCODERS):
        expected = {"data_dir_relative": True, "records": expected_outputs(root, data_dir)}
        dump_json(expected, args.expected)
        print(f"expected outputs written to {args.expected}")


if __name__ == "__main__":
    main()
