#!/usr/bin/env python
"""Does TAC-ECG's claim hold here? CETP + LRC-Adapter against its baselines on the real data, with TAC-ECG's protocol.

    # the main table: xresnet1d101, PTB-XL's 10 folds (test fold k, validation fold k-1), six methods
    python benchmarks/bench_quality.py --encoders xresnet1d101 --folds 1 2 3 4 5 6 7 8 9 10
    # label efficiency (5/10/25/100% of the training labels) and what CETP itself buys, on some folds
    python benchmarks/bench_quality.py --encoders xresnet1d101 --folds 10 9 --fractions 0.05 0.1 0.25 1 --ablations
    # the six encoders, fold 10, LRC against full fine-tuning
    python benchmarks/bench_quality.py --encoders xresnet1d101 resnet1d18 inception1d fcn lstm transformer --folds 10 \
        --methods lrc full
    # cpsc2018 / cinc2017 / chapman: stratified 5-fold CV on the bundled build's CETP encoder
    python benchmarks/bench_quality.py --task cpsc2018 --cv 5 --base runs/bundled/xresnet1d101-cetp/cetp \
        --methods lrc linear full scratch

For each encoder and fold, CETP is pre-trained on the training folds' PTB-XL ECG-text pairs only (validation fold for
model selection; the test fold never), then every method fine-tunes on the training folds' labels (a stratified
fraction of them with ``--fractions``): LRC serial (TAC-ECG), LRC parallel (mergeable), PEFT LoRA on the convolutions,
a linear probe, full fine-tuning of the CETP encoder, and the same encoder trained from scratch. ``--ablations`` adds
LRC
on a randomly initialised frozen encoder and LRC on an encoder pre-trained without text (the from-scratch supervised
model of the same fold). Every number comes from the public predict path through ``run_finetune`` (per-record test
predictions in ``test_predictions.jsonl``): per-class sigmoid macro-AUC (standard), macro-F1 at thresholds calibrated
on the validation fold, and the TAC-ECG code's softmax-AUC variant, labelled as such. Each run is a folder under
``--work``; re-running skips finished runs, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METHODS = ("lrc", "lrc-parallel", "lora", "linear", "full", "scratch")
METHOD_NAMES = {
    "lrc": "CETP + LRC-Adapter (serial, TAC-ECG)",
    "lrc-parallel": "CETP + LRC parallel (mergeable)",
    "lora": "CETP + PEFT LoRA",
    "linear": "CETP + linear probe",
    "full": "CETP + full fine-tuning",
    "scratch": "from scratch (full)",
    "lrc-random": "LRC on a random frozen encoder",
    "lrc-supervised": "LRC on a supervised encoder (no text)",
}
ENCODER_ALIASES = {"lstm": "lstm", "transformer": "transformer"}
TINY = ("resnet1d18", {"layers": [1, 1, 1, 1], "base_width": 8})


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def training_args(out: Path, epochs: float, args, **extra):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out),
        num_train_epochs=epochs,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=128,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        logging_strategy="epoch",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        seed=args.seed,
        bf16=args.bf16,
        use_cpu=True,
        warmup_steps=0.05,
        lr_scheduler_type="cosine",
        weight_decay=0.01,
        **extra,
    )


def encoder_spec(name: str, quick: bool) -> tuple[str, dict]:
    if quick:
        return TINY
    return name, {}


def run_cetp(encoder: str, fold: int | None, work: Path, args) -> Path:
    from tac_ecg_hf.training import CETPArguments, DataArguments, run_pretrain_cetp

    out = work / "cetp"
    if (out / "cetp_metrics.json").is_file():
        return out
    preset, overrides = encoder_spec(encoder, args.quick)
    log(f"CETP {encoder} fold {fold}")
    run_pretrain_cetp(
        CETPArguments(encoder=preset, encoder_overrides=json.dumps(overrides), text_source="both"),
        DataArguments(
            data_dir=str(args.data_dir),
            sources="ptbxl",
            augment=True,
            cache_dir=str(args.cache),
            max_records=args.max_records,
            cv_folds=10 if fold else None,
            cv_fold=(fold - 1) if fold else 0,
        ),
        training_args(
            out, args.cetp_epochs, args, learning_rate=1e-3, metric_for_best_model="eval_loss", greater_is_better=False
        ),
    )
    return out


def random_encoder(encoder: str, work: Path, args) -> Path:
    """A randomly initialised encoder with the feature extractor, saved once (the ablation's frozen base)."""
    from transformers import set_seed

    from tac_ecg_hf.data import ECGFeatureExtractor
    from tac_ecg_hf.models.encoders import ENCODER_FAMILIES, create_encoder_config

    out = work / "random-encoder"
    if not (out / "model.safetensors").is_file():
        set_seed(args.seed)
        preset, overrides = encoder_spec(encoder, args.quick)
        config = create_encoder_config(preset, **overrides)
        ENCODER_FAMILIES[config.model_type][1](config).save_pretrained(out)
        ECGFeatureExtractor().save_pretrained(out)
    return out


def run_method(
    method: str, base: Path | None, task: str, fold: int | None, fraction: float, out: Path, args, encoder: str
) -> dict:
    from tac_ecg_hf.training import DataArguments, ModelArguments, default_learning_rate, run_finetune

    if (out / "result.json").is_file():
        return json.loads((out / "result.json").read_text())
    preset, overrides = encoder_spec(encoder, args.quick)
    kind = {"lrc-random": "lrc", "lrc-supervised": "lrc"}.get(method, method)
    k = 10 if fold is not None and args.cv is None else args.cv
    cv_fold = (fold - 1) if args.cv is None and fold is not None else fold
    epochs = args.epochs * (2 if fraction < 0.5 else 1)  # fewer labels: more epochs over them, same best-val rule
    log(f"{task} {method} fold {fold} fraction {fraction}")
    start = time.time()
    result = run_finetune(
        ModelArguments(
            base_model=None if kind == "scratch" else str(base),
            method=kind,
            encoder=preset,
            encoder_overrides=json.dumps(overrides),
        ),
        DataArguments(
            task=task,
            data_dir=str(args.data_dir),
            sources=args.sources,
            label_fraction=fraction,
            cv_folds=k,
            cv_fold=cv_fold,
            cache_dir=str(args.cache),
            max_records=args.max_records,
        ),
        training_args(
            out, epochs, args, learning_rate=default_learning_rate(kind), metric_for_best_model="eval_macro_auc"
        ),
        command=f"bench_quality {task} {method} fold={fold} fraction={fraction}",
    )
    log(
        f"  {method}: test macro-AUC {result.test_metrics.get('macro_auc', float('nan')):.3f} "
        f"in {time.time() - start:.0f} s"
    )
    return json.loads((out / "result.json").read_text())


def folder_bytes(path: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in path.glob(pattern) if p.is_file())


def run_all(args) -> list[dict]:
    rows = []
    for encoder in args.encoders:
        for fold in args.folds:
            work = args.work / args.task / encoder / (f"fold{fold}" if args.cv is None else f"cv{args.cv}-{fold}")
            if args.base is not None:
                cetp = args.base
            elif args.task == "ptbxl-super":
                cetp = run_cetp(encoder, fold if args.cv is None else None, work, args)
            else:
                raise SystemExit(
                    "--task other than ptbxl-super needs --base (a CETP encoder that never saw its records)"
                )
            plan = [(m, f) for f in args.fractions for m in args.methods]
            if args.ablations:
                plan += [(m, f) for f in args.fractions for m in ("lrc-random", "lrc-supervised")]
            for method, fraction in plan:
                base = {
                    "lrc-random": lambda: random_encoder(encoder, args.work / args.task / encoder, args),
                    "lrc-supervised": lambda: work / f"scratch-f{fraction:g}",
                }.get(method, lambda: cetp)()
                if method == "lrc-supervised" and not (base / "result.json").is_file():
                    run_method("scratch", None, args.task, fold, fraction, base, args, encoder)
                out = work / f"{method}-f{fraction:g}"
                result = run_method(method, base, args.task, fold, fraction, out, args, encoder)
                adapter = folder_bytes(out / args.task, "adapter_model.safetensors")
                rows.append(
                    {
                        "encoder": encoder,
                        "fold": fold,
                        "method": method,
                        "fraction": fraction,
                        "trainable_params": result["trainable_params"],
                        "total_params": result["total_params"],
                        "test": result["test"],
                        "train_seconds": result["train_seconds"],
                        "dir": str(out),
                        "adapter_bytes": adapter,
                        "model_bytes": folder_bytes(out, "model.safetensors"),
                    }
                )
    return rows


# ------------------------------------------------------------------------------------------------------------------
# report


def mean_sd(values) -> tuple[float, float, int]:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return float("nan"), float("nan"), 0
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals)


