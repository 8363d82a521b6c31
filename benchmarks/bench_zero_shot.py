#!/usr/bin/env python
"""Zero-shot macro-AUC of a model's CETP dual encoder, through the ``zero-shot-ecg-classification`` pipeline, per task.

    python benchmarks/bench_zero_shot.py --models tac-ecg/xresnet1d101-cetp tac-ecg/resnet-cetp

No labels are used: each record is scored against one text prompt per class (softmax over the prompts' similarities,
as CLIP does) and the scores are compared with the references (per-class one-vs-rest AUC, macro-averaged; 95%
bootstrap CI over records). Records and prompts per task:

* ``ptbxl-super``: PTB-XL's held-out test fold (strat_fold 10), the prompts the bundled model cards report.
* ``cpsc2018`` / ``cinc2017``: every record of the task's own database, which the bundled CETP never saw; the prompts
  are the English descriptions of the labels in the package's label map (``tac_ecg_hf/data/label_map.csv``).
  CinC 2017 records have lead I only: they go through the model's ``cinc2017/`` feature extractor (lead I, the other
  leads zero), the one its cinc2017 adapter uses.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import common  # the benchmarks' shared preamble (this script's folder is on sys.path)
import numpy as np

HERE = Path(__file__).resolve().parent
TASKS = ("ptbxl-super", "cpsc2018", "cinc2017")
#: the database whose records each task is scored on, and the split (None: every record)
RECORDS = {"ptbxl-super": ("ptbxl", "test"), "cpsc2018": ("cpsc2018", None), "cinc2017": ("cinc2017", None)}


def bundle_prompts() -> dict[str, str]:
    """ptbxl-super's prompts, as the bundled checkpoints' build script defines them (one definition)."""
    path = HERE.parent / "examples" / "build_bundled_checkpoints.py"
    spec = importlib.util.spec_from_file_location("build_bundled_checkpoints", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.ZERO_SHOT_PROMPTS)


def task_prompts(task: str) -> dict[str, str]:
    from tac_ecg_hf.data.labels import describe_codes
    from tac_ecg_hf.tasks import get_task

    if task == "ptbxl-super":
        return bundle_prompts()
    labels = get_task(task).labels
    return {label: describe_codes(task, [label])[0] for label in labels}


def zero_shot(model: str, task: str, data_dir: str, max_records: int | None) -> dict:
    from tac_ecg_hf.evaluation import zero_shot_metrics
    from tac_ecg_hf.tasks import get_task

    database, split = RECORDS[task]
    prompts = task_prompts(task)
    metrics = zero_shot_metrics(model, task, data_dir, prompts, database=database, split=split,
                                max_records=max_records, progress=True)
    return {"model": model, "task": task, "database": database, "split": split or "all", "n": metrics["n"],
            "prompts": prompts, "macro_auc": metrics["macro_auc"], "macro_auc_ci95": metrics["macro_auc_ci95"],
            "auc_per_class": {label: metrics.get(f"auc/{label}") for label in get_task(task).labels}}


def markdown(rows: list[dict]) -> str:
    lines = ["| model | task | records | macro-AUC (95% CI) | per class |", "|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["macro_auc_ci95"]
        per_class = ", ".join(f"{k} {v:.2f}" for k, v in r["auc_per_class"].items()
                              if v is not None and np.isfinite(v))
        lines.append(f"| {r['model']} | {r['task']} | {r['database']} {r['split']}, n = {r['n']} | "
                     f"{r['macro_auc']:.3f} ({lo:.3f}-{hi:.3f}) | {per_class} |")
    lines += ["", "Prompts:", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        prompts = next(r["prompts"] for r in rows if r["task"] == task)
        lines.append(f"- {task}: " + "; ".join(f'{k} "{v}"' for k, v in prompts.items()))
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["tac-ecg/xresnet1d101-cetp", "tac-ecg/resnet-cetp"])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data")
    p.add_argument("--max-records", type=int, default=None, help="first N records per task (a smoke test)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=common.default_out_dir())
    return p.parse_args(argv)


def main(argv=None) -> dict:
    from tac_ecg_hf.jsonutil import dump_json

    args = parse_args(argv)
    info = common.setup(args.threads)
    start = time.time()
    rows = [zero_shot(m, t, str(args.data_dir), args.max_records) for m in args.models for t in args.tasks]
    results = {"benchmark": "zero_shot", "command": common.command_line(), "machine": common.finish_machine_info(info),
               "elapsed_s": time.time() - start, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    dump_json(results, args.out / "zero_shot.json")
    report = common.header_markdown(results) + "\n\n" + markdown(rows) + "\n"
    (args.out / "zero_shot.md").write_text(report)
    print(report)
    return results


if __name__ == "__main__":
    main()
