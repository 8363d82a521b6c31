"""``tac-ecg demo``: the whole TAC-ECG pipeline on the real data in a few minutes on a CPU.

1. CETP: pre-train a small ECG encoder against PTB-XL report text (training folds) with the offline MiniLM.
2. Task adaptation: freeze it and train an LRC-Adapter for PTB-XL superclasses; compare with a linear probe on the
   same encoder and with training the same encoder from scratch.
3. Print a table (test fold macro-AUC / macro-F1, trainable parameters) and classify real records with the
   bundled checkpoints.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

DEMO_ENCODER = ("resnet1d", {"base_width": 16, "layers": [1, 1, 1, 1]})


def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    header = " | ".join(f"{title:>{len(title)}}" for _, title, _ in columns)
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = []
        for key, title, fmt in columns:
            value = row.get(key, "")
            cells.append(f"{format(value, fmt) if fmt and value != '' else value:>{len(title)}}")
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def run_demo(data_dir: str, output_dir: str | None = None, quick: bool = False) -> list[dict]:
    """CETP, then LRC-Adapter vs linear probe vs from scratch on ptbxl-super, with the package's own Trainer
    recipes."""
    from transformers import TrainingArguments

    from .training import CETPArguments, DataArguments, ModelArguments, run_finetune, run_pretrain_cetp

    data_root = Path(data_dir).expanduser().resolve()
    if not (data_root / "ptbxl" / "ptbxl_database.csv").is_file():
        raise FileNotFoundError(
            f"No PTB-XL data at {data_root / 'ptbxl'} (expected ptbxl_database.csv); pass --data-dir pointing at the "
            "folder that holds ptbxl/, cpsc2018/ and cinc2017/ (or set TAC_ECG_DATA)."
        )
    out = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="tac-ecg-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    limit = 200 if quick else None
    t0 = time.perf_counter()

    def args(folder: str, epochs: int, lr: float) -> TrainingArguments:
        return TrainingArguments(
            output_dir=str(out / folder), num_train_epochs=epochs, learning_rate=lr, per_device_train_batch_size=64,
            per_device_eval_batch_size=128, eval_strategy="no", save_strategy="no", logging_strategy="no",
            report_to="none", disable_tqdm=True, remove_unused_columns=False, seed=0,
        )

    encoder_type, overrides = DEMO_ENCODER
    epochs = 1 if quick else 8
    print(f"[1/3] CETP pre-training a {encoder_type} encoder against ECG-text pairs ({epochs} epochs)")
    _, cetp = run_pretrain_cetp(
        CETPArguments(encoder=encoder_type, encoder_overrides=json.dumps(overrides), projection_dim=128),
        DataArguments(data_dir=str(data_root), sources="ptbxl", max_records=limit, cache_dir=str(out / "cache")),
        args("cetp", epochs, 2e-3),
    )
    print(f"      {cetp['train_pairs']} pairs, contrastive loss {cetp.get('train_loss', float('nan')):.3f}, "
          f"{cetp['train_seconds']:.0f} s")

    rows = []
    ft_epochs = 2 if quick else 15
    print(f"[2/3] fine-tuning on ptbxl-super ({ft_epochs} epochs each): LRC-Adapter, linear probe, from scratch")
    for method in ("lrc", "linear", "scratch"):
        model_args = ModelArguments(
            base_model=None if method == "scratch" else str(out / "cetp"), method=method, encoder=encoder_type,
            encoder_overrides=json.dumps(overrides),
        )
        data_args = DataArguments(
            task="ptbxl-super", data_dir=str(data_root), max_records=limit, cache_dir=str(out / "cache")
        )
        from .training import default_learning_rate

        result = run_finetune(model_args, data_args, args(f"ft-{method}", ft_epochs, default_learning_rate(method)))
        m = result.test_metrics
        rows.append(
            {
                "method": {
                    "lrc": "CETP + LRC-Adapter",
                    "linear": "CETP + linear probe",
                    "scratch": "from scratch (full)",
                }[method],
                "auc": m.get("macro_auc", float("nan")),
                "f1": m.get("macro_f1", float("nan")),
                "trainable": result.trainable_params,
                "ratio": 100.0 * result.trainable_params / result.total_params,
                "seconds": result.train_seconds,
            }
        )
    print()
    print(
        _table(
            rows,
            [
                ("method", "method                ", ""),
                ("auc", "test macro-AUC", ".3f"),
                ("f1", "test macro-F1", ".3f"),
                ("trainable", "trainable params", ",d"),
                ("ratio", "trainable %", ".1f"),
                ("seconds", "train s", ".0f"),
            ],
        )
    )
    print()
    print("[3/3] classifying real records with the bundled checkpoint (tac-ecg/xresnet1d101-cetp)")
    _bundled_examples(data_root)
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; models and logs in {out}")
    return rows


def _bundled_examples(data_root: Path) -> None:
    from .hub import bundled_path
    from .inference import DEFAULT_MODEL, ECGTaskClassifier

    if bundled_path(DEFAULT_MODEL) is None:
        print("      (no bundled checkpoint in this installation)")
        return
    clf = ECGTaskClassifier.from_pretrained(DEFAULT_MODEL)
    examples = [
        ("cpsc2018", sorted((data_root / "cpsc2018").glob("*.hea"))[:2]),
        ("cinc2017", sorted((data_root / "cinc2017").glob("*.hea"))[:2]),
    ]
    for task, files in examples:
        if task not in clf.tasks:
            continue
        for path in files:
            pred = clf.predict(str(path), task=task)
            top = ", ".join(
                f"{label} {p:.2f}"
                for label, p in sorted(zip(pred.labels, pred.probabilities), key=lambda t: -t[1])[:3]
            )
            print(f"      {task:<9} {path.name:<12} -> {', '.join(pred.decision) or 'none'}   ({top})")