def summarize(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["encoder"], r["method"], r["fraction"]), []).append(r)
    out = []
    for (encoder, method, fraction), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][2], METHOD_ORDER(kv[0][1]))
    ):
        entry = {"encoder": encoder, "method": method, "fraction": fraction, "folds": sorted(r["fold"] for r in rs)}
        for key in ("macro_auc", "macro_f1", "softmax_macro_auc"):
            entry[key] = mean_sd(r["test"].get(key) for r in rs)
        entry["trainable_pct"] = 100.0 * rs[0]["trainable_params"] / max(1, rs[0]["total_params"])
        entry["trainable_params"] = rs[0]["trainable_params"]
        entry["train_seconds"] = float(np.mean([r["train_seconds"] for r in rs]))
        entry["adapter_bytes"], entry["model_bytes"] = rs[0]["adapter_bytes"], rs[0]["model_bytes"]
        out.append(entry)
    return out


def METHOD_ORDER(method: str) -> int:  # noqa: N802 - a sort key
    order = list(METHODS) + ["lrc-random", "lrc-supervised"]
    return order.index(method) if method in order else len(order)


def storage(summary: list[dict], encoder: str, ks=(1, 2, 3, 4)) -> list[dict]:
    """Bytes to serve k tasks: one encoder + k adapters (PEFT methods) against k fully fine-tuned copies."""
    entries = {e["method"]: e for e in summary if e["encoder"] == encoder and e["fraction"] == 1.0}
    full = entries.get("full")
    if full is None or not full["model_bytes"]:
        return []
    encoder_bytes = full["model_bytes"]
    rows = []
    for method in ("lrc", "lrc-parallel", "lora", "linear"):
        if method not in entries:
            continue
        per_task = entries[method]["adapter_bytes"] or encoder_bytes * entries[method]["trainable_pct"] / 100
        rows.append({"method": method, **{f"k={k}": (encoder_bytes + k * per_task) / (k * encoder_bytes) for k in ks}})
    return rows


