#!/usr/bin/env python
"""Quality of TAC-ECG on the real data: CETP pre-training, then the LRC-Adapter against its baselines.

1. CETP (contrastive ECG-text pre-training) on PTB-XL (ECG, free-text report) pairs of the training folds 1-8
   (validation fold 9 for the loss curve only; test fold 10 never seen), frozen MiniLM text tower.
2. Zero-shot macro-AUC on the PTB-XL superclasses (test fold) from text prompts: the English label descriptions,
   several English prompts, German prompts in the wording of the (mostly German) reports, and both.
3. For each task (``ptbxl-super``, ``cpsc2018``, ``cinc2017``), each seed and each method, fine-tuning on the same
   CETP encoder with the same preprocessing (12 leads, 100 Hz, 10 s, z-scored): ``lrc`` (serial LRC-Adapter,
   TAC-ECG), ``lrc-parallel`` (mergeable low-rank conv), ``lora`` (PEFT LoRA on the Conv1d layers), ``linear``
   (probe), ``full`` (full fine-tuning), ``scratch`` (random init). Test-split macro-AUC / macro-F1 (mean and
   sample std over seeds), trainable parameters, and parameters stored for k = 1..4 tasks (shared frozen encoder +
   k adapters and heads) relative to k fully fine-tuned copies.

Outputs in ``--out``: ``quality.json`` (every run's metrics, the summaries, the settings and the machine),
``quality.md`` (the tables, also printed), ``roc_lrc_ptbxl-super.png`` (ROC per class, LRC-Adapter, seed 0),
``param_efficiency_<task>.png`` (macro-AUC against trainable parameters, error bars = std over seeds).

    python benchmarks/bench_quality.py                               # default: resnet1d18-small, 3 seeds (about 25 min on 2 cores)
    python benchmarks/bench_quality.py --encoder xresnet1d101        # TAC-ECG's encoder (about 4x slower)
    python benchmarks/bench_quality.py --quick --out /tmp/quality    # smoke test (tiny encoder, 64 records, < 60 s)

The data root (``--data-dir``, default ``$TAC_ECG_DATA`` or ``../shared/data``) holds ``ptbxl/`` (database CSV +
``.npz`` or WFDB records), ``cpsc2018/`` and ``cinc2017/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TASK_ORDER = ("ptbxl-super", "cpsc2018", "cinc2017")
METHOD_ORDER = ("lrc", "lrc-parallel", "lora", "linear", "full", "scratch")
METHOD_LABELS = {
    "lrc": "LRC-Adapter (serial, TAC-ECG)",
    "lrc-parallel": "LRC parallel (mergeable)",
    "lora": "PEFT LoRA (Conv1d)",
    "linear": "linear probe",
    "full": "full fine-tuning",
    "scratch": "from scratch",
}
METHOD_GROUPS = {
    "lrc": "TAC-ECG",
    "lrc-parallel": "low-rank conv baselines",
    "lora": "low-rank conv baselines",
    "linear": "linear probe",
    "full": "all parameters",
    "scratch": "all parameters",
}

#: default fine-tuning epochs per task (the bundled-checkpoint recipe's; resnet1d18-small: about 30 min in all on 2 cores)
DEFAULT_EPOCHS = {"ptbxl-super": 20, "cpsc2018": 40, "cinc2017": 30}
DEFAULT_CETP_EPOCHS = 20

#: zero-shot prompt sets for the PTB-XL superclasses. "de" follows the wording of the (mostly German, lower-case)
#: PTB-XL reports of the training folds ("sinusrhythmus normales ekg", "inferiorer infarkt wahrscheinlich alt",
#: "st & t abnorm", "rechtsschenkelblock", "linkshypertrophie"); the prompts were fixed before looking at any
#: test-fold result, and every set is reported (none is picked by its test score).
PTBXL_PROMPTS_EN = {
    "NORM": ["normal ECG", "sinus rhythm. normal ECG.", "normal electrocardiogram, no pathology"],
    "MI": ["myocardial infarction", "old inferior myocardial infarction", "anterior myocardial infarction", "Q waves of old infarction"],
    "STTC": ["ST/T change", "non-specific ST depression", "ST segments are depressed, T waves are abnormal", "ischemic ST-T changes"],
    "CD": ["conduction disturbance", "right bundle branch block", "left bundle branch block", "left anterior fascicular block", "first degree AV block"],
    "HYP": ["hypertrophy", "left ventricular hypertrophy", "voltage criteria for left ventricular hypertrophy"],
}
PTBXL_PROMPTS_DE = {
    "NORM": ["normales ekg", "sinusrhythmus normales ekg", "sinusrhythmus lagetyp normal normales ekg"],
    "MI": ["myokardinfarkt", "infarkt", "inferiorer infarkt wahrscheinlich alt", "anteroseptaler infarkt", "qrs(t) abnorm infarkt"],
    "STTC": ["st-t veränderung", "st & t abnorm", "st senkung ischämie", "t abnorm in ableitungen", "linksbelastung oder ischämie"],
    "CD": ["leitungsstörung", "schenkelblock", "rechtsschenkelblock", "linksschenkelblock", "av block i. grades", "linksanteriorer hemiblock"],
    "HYP": ["hypertrophie", "linkshypertrophie", "linksherzhypertrophie", "linksventrikuläre hypertrophie"],
}

#: the prompt set drawn as the zero-shot reference line (fixed beforehand, not chosen by its test score)
ZERO_SHOT_HEADLINE = "en+de"

#: --quick: tiny encoder, 64 records per split, 1 epoch, 1 seed, 3 methods, PTB-XL + CinC 2017
QUICK = dict(encoder="resnet1d-tiny", max_records=64, cetp_epochs=1, epochs={"ptbxl-super": 1, "cpsc2018": 1, "cinc2017": 1},
             seeds=[0], methods=["lrc", "linear", "full"], tasks=["ptbxl-super", "cinc2017"], batch_size=32)


# ------------------------------------------------------------------------------------------------ helpers


def default_data_root() -> Path:
    return Path(os.environ.get("TAC_ECG_DATA", REPO.parent / "shared" / "data")).expanduser()


def quiet_libraries() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except Exception:  # pragma: no cover
        pass
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def parse_epochs(values: list[str] | None, base: dict) -> dict:
    """``["ptbxl-super=10", "cinc2017=5"]`` or ``["8"]`` (all tasks) -> {task: epochs}."""
    out = dict(base)
    for item in values or []:
        if "=" in item:
            task, value = item.split("=", 1)
            out[task.strip()] = float(value)
        else:
            out = {task: float(item) for task in out}
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return math.nan, math.nan
    if len(vals) == 1:
        return vals[0], math.nan
    return statistics.fmean(vals), statistics.stdev(vals)


def fmt_ms(mean: float, std: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "n/a"
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


_CONSOLE = sys.stdout
#: Trainer's own printed logs go here (``<out>/quality_trainer.log``) instead of the console
_TRAINER_LOG: list = [None]


def trainer_log_history(start: int | None) -> list[dict]:
    """Per-epoch ``loss`` / ``eval_loss`` that Trainer printed into the trainer log since offset ``start``."""
    import ast

    fh = _TRAINER_LOG[0]
    if fh is None or start is None:
        return []
    fh.flush()
    history: dict = {}
    with open(fh.name) as f:
        f.seek(start)
        for line in f:
            try:
                entry = ast.literal_eval(line.strip()) if line.startswith("{") else None
            except (ValueError, SyntaxError):
                continue
            if isinstance(entry, dict) and "train_runtime" in entry:
                break  # end of training; what follows is the final evaluation of the kept model
            if not isinstance(entry, dict) or "epoch" not in entry:
                continue
            epoch = round(float(entry["epoch"]), 3)
            for key in ("loss", "eval_loss"):
                if key in entry:
                    history.setdefault(epoch, {"epoch": epoch})[key] = float(entry[key])
    return list(history.values())


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=_CONSOLE, flush=True)


def trainer_output():
    """Redirect stdout (Trainer's PrinterCallback) to the trainer log while a stage trains."""
    fh = _TRAINER_LOG[0]
    return contextlib.redirect_stdout(fh) if fh is not None else contextlib.nullcontext()


def count_module_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------ stages


def stage_cetp(args, ptbxl_dir: Path, array_file: str | None, work: Path, encoder_preset: str, overrides: dict) -> dict:
    from tac_ecg_hf.data import load_cetp_pairs
    from tac_ecg_hf.training import pretrain_cetp

    config = {"array_file": array_file} if array_file else {}
    if args.max_records:
        config["max_records"] = args.max_records
    pairs = load_cetp_pairs(str(ptbxl_dir), text_source=args.text_source, **config)
    # test fold 10 stays out of pre-training (pretrain_cetp trains on "train", evaluates its loss on "validation")
    pairs = {k: v for k, v in pairs.items() if k in ("train", "validation")}
    sizes = {k: len(v) for k, v in pairs.items()}
    log(f"CETP: {sizes} (ECG, {args.text_source}) pairs, encoder {args.encoder}, {args.cetp_epochs:g} epochs")
    t0 = time.perf_counter()
    import datasets

    # CETP overfits 1,198 pairs within a few epochs (validation loss rises again after ~3-5 epochs): keep the epoch
    # with the lowest validation-fold loss (Trainer's load_best_model_at_end); the test fold plays no part in it
    select = {"eval_strategy": "no"}
    if "validation" in pairs and args.cetp_select_best:
        select = dict(eval_strategy="epoch", save_strategy="epoch", save_total_limit=1, load_best_model_at_end=True,
                      metric_for_best_model="eval_loss", greater_is_better=False, save_only_model=True)
    log_start = _TRAINER_LOG[0].tell() if _TRAINER_LOG[0] is not None else None
    with trainer_output():
        _, metrics = pretrain_cetp(
            datasets.DatasetDict(pairs),
            work / "cetp_run",
            encoder=encoder_preset,
            encoder_overrides=overrides,
            epochs=args.cetp_epochs,
            batch_size=args.cetp_batch_size,
            learning_rate=args.cetp_lr,
            seed=0,
            disable_tqdm=True,
            logging_strategy="epoch",
            **select,
        )
    seconds = time.perf_counter() - t0
    history = trainer_log_history(log_start)
    best_epoch = None
    if select.get("load_best_model_at_end"):
        states = sorted((work / "cetp_run").glob("checkpoint-*/trainer_state.json"))
        best = json.loads(states[0].read_text()).get("best_model_checkpoint") if states else None
        steps_per_epoch = max(1, math.ceil(sizes["train"] / args.cetp_batch_size))
        best_epoch = int(best.rstrip("/").split("-")[-1]) // steps_per_epoch if best else None
    log(f"CETP done in {seconds:.0f} s: validation loss {metrics.get('eval_loss', math.nan):.3f}"
        + (f" (best epoch {best_epoch} of {args.cetp_epochs:g}, kept)" if best_epoch else ""))
    return {
        "selected_epoch": best_epoch,
        "selection": "lowest validation-fold (fold 9) loss" if best_epoch else "last epoch",
        "history": history,
        "pairs": sizes,
        "text_source": args.text_source,
        "epochs": args.cetp_epochs,
        "batch_size": args.cetp_batch_size,
        "learning_rate": args.cetp_lr,
        "text_model": "all-MiniLM-L6-v2 (frozen, pooled states cached)",
        "seconds": seconds,
        "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
    }


def stage_zero_shot(cetp_dir: Path, dataset, split: str = "test") -> dict:
    """Zero-shot macro-AUC of the saved CETP model on a PTB-XL super split for every prompt set."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from tac_ecg_hf.metrics import classification_metrics
    from tac_ecg_hf.models.cetp import CETPModel
    from tac_ecg_hf.tasks import get_task

    spec = get_task("ptbxl-super")
    model = CETPModel.from_pretrained(cetp_dir, dtype=torch.float32)
    model.eval()  # zero_shot_scores does not switch modes itself: BatchNorm / dropout must be in eval mode
    tokenizer = AutoTokenizer.from_pretrained(cetp_dir)
    data = dataset[split].with_format("numpy", columns=["input_values", "labels"])
    x = torch.as_tensor(np.asarray(data["input_values"]), dtype=torch.float32)
    y = np.asarray(data["labels"])
    prompt_sets = {
        "en-labels": {c: [spec.label_descriptions[c]] for c in spec.labels},
        "en": PTBXL_PROMPTS_EN,
        "de": PTBXL_PROMPTS_DE,
        "en+de": {c: PTBXL_PROMPTS_EN[c] + PTBXL_PROMPTS_DE[c] for c in spec.labels},
    }
    out = {"task": "ptbxl-super", "split": split, "num_samples": int(len(y)), "prompt_sets": {}}
    for name, prompts in prompt_sets.items():
        # one call per prompt set (zero_shot_scores encodes the prompts on every call)
        scores = model.zero_shot_scores(x, prompts, tokenizer).numpy()
        # cosine scores are ranked per class (AUC); F1 of zero-shot scores would need a calibration, so none is given
        m = classification_metrics(scores, y, labels=list(spec.labels), multi_label=True, from_logits=True)
        out["prompt_sets"][name] = {
            "prompts": {c: list(prompts[c]) for c in spec.labels},
            "macro_auc": float(m["macro_auc"]),
            "auc": {c: float(m[f"auc/{c}"]) for c in spec.labels},
        }
        log(f"zero-shot ({name}): macro-AUC {m['macro_auc']:.3f}")
    return out


#: datasets loaded by this process (the main one or a pool worker), by task
_DATASETS: dict = {}


def _task_dataset(task: str, data_root: str, ds_config: dict):
    from tac_ecg_hf.evaluation import load_task_dataset

    if task not in _DATASETS:
        _DATASETS[task] = load_task_dataset(task, data_root, **ds_config)
    return _DATASETS[task]


def _worker_init(threads: int) -> None:
    quiet_libraries()
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


def run_one(spec: dict) -> dict:
    """One fine-tuning run (task, method, seed) -> its record. Runs in the main process or in a pool worker; Trainer's
    printed logs go to ``spec["log_file"]`` (or the main trainer log)."""
    from tac_ecg_hf.training import default_learning_rate, finetune

    task, method, seed = spec["task"], spec["method"], spec["seed"]
    dataset = _task_dataset(task, spec["data_root"], spec["ds_config"])
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if spec.get("log_file"):
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(spec["log_file"], "w"))))
        else:
            stack.enter_context(trainer_output())
        print(f"=== {task} {method} seed {seed}", flush=True)
        _, result = finetune(
            dataset,
            task,
            method,
            base=spec["base"] if method != "scratch" else None,
            output_dir=spec["output_dir"],
            seed=seed,
            epochs=spec["epochs"],
            learning_rate=spec["lr"],
            batch_size=spec["batch_size"],
            rank=spec["rank"],
            encoder=spec["encoder_preset"],
            encoder_overrides=spec["overrides"],
            save=False,
            eval_strategy="no",
            disable_tqdm=True,
            logging_strategy="epoch",
        )
    record = result.to_dict()
    record["wall_seconds"] = time.perf_counter() - t0
    record["epochs"] = spec["epochs"]
    record["learning_rate"] = spec["lr"] if spec["lr"] is not None else default_learning_rate(method)
    record["torch_threads"] = __import__("torch").get_num_threads()
    if spec.get("keep_scores"):
        record["test_scores"] = result.test_scores
        record["test_references"] = result.test_references
    return record


def stage_finetune(args, data_root: Path, ds_config: dict, base: Path, work: Path, encoder_preset: str, overrides: dict,
                   jobs: int, threads_per_job: int) -> list[dict]:
    """All (task, seed, method) runs, in this process (jobs = 1) or in a pool of ``jobs`` spawned processes with
    ``threads_per_job`` torch threads each (on a small shared machine two 1-thread processes keep both cores busy and
    suffer far less from other processes than one 2-thread process, whose OpenMP threads wait for each other)."""
    specs = []
    for task in args.tasks:
        seeds = args.seeds if task == "ptbxl-super" else (args.small_seeds or args.seeds)
        for seed in seeds:
            for method in args.methods:
                specs.append({
                    "task": task, "method": method, "seed": seed, "data_root": str(data_root), "ds_config": ds_config,
                    "base": str(base), "output_dir": str(work / "ft" / f"{task}-{method}-{seed}"), "epochs": args.epochs[task],
                    "lr": args.lr, "batch_size": args.batch_size, "rank": args.rank, "encoder_preset": encoder_preset,
                    "overrides": overrides, "keep_scores": method == "lrc" and seed == seeds[0],
                    "log_file": str(work / "logs" / f"{task}-{method}-{seed}.log") if jobs > 1 else None,
                })

    def report(record: dict, done: int) -> None:
        tm = record["test_metrics"]
        log(f"[{done}/{len(specs)}] {record['task']:11s} {record['method']:12s} seed {record['seed']}: test macro-AUC "
            f"{tm.get('test_macro_auc', math.nan):.3f} macro-F1 {tm.get('test_macro_f1', math.nan):.3f} "
            f"({record['wall_seconds']:.0f} s, {record['trainable_params']:,} trainable)")

    runs = []
    if jobs <= 1:
        for i, spec in enumerate(specs, 1):
            runs.append(run_one(spec))
            report(runs[-1], i)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        (work / "logs").mkdir(parents=True, exist_ok=True)
        log(f"fine-tuning {len(specs)} runs in {jobs} processes x {threads_per_job} torch thread(s)")
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                                 initargs=(threads_per_job,)) as pool:
            futures = [pool.submit(run_one, spec) for spec in specs]
            for i, future in enumerate(as_completed(futures), 1):
                runs.append(future.result())
                report(runs[-1], i)
        if _TRAINER_LOG[0] is not None:  # the workers' Trainer logs, in run order
            for spec in specs:
                _TRAINER_LOG[0].write(Path(spec["log_file"]).read_text())
            _TRAINER_LOG[0].flush()
    order = {(s["task"], s["seed"], s["method"]): i for i, s in enumerate(specs)}
    return sorted(runs, key=lambda r: order[(r["task"], r["seed"], r["method"])])


# ------------------------------------------------------------------------------------------------ summaries


def summarize_runs(runs: list[dict]) -> dict:
    summary: dict = {}
    for task in dict.fromkeys(r["task"] for r in runs):
        summary[task] = {}
        for method in dict.fromkeys(r["method"] for r in runs if r["task"] == task):
            rs = [r for r in runs if r["task"] == task and r["method"] == method]
            auc = mean_std([r["test_metrics"].get("test_macro_auc") for r in rs])
            f1 = mean_std([r["test_metrics"].get("test_macro_f1") for r in rs])
            acc = mean_std([r["test_metrics"].get("test_accuracy") for r in rs])
            vauc = mean_std([r["val_metrics"].get("val_macro_auc") for r in rs])
            summary[task][method] = {
                "n_seeds": len(rs),
                "seeds": [r["seed"] for r in rs],
                "test_macro_auc_mean": auc[0], "test_macro_auc_std": auc[1],
                "test_macro_f1_mean": f1[0], "test_macro_f1_std": f1[1],
                "test_accuracy_mean": acc[0], "test_accuracy_std": acc[1],
                "val_macro_auc_mean": vauc[0], "val_macro_auc_std": vauc[1],
                "trainable_params": rs[0]["trainable_params"],
                "total_params": rs[0]["total_params"],
                "trainable_pct": 100.0 * rs[0]["trainable_params"] / rs[0]["total_params"],
                "train_seconds_mean": statistics.fmean(r["train_seconds"] for r in rs),
                "test_num_samples": int(rs[0]["test_metrics"].get("test_num_samples", 0)) or None,
                "auc_num_skipped": rs[0]["test_metrics"].get("test_auc_num_skipped"),
            }
    for methods in summary.values():
        full = methods.get("full", methods.get("scratch"))
        for r in methods.values():
            r["trainable_pct_of_full"] = 100.0 * r["trainable_params"] / full["total_params"] if full else None
    return summary


def storage_table(summary: dict, encoder_params: int, ks=(1, 2, 3, 4)) -> dict:
    """Parameters stored for k tasks: adapter methods and the probe keep one frozen encoder + k (adapter, head);
    full fine-tuning / scratch keep k whole models. Relative to k fully fine-tuned copies of the same task."""
    out: dict = {"encoder_params": encoder_params, "k": list(ks), "per_task": {}}
    for task, methods in summary.items():
        full_total = methods.get("full", methods.get("scratch", {})).get("total_params")
        if full_total is None:  # no full model run: a full copy is the bare encoder + a linear head
            full_total = encoder_params + methods.get("linear", {}).get("trainable_params", 0)
        rows = {}
        for method, s in methods.items():
            shared, per_task = (0, s["total_params"]) if method in ("full", "scratch") else (encoder_params, s["trainable_params"])
            rows[method] = {
                "shared_params": shared,
                "per_task_params": per_task,
                "stored_params": {k: shared + k * per_task for k in ks},
                "stored_pct_of_full": {k: 100.0 * (shared + k * per_task) / (k * full_total) for k in ks},
            }
        out["per_task"][task] = {"full_model_params": full_total, "methods": rows}
    tasks = [t for t in TASK_ORDER if t in summary]
    if len(tasks) > 1:  # the benchmark's own tasks together, each with its own head size
        combined = {}
        full_sum = sum(out["per_task"][t]["full_model_params"] for t in tasks)
        for method in summary[tasks[0]]:
            if not all(method in summary[t] for t in tasks):
                continue
            stored = sum(out["per_task"][t]["methods"][method]["per_task_params"] for t in tasks)
            stored += 0 if method in ("full", "scratch") else encoder_params
            combined[method] = {"stored_params": stored, "stored_pct_of_full": 100.0 * stored / full_sum}
        out["combined"] = {"tasks": tasks, "full_models_params": full_sum, "methods": combined}
    return out


def markdown_report(data: dict) -> str:
    s = data["settings"]
    lines = [
        f"Encoder `{s['encoder']}` ({data['encoder_params']:,} parameters), "
        + (f"CETP run reused from `{data['cetp']['reused']}`; " if data["cetp"].get("reused") else
           f"CETP {s['cetp_epochs']:g} epochs"
           + (f" (kept: epoch {data['cetp']['selected_epoch']}, lowest validation-fold loss)" if data["cetp"].get("selected_epoch") else "")
           + f" on {data['cetp']['pairs'].get('train', 0)} PTB-XL training-fold (ECG, {s['text_source']}) pairs, frozen MiniLM text tower; ")
        + "fine-tuning epochs "
        f"{', '.join(f'{t} {e:g}' for t, e in s['epochs'].items() if t in s['tasks'])}; batch {s['batch_size']}, "
        f"rank {s['rank']}; {s['jobs']} fine-tuning process(es) x {s['threads_per_job']} torch thread(s); learning rate {s['lr'] if s['lr'] is not None else '3e-3 (adapters, probe), 1e-3 (full, scratch)'}; "
        f"seeds {s['seeds']}" + (f" (cpsc2018/cinc2017: {s['small_seeds']})" if s.get("small_seeds") else "") + ".",
        "",
    ]
    for task, methods in data["summary"].items():
        n_test = next(iter(methods.values())).get("test_num_samples")
        skipped = next(iter(methods.values())).get("auc_num_skipped")
        lines.append(f"### {task} (test n = {n_test}" + (f", {int(skipped)} class(es) without test positives left out of macro-AUC" if skipped else "") + ")")
        lines.append("")
        rows = []
        for method in [m for m in METHOD_ORDER if m in methods] + [m for m in methods if m not in METHOD_ORDER]:
            r = methods[method]
            rows.append([
                method,
                METHOD_LABELS.get(method, method),
                r["trainable_params"],
                f"{r['trainable_pct_of_full']:.2f}%" if r.get("trainable_pct_of_full") is not None else "n/a",
                fmt_ms(r["test_macro_auc_mean"], r["test_macro_auc_std"]),
                fmt_ms(r["test_macro_f1_mean"], r["test_macro_f1_std"]),
                fmt_ms(r["val_macro_auc_mean"], r["val_macro_auc_std"]),
                r["n_seeds"],
                round(r["train_seconds_mean"], 1),
            ])
        lines.append(common.markdown_table(
            ["method", "", "trainable params", "% of full model", "test macro-AUC", "test macro-F1", "val macro-AUC", "seeds", "train s/run"], rows))
        lines.append("")
    st = data["storage"]
    lines.append(f"### Stored parameters for k tasks, % of k fully fine-tuned models (shared frozen encoder: {st['encoder_params']:,})")
    lines.append("")
    shown = [t for t in st["per_task"] if t == "ptbxl-super"] or list(st["per_task"])[:1]  # the others are in the JSON
    for task in shown:
        block = st["per_task"][task]
        rows = []
        for method in [m for m in METHOD_ORDER if m in block["methods"]]:
            r = block["methods"][method]
            rows.append([method, r["per_task_params"]] + [f"{r['stored_pct_of_full'][k]:.1f}%" for k in st["k"]]
                        + [r["stored_params"][st["k"][-1]]])
        lines.append(f"{task} (one full model: {block['full_model_params']:,} parameters)")
        lines.append("")
        lines.append(common.markdown_table(["method", "params per task"] + [f"k={k}" for k in st["k"]] + [f"stored, k={st['k'][-1]}"], rows))
        lines.append("")
    if "combined" in st:
        c = st["combined"]
        rows = [[m, r["stored_params"], f"{r['stored_pct_of_full']:.1f}%"] for m, r in c["methods"].items()]
        lines.append(f"The {len(c['tasks'])} tasks together ({', '.join(c['tasks'])}; {len(c['tasks'])} full models: {c['full_models_params']:,} parameters)")
        lines.append("")
        lines.append(common.markdown_table(["method", "stored params", "% of full models"], rows))
        lines.append("")
    zs = data.get("zero_shot")
    if zs:
        lines.append(f"### Zero-shot (CETP, no labels): PTB-XL superclasses, {zs['split']} fold (n = {zs['num_samples']})")
        lines.append("")
        labels = list(next(iter(zs["prompt_sets"].values()))["auc"])
        rows = [[name, ps["macro_auc"]] + [ps["auc"][c] for c in labels] + [sum(len(v) for v in ps["prompts"].values())]
                for name, ps in zs["prompt_sets"].items()]
        lines.append(common.markdown_table(["prompt set", "macro-AUC"] + [f"AUC {c}" for c in labels] + ["prompts"],
                                           [[r[0]] + [f"{v:.3f}" for v in r[1:-1]] + [r[-1]] for r in rows]))
        lines.append("")
        lines.append("Prompts (a class's score is the cosine similarity to the mean of its prompts' embeddings; en+de = en and de together):")
        lines.append("")
        for name, ps in zs["prompt_sets"].items():
            if name == "en+de":
                continue
            lines.append(f"- **{name}**: " + "; ".join(f"{c}: " + " / ".join(f'"{p}"' for p in ps["prompts"][c]) for c in labels))
        lines.append("")
    return "\n".join(lines)


def make_plots(data: dict, out: Path) -> list[str]:
    from tac_ecg_hf.plotting import plot_param_efficiency, plot_roc_curves, save_figure
    from tac_ecg_hf.tasks import get_task

    plots = []
    roc = next((r for r in data["runs"] if r["task"] == "ptbxl-super" and r["method"] == "lrc" and "test_scores" in r), None)
    if roc is not None:
        spec = get_task("ptbxl-super")
        path = out / "roc_lrc_ptbxl-super.png"
        plot_roc_curves(roc["test_scores"], roc["test_references"], labels=list(spec.labels), multi_label=True, from_logits=True,
                        path=path, title=f"LRC-Adapter on ptbxl-super, test fold (seed {roc['seed']}, {data['settings']['encoder']})")
        plots.append(str(path))
    for task, methods in data["summary"].items():
        points = []
        for method in [m for m in METHOD_ORDER if m in methods]:
            r = methods[method]
            if math.isnan(r["test_macro_auc_mean"]):
                continue
            points.append({
                "name": method,
                "trainable_params": r["trainable_params"],
                "macro_auc": r["test_macro_auc_mean"],
                "macro_auc_std": None if math.isnan(r["test_macro_auc_std"]) else r["test_macro_auc_std"],
                "group": METHOD_GROUPS.get(method, ""),
            })
        if points:
            path = out / f"param_efficiency_{task}.png"
            n = max(r["n_seeds"] for r in methods.values())
            fig = plot_param_efficiency(points, title=f"{task}: test macro-AUC vs trainable parameters (mean ± std, {n} seed(s))",
                                        ylabel="test macro-AUC")
            ax = fig.axes[0]
            # labels right of their points; methods with the same parameter count and nearly the same AUC are stacked
            y0, y1 = ax.get_ylim()
            placed: list = []
            for ann in [t for t in ax.texts if hasattr(t, "xyann")]:
                x, y = (float(v) for v in ann.xy)
                clash = sum(1 for px, py in placed if abs(px - x) <= 1e-9 * max(1.0, x) and abs(py - y) < 0.03 * (y1 - y0))
                ann.xyann = (6, -3 - 11 * clash)
                placed.append((x, y))
            zs = data.get("zero_shot")
            if task == "ptbxl-super" and zs and ZERO_SHOT_HEADLINE in zs["prompt_sets"]:
                ax.axhline(zs["prompt_sets"][ZERO_SHOT_HEADLINE]["macro_auc"], color="0.4", linestyle="--", linewidth=1,
                           label=f"zero-shot CETP ({ZERO_SHOT_HEADLINE} prompts, nothing trained)")
                ax.legend(fontsize=8)
            save_figure(fig, path)
            plots.append(str(path))
    return plots


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=None, help="folder with ptbxl/, cpsc2018/, cinc2017/ (default $TAC_ECG_DATA or ../shared/data)")
    p.add_argument("--encoder", default=None, help="encoder preset (default resnet1d18-small; xresnet1d101 is ~4x slower)")
    p.add_argument("--encoder-overrides", default="{}", help="JSON dict of encoder config overrides")
    p.add_argument("--tasks", nargs="+", choices=TASK_ORDER, default=None)
    p.add_argument("--methods", nargs="+", choices=METHOD_ORDER, default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="fine-tuning seeds (default 0 1 2)")
    p.add_argument("--small-seeds", nargs="+", type=int, default=None, help="seeds for cpsc2018/cinc2017 (default: --seeds)")
    p.add_argument("--epochs", nargs="+", default=None,
                   help=f"fine-tuning epochs: one number for all tasks or task=N items (default {DEFAULT_EPOCHS})")
    p.add_argument("--cetp-epochs", type=float, default=None, help=f"CETP epochs (default {DEFAULT_CETP_EPOCHS})")
    p.add_argument("--cetp-batch-size", type=int, default=64)
    p.add_argument("--cetp-lr", type=float, default=1e-3)
    p.add_argument("--cetp-last-epoch", dest="cetp_select_best", action="store_false",
                   help="keep the last CETP epoch (default: the epoch with the lowest validation loss)")
    p.add_argument("--text-source", default="report", choices=["report", "scp", "both"], help="CETP text (default: the free-text report)")
    p.add_argument("--cetp-dir", type=Path, default=None, help="reuse a pretrain_cetp output dir (with cetp/ and encoder/) instead of pre-training")
    p.add_argument("--batch-size", type=int, default=None, help="fine-tuning batch size (default 64)")
    p.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (default: the library's per-method default)")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--max-records", type=int, default=None, help="cap per split (quick runs)")
    p.add_argument("--no-zero-shot", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores), split among --jobs")
    p.add_argument("--jobs", type=int, default=None,
                   help="fine-tuning runs in parallel processes (default: available cores, at most 4; 1 with --quick)")
    p.add_argument("--keep-checkpoints", type=Path, default=None, help="keep the CETP run here (default: a temporary folder)")
    p.add_argument("--replot", type=Path, default=None, metavar="JSON",
                   help="only redraw the PNGs (into --out) from an existing quality.json; nothing is trained")
    p.add_argument("--quick", action="store_true", help="smoke setting: tiny encoder, 64 records, 1 epoch, 1 seed, lrc/linear/full")
    p.add_argument("--out", type=Path, default=common.default_out_dir() / "quality", help="folder for quality.json/.md and the PNGs")
    args = p.parse_args(argv)

    q = QUICK if args.quick else {}
    args.encoder = args.encoder or q.get("encoder", "resnet1d18-small")
    args.tasks = args.tasks or q.get("tasks", list(TASK_ORDER))
    args.methods = args.methods or q.get("methods", list(METHOD_ORDER))
    args.seeds = args.seeds or q.get("seeds", [0, 1, 2])
    args.epochs = parse_epochs(args.epochs, q.get("epochs", DEFAULT_EPOCHS))
    args.cetp_epochs = args.cetp_epochs if args.cetp_epochs is not None else q.get("cetp_epochs", DEFAULT_CETP_EPOCHS)
    args.batch_size = args.batch_size or q.get("batch_size", 64)
    args.max_records = args.max_records or q.get("max_records")
    for task in args.tasks:
        if task not in args.epochs:
            p.error(f"no epochs for {task}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.replot:
        data = json.loads(args.replot.read_text())
        args.out.mkdir(parents=True, exist_ok=True)
        data["plots"] = make_plots(data, args.out)
        log(f"redrew {', '.join(data['plots'])}")
        return data
    started = time.perf_counter()
    quiet_libraries()
    cores = common.available_cores()
    jobs = max(1, args.jobs if args.jobs is not None else (1 if args.quick else min(cores, 4)))
    threads = common.set_threads(args.threads)
    threads_per_job = max(1, (args.threads or cores) // jobs) if jobs > 1 else threads
    import torch

    info = common.machine_info()
    warning = common.contention_warning(info)
    if warning:
        print(warning, flush=True)
    data_root = (args.data_dir or default_data_root()).expanduser()
    ptbxl_dir = data_root / "ptbxl"
    if not (ptbxl_dir / "ptbxl_database.csv").is_file():
        raise SystemExit(f"PTB-XL not found under {data_root} (pass --data-dir or set TAC_ECG_DATA).")
    arrays = sorted(ptbxl_dir.glob("*.npz"))
    array_file = str(arrays[0]) if arrays and not (ptbxl_dir / "records100").is_dir() else None
    encoder_preset, overrides = common.resolve_encoder(args.encoder)
    overrides.update(json.loads(args.encoder_overrides))

    tmp = None
    if args.keep_checkpoints:
        work = args.keep_checkpoints
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tac_ecg_quality_")
        work = Path(tmp.name)
    args.out.mkdir(parents=True, exist_ok=True)
    _TRAINER_LOG[0] = open(args.out / "quality_trainer.log", "w")
    log(f"bench_quality: encoder {args.encoder}, tasks {args.tasks}, methods {args.methods}, seeds {args.seeds}, "
        f"torch threads {threads} (fine-tuning: {jobs} process(es) x {threads_per_job} thread(s)), data {data_root}")

    # 1. CETP pre-training (or a given run)
    if args.cetp_dir:
        cetp_run = args.cetp_dir
        metrics_file = cetp_run / "cetp_metrics.json"
        cetp = {"reused": str(cetp_run), "pairs": {}, "epochs": math.nan, "text_source": args.text_source,
                "metrics": json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}}
        args.cetp_epochs = None
    else:
        cetp = stage_cetp(args, ptbxl_dir, array_file, work, encoder_preset, overrides)
        cetp_run = work / "cetp_run"
    base = cetp_run / "encoder"
    from transformers import AutoModel

    import tac_ecg_hf  # noqa: F401  (registers the encoders)

    encoder_params = count_module_params(AutoModel.from_pretrained(base, dtype=torch.float32))

    # 2. tasks: zero-shot (PTB-XL) and fine-tuning
    ds_config = {"max_records": args.max_records} if args.max_records else {}
    zero_shot = None
    datasets_info = {}
    for task in args.tasks:
        dataset = _task_dataset(task, str(data_root), ds_config)
        datasets_info[task] = {split: len(d) for split, d in dataset.items()}
        log(f"{task}: {datasets_info[task]}")
        if task == "ptbxl-super" and not args.no_zero_shot:
            zero_shot = stage_zero_shot(cetp_run / "cetp", dataset)
    runs = stage_finetune(args, data_root, ds_config, base, work, encoder_preset, overrides, jobs, threads_per_job)

    info["loadavg_end"] = common.loadavg()
    info["cpu_busy_cores_end"] = common.cpu_busy_cores()
    summary = summarize_runs(runs)
    data = {
        "benchmark": "quality",
        "command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO) if sys.argv[0] else "bench_quality.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "settings": {
            "encoder": args.encoder, "encoder_preset": encoder_preset, "encoder_overrides": overrides,
            "tasks": args.tasks, "methods": args.methods, "seeds": args.seeds, "small_seeds": args.small_seeds,
            "epochs": args.epochs, "cetp_epochs": args.cetp_epochs, "batch_size": args.batch_size, "lr": args.lr,
            "rank": args.rank, "max_records": args.max_records, "text_source": args.text_source, "quick": args.quick,
            "data_root": str(data_root), "array_file": array_file, "threads": threads,
            "jobs": jobs, "threads_per_job": threads_per_job,
            "preprocessing": "12 leads, 100 Hz, 1000 samples (10 s, centre crop), z-scored per lead (all tasks)",
        },
        "datasets": datasets_info,
        "encoder_params": encoder_params,
        "cetp": cetp,
        "zero_shot": zero_shot,
        "runs": runs,
        "summary": summary,
        "storage": storage_table(summary, encoder_params),
    }
    data["plots"] = make_plots(data, args.out)
    data["wall_seconds"] = time.perf_counter() - started
    report = markdown_report(data)
    header = (f"## Quality (real data)\n\n`{data['command']}` — {common.machine_markdown(info)} "
              f"Wall time {data['wall_seconds'] / 60:.1f} min.\n\n")
    data["markdown"] = header + report
    (args.out / "quality.md").write_text(data["markdown"] + "\n" + "\n".join(f"![{Path(p).stem}]({Path(p).name})" for p in data["plots"]) + "\n")
    common.write_json(args.out / "quality.json", data)
    print()
    print(data["markdown"])
    log(f"wrote {args.out / 'quality.json'}, {args.out / 'quality.md'} and {len(data['plots'])} plots in {data['wall_seconds']:.0f} s")
    _TRAINER_LOG[0].close()
    _TRAINER_LOG[0] = None
    if tmp is not None:
        tmp.cleanup()
    return data


if __name__ == "__main__":
    main()
