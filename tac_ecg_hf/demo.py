"""``tac-ecg demo``: the whole TAC-ECG pipeline on the real data in a few minutes on a CPU.

1. CETP: pre-train a small ECG encoder against PTB-XL report text (training folds) with the offline MiniLM.
2. Task adaptation: freeze it and train an LRC-Adapter for PTB-XL superclasses; compare with a linear probe on the
   same encoder and with training the same encoder from scratch.
3. Print a table (test fold macro-AUC / macro-F1, trainable parameters) and classify real records with the
   bundled checkpoints.
"""

from __future__ import annotations

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
    from .data import load_cetp_pairs
    from .evaluation import load_task_dataset
    from .training import finetune, pretrain_cetp

    data_root = Path(data_dir).expanduser().resolve()
    ptbxl_dir = data_root / "ptbxl"
    if not (ptbxl_dir / "ptbxl_database.csv").is_file():
        raise FileNotFoundError(
            f"No PTB-XL data at {ptbxl_dir} (expected ptbxl_database.csv); pass --data-dir pointing at the folder that "
            "holds ptbxl/, cpsc2018/ and cinc2017/ (or set TAC_ECG_DATA)."
        )
    out = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="tac-ecg-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    limit = {"max_records": 300} if quick else {}
    t0 = time.perf_counter()
    print(f"[1/4] loading PTB-XL (ECG, report) pairs and the superclass task from {ptbxl_dir}")
    pairs = load_cetp_pairs(str(ptbxl_dir), cache_dir=str(out / "cache"), **limit)
    task_data = load_task_dataset("ptbxl-super", data_root, cache_dir=out / "cache", **limit)
    print(f"      {len(pairs['train'])} training pairs; task splits " + ", ".join(f"{k}={len(v)}" for k, v in task_data.items()))

    encoder_type, overrides = DEMO_ENCODER
    epochs = 1 if quick else 8
    print(f"[2/4] CETP pre-training a {encoder_type} encoder against report text ({epochs} epochs)")
    _, cetp_metrics = pretrain_cetp(
        pairs,
        out / "cetp",
        encoder=encoder_type,
        encoder_overrides=overrides,
        projection_dim=128,
        text_trainable_layers=0,
        epochs=epochs,
        batch_size=64,
        learning_rate=2e-3,
        disable_tqdm=True,
        logging_strategy="no",
        eval_strategy="no",
    )
    print(f"      contrastive loss {cetp_metrics.get('train_loss', float('nan')):.3f}, {cetp_metrics['train_seconds']:.0f} s")
    encoder_dir = out / "cetp" / "encoder"

    rows = []
    ft_epochs = 2 if quick else 15
    print(f"[3/4] fine-tuning on ptbxl-super ({ft_epochs} epochs each): LRC-Adapter, linear probe, from scratch")
    for method in ("lrc", "linear", "scratch"):
        _, result = finetune(
            task_data,
            "ptbxl-super",
            method,
            base=None if method == "scratch" else encoder_dir,
            output_dir=out / f"ft-{method}",
            epochs=ft_epochs,
            encoder=encoder_type,
            encoder_overrides=overrides,
            disable_tqdm=True,
            logging_strategy="no",
            eval_strategy="no",
        )
        m = result.test_metrics
        rows.append(
            {
                "method": {"lrc": "CETP + LRC-Adapter", "linear": "CETP + linear probe", "scratch": "from scratch (full)"}[method],
                "auc": m.get("test_macro_auc", float("nan")),
                "f1": m.get("test_macro_f1", float("nan")),
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
    print("[4/4] classifying real records with the bundled checkpoint (tac-ecg/xresnet1d101-cetp)")
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
    examples = [("cpsc2018", sorted((data_root / "cpsc2018").glob("*.hea"))[:2]), ("cinc2017", sorted((data_root / "cinc2017").glob("*.hea"))[:2])]
    for task, files in examples:
        if task not in clf.tasks:
            continue
        for path in files:
            pred = clf.predict(str(path), task=task)
            top = ", ".join(f"{label} {p:.2f}" for label, p in sorted(zip(pred.labels, pred.probabilities), key=lambda t: -t[1])[:3])
            print(f"      {task:<9} {path.name:<12} -> {', '.join(pred.decision) or 'none'}   ({top})")