def fmt(ms: tuple) -> str:
    m, s, n = ms
    return "n/a" if n == 0 else (f"{m:.3f} ± {s:.3f}" if n > 1 else f"{m:.3f}")


SHORT_NAMES = {"lrc": "CETP + LRC", "full": "CETP + full", "scratch": "scratch", "lrc-supervised": "LRC on supervised",
               "lrc-random": "LRC on random"}
#: the comparisons the claims are about: (method, against), each a per-fold paired difference of macro-AUC
PAIRS = (("lrc", "full"), ("lrc", "scratch"), ("lrc", "lrc-supervised"), ("lrc", "lrc-random"))


def paired_differences(rows: list[dict]) -> list[dict]:
    """Per encoder, fraction and pair of methods: the macro-AUC difference on each fold both ran (the two methods
    see the same test records, so the fold-to-fold spread of the test sets cancels), with its mean and sd."""
    auc = {(r["encoder"], r["fraction"], r["method"], r["fold"]): r["test"].get("macro_auc") for r in rows}
    out = []
    for encoder in sorted({r["encoder"] for r in rows}):
        for fraction in sorted({r["fraction"] for r in rows}):
            for a, b in PAIRS:
                diffs = {
                    fold: auc[encoder, fraction, a, fold] - auc[encoder, fraction, b, fold]
                    for (e, f, m, fold) in auc
                    if (e, f, m) == (encoder, fraction, a) and auc.get((encoder, fraction, b, fold)) is not None
                    and auc[encoder, fraction, a, fold] is not None
                }
                if diffs:
                    out.append({"encoder": encoder, "fraction": fraction, "method": a, "against": b,
                                "per_fold": dict(sorted(diffs.items())), "difference": mean_sd(diffs.values())})
    return out


def markdown(rows: list[dict], summary: list[dict], args, seconds: float) -> str:
    lines = [
        f"# Quality benchmark: `{args.task}`",
        "",
        f"Seed {args.seed}; bf16 autocast {'on' if args.bf16 else 'off'}; wall time {seconds / 60:.0f} min.",
        "",
        "Mean ± sd over folds of held-out test metrics (per-class sigmoid macro-AUC; macro-F1 at thresholds "
        "calibrated on the validation fold; the TAC-ECG code's softmax-AUC, a non-standard variant).",
        "",
    ]
    for fraction in sorted({e["fraction"] for e in summary}, reverse=True):
        lines += [
            f"## {fraction:.0%} of the training labels",
            "",
            "| encoder | method | folds | macro-AUC | macro-F1 | softmax-AUC (TAC-ECG variant) | trainable "
            "| train s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in (e for e in summary if e["fraction"] == fraction):
            lines.append(
                f"| {e['encoder']} | {METHOD_NAMES.get(e['method'], e['method'])} | {len(e['folds'])} | "
                f"{fmt(e['macro_auc'])} | {fmt(e['macro_f1'])} | {fmt(e['softmax_macro_auc'])} | "
                f"{e['trainable_params']:,} ({e['trainable_pct']:.2f}%) | {e['train_seconds']:.0f} |"
            )
        lines.append("")
    pairs = [d for d in paired_differences(rows) if len(d["per_fold"]) > 1]
    if pairs:
        lines += [
            "## Paired differences of macro-AUC (points), fold by fold",
            "",
            "| encoder | labels | difference | folds | mean ± sd | folds where > 0 | per fold |",
            "|---|---|---|---|---|---|---|",
        ]
        for d in pairs:
            m, sd, n = d["difference"]
            positive = sum(v > 0 for v in d["per_fold"].values())
            per_fold = ", ".join(f"{fold}: {100 * v:+.1f}" for fold, v in d["per_fold"].items())
            lines.append(
                f"| {d['encoder']} | {d['fraction']:.0%} | {SHORT_NAMES.get(d['method'], d['method'])} - "
                f"{SHORT_NAMES.get(d['against'], d['against'])} | {n} | {100 * m:+.1f} ± {100 * sd:.1f} | "
                f"{positive} of {n} | {per_fold} |"
            )
        lines.append("")
    for encoder in args.encoders:
        table = storage(summary, encoder)
        if table:
            lines += [
                f"## Storage for k tasks, {encoder} (fraction of k fully fine-tuned copies)",
                "",
                "| method | " + " | ".join(k for k in table[0] if k != "method") + " |",
                "|---|" + "---|" * (len(table[0]) - 1),
            ]
            for t in table:
                lines.append(
                    f"| {t['method']} | " + " | ".join(f"{v:.1%}" for k, v in t.items() if k != "method") + " |"
                )
            lines.append("")
    return "\n".join(lines)


def plots(rows: list[dict], summary: list[dict], out: Path, task: str, tag: str) -> list[str]:
    """The report's figures, named after it (``tag``), so that the reports of one folder keep their own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fractions = sorted({e["fraction"] for e in summary})
    if len(fractions) > 1:  # label efficiency
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for encoder in sorted({e["encoder"] for e in summary}):
            for method in sorted({e["method"] for e in summary}, key=METHOD_ORDER):
                pts = [
                    (e["fraction"], *e["macro_auc"][:2])
                    for e in summary
                    if e["encoder"] == encoder and e["method"] == method and e["macro_auc"][2]
                ]
                if len(pts) > 1:
                    x, m, s = map(np.asarray, zip(*sorted(pts)))
                    ax.errorbar(100 * x, m, yerr=s, marker="o", capsize=3, label=f"{METHOD_NAMES.get(method, method)}")
        ax.set_xscale("log")
        ax.set_xticks([100 * f for f in fractions], [f"{100 * f:g}%" for f in fractions])
        ax.set(xlabel="training labels used", ylabel="test macro-AUC", title=f"Label efficiency ({task})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"label_efficiency_{tag}.png", dpi=130)
        plt.close(fig)
        made.append(f"label_efficiency_{tag}.png")
    pairs = [d for d in paired_differences(rows) if len(d["per_fold"]) > 1 and d["against"] in ("full", "scratch")]
    if pairs:  # per-fold paired differences: where a mean hides the spread
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        labels = []
        for i, d in enumerate(pairs):
            values = 100 * np.asarray(list(d["per_fold"].values()))
            ax.scatter(np.full(len(values), i), values, s=18, alpha=0.7)
            ax.errorbar(i + 0.18, values.mean(), yerr=values.std(ddof=1), fmt="k_", capsize=4)
            labels.append(f"{d['encoder']}\n{d['fraction']:.0%}: LRC - {d['against']}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(pairs)), labels, fontsize=7)
        ax.set(ylabel="macro-AUC difference (points)", title=f"Paired differences per test fold ({task})")
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        fig.savefig(out / f"paired_{tag}.png", dpi=130)
        plt.close(fig)
        made.append(f"paired_{tag}.png")
    full = [e for e in summary if e["fraction"] == 1.0]
    if full:  # parameter efficiency
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for e in full:
            ax.errorbar(e["trainable_pct"], e["macro_auc"][0], yerr=e["macro_auc"][1], marker="o", capsize=3)
            ax.annotate(
                f"{e['encoder']}: {e['method']}",
                (e["trainable_pct"], e["macro_auc"][0]),
                fontsize=7,
                xytext=(4, 2),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.set(
            xlabel="trainable parameters (% of the model)",
            ylabel="test macro-AUC",
            title=f"Parameter efficiency ({task}, 100% of the labels)",
        )
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / f"param_efficiency_{tag}.png", dpi=130)
        plt.close(fig)
        made.append(f"param_efficiency_{tag}.png")
    lrc = [r for r in rows if r["method"] == "lrc" and r["fraction"] == 1.0]
    if lrc:  # ROC per class, pooled over the folds' test predictions
        from sklearn.metrics import roc_curve

        from tac_ecg_hf.evaluation import read_predictions
        from tac_ecg_hf.tasks import get_task

        spec = get_task(task)
        preds = read_predictions(
            Path(r["dir"]) / "test_predictions.jsonl" for r in lrc if r["encoder"] == lrc[0]["encoder"]
        )
        probs = np.asarray([p["probabilities"] for p in preds])
        refs = np.asarray([p["reference"] for p in preds])
        onehot = refs if spec.multi_label else np.eye(spec.num_labels)[refs]
        fig, ax = plt.subplots(figsize=(5, 5))
        for j, label in enumerate(spec.labels):
            if onehot[:, j].min() != onehot[:, j].max():
                fpr, tpr, _ = roc_curve(onehot[:, j], probs[:, j])
                ax.plot(fpr, tpr, label=label)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(
            xlabel="false positive rate",
            ylabel="true positive rate",
            title=f"ROC per class, CETP + LRC ({lrc[0]['encoder']}, {len(preds)} test records)",
        )
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"roc_lrc_{tag}.png", dpi=130)
        plt.close(fig)
        made.append(f"roc_lrc_{tag}.png")
    return made


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="ptbxl-super")
    p.add_argument("--encoders", nargs="+", default=["xresnet1d101"])
    p.add_argument(
        "--folds",
        nargs="+",
        type=int,
        default=[10],
        help="PTB-XL strat_folds used as test folds (or CV folds 0..k-1 with --cv)",
    )
    p.add_argument(
        "--cv",
        type=int,
        default=None,
        help="stratified k-fold CV instead of PTB-XL's folds (other tasks; needs --base)",
    )
    p.add_argument("--base", type=Path, default=None, help="a CETP run folder to use instead of per-fold CETP")
    p.add_argument("--sources", default=None, help="comma-separated databases (default: every source of the task)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--fractions", nargs="+", type=float, default=[1.0])
    p.add_argument("--ablations", action="store_true", help="LRC on a random and on a supervised frozen encoder")
    p.add_argument("--cetp-epochs", type=float, default=30)
    p.add_argument("--epochs", type=float, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-bf16", dest="bf16", action="store_false")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "quality")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality")
    p.add_argument("--max-records", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="tiny encoder, few records, 1 epoch (smoke test)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.cetp_epochs, args.epochs, args.max_records = 1, 1, args.max_records or 40
    args.cache = args.work / "datasets-cache"
    return args


def main(argv=None) -> dict:
    import common  # the benchmarks' shared preamble (this script's folder is on sys.path)

    args = parse_args(argv)
    info = common.setup(args.threads)
    start = time.time()
    rows = run_all(args)
    summary = summarize(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    from tac_ecg_hf.jsonutil import dump_json

    name = f"quality_{args.task}_{'-'.join(args.encoders)}" + (f"_cv{args.cv}" if args.cv else "")
    if len(args.fractions) > 1 or args.fractions != [1.0]:
        name += "_fractions"
    if args.ablations:
        name += "_ablations"
    results = {"command": common.command_line(), "machine": common.finish_machine_info(info),
               "elapsed_s": time.time() - start}
    report = common.header_markdown(results) + "\n\n" + markdown(rows, summary, args, time.time() - start)
    figures = plots(rows, summary, args.out, args.task, name.removeprefix("quality_"))
    dump_json({**results, "rows": rows, "summary": summary, "paired": paired_differences(rows), "figures": figures},
              args.out / f"{name}.json")
    (args.out / f"{name}.md").write_text(report + "\n" + "\n".join(f"![{f}]({f})" for f in figures) + "\n")
    print(report)
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main()
