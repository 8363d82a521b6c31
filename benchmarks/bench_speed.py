#!/usr/bin/env python
"""Speed of prediction and training on CPU, measured as ratios within one run (issue 12).

(a) ``forward``: one forward of a batch of real CPSC2018 windows through the bundled xresnet1d101 and resnet1d18-small
    models, fp32 eager / bf16 autocast / ``torch.compile`` / compile + bf16 (``ECGTaskClassifier.set_precision``),
    with the compile time and the bf16 relative error of the pooled features;
(b) ``bulk``: end-to-end records/s of ``tac_ecg_hf.bulk.bulk_predict`` over WFDB files (DataLoader workers) against a
    loop of single-record ``ECGTaskClassifier.predict`` calls and against the model's forward alone on the same
    windows, in fp32 and with compile + bf16;
(c) ``train``: training steps/s of an LRC-Adapter against full fine-tuning of xresnet1d101, fp32 and bf16 autocast;
(d) ``memory``: peak RSS of ``tac-ecg predict DIR --out x.csv`` over folders of 1k / 10k / 100k records (symbolic links
    to a few real 10 s records);
(e) ``cli``: wall time of ``tac-ecg predict RECORD`` against ``python -c "import torch"``, of a folder of records
    against one record, and ``python -X importtime`` of ``import tac_ecg_hf``.

Everything runs on one torch thread by default (``--threads``). The variants of a section are timed in interleaved
rounds with a rotating order (``common.interleaved``), so that load from other processes hits them alike; ratios are
per-round ratios. Writes ``speed.json``, ``speed.md``, ``SPEED_SECTION.md`` (the section of ``benchmarks/RESULTS.md``)
and PNGs to ``--out``.

    python benchmarks/bench_speed.py                            # the full run (about 30 min on 2 idle cores)
    python benchmarks/bench_speed.py --quick --out /tmp/speed   # small settings, no compile: under a minute
    python benchmarks/bench_speed.py --sections forward bulk    # some sections only
    python benchmarks/bench_speed.py --render-only              # re-render the markdown and PNGs from speed.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

import common

SECTIONS = ("forward", "bulk", "train", "memory", "cli")
DEFAULT_MODEL = "tac-ecg/xresnet1d101-cetp"  # the CLI's default
#: name -> (dtype, compile) for ECGTaskClassifier.set_precision
VARIANTS = {
    "fp32": ("fp32", False),
    "bf16": ("bf16", False),
    "compile": ("fp32", True),
    "compile+bf16": ("bf16", True),
}
TARGETS = {  # name -> (threshold, ">=" or "<=", what)
    "bulk_vs_forward_fp32": (0.7, ">=", "bulk records/s / forward-only records/s, fp32"),
    "bulk_best_vs_forward_fp32_eager": (2.0, ">=", "bulk records/s ({best}) / forward-only records/s in fp32 eager"),
    "adapter_vs_full_train_fp32": (1.5, ">=", "adapter / full fine-tuning training steps/s, fp32"),
    "adapter_vs_full_train_bf16": (1.5, ">=", "adapter / full fine-tuning training steps/s, bf16 autocast"),
    "memory_growth": (1.10, "<=", "peak RSS at the most records / at the fewest (flat: within 10 %)"),
    "cli_single_vs_import_torch": (
        2.5,
        "<=",
        "`tac-ecg predict RECORD` wall / `python -c 'import torch'` (best of N)",
    ),
    "cli_folder_vs_single": (
        3.0,
        "<=",
        "`tac-ecg predict DIR --out x.csv` ({n} records) wall / one record (best of N)",
    ),
}


# ------------------------------------------------------------------------------------------------ shared state


class Context:
    """What the sections share: the records, their windows, loaded classifiers, a temporary folder."""

    def __init__(self, args, tmp: Path):
        from tac_ecg_hf.bulk import expand_inputs

        self.args, self.tmp = args, Path(tmp)
        source = args.data_dir / "cpsc2018"
        if not (source / "A0001.hea").is_file():
            raise SystemExit(
                f"CPSC2018 records not found in {source}: pass --data-dir (the folder holding cpsc2018/)."
            )
        self.all_records = [Path(p) for p in expand_inputs([source])]
        self.records = self.all_records[: args.records]
        self.folder = self.link_records(self.tmp / "records", self.records)
        # (b) runs over --bulk-copies links of each record in as many subfolders: an archive larger than one batch
        # of records, so that the fixed cost of filling and draining the pipeline does not dominate the ratio
        self.bulk_folder, self.bulk_records = self.tmp / "archive", []
        for k in range(args.bulk_copies):
            copy = self.link_records(self.bulk_folder / f"copy{k}", self.records)
            self.bulk_records += [copy / p.name for p in self.records]
        self._classifiers: dict = {}
        self._windows: dict = {}
        self._outs = 0

    @staticmethod
    def link_records(folder: Path, headers: list[Path]) -> Path:
        """A folder of symbolic links to the records of ``headers`` (each header with its signal files)."""
        folder.mkdir(parents=True, exist_ok=True)
        for header in headers:
            for f in header.parent.glob(header.stem + ".*"):
                if not (folder / f.name).exists():
                    (folder / f.name).symlink_to(f.resolve())
        return folder

    def classifier(self, model: str, variant: str):
        """An ``ECGTaskClassifier`` for ``--task`` in ``variant`` precision (loaded once, compiled on first use)."""
        from tac_ecg_hf.inference import ECGTaskClassifier

        key = (model, variant)
        if key not in self._classifiers:
            dtype, compile_ = VARIANTS[variant]
            clf = ECGTaskClassifier.from_pretrained(model, tasks=[self.args.task])
            self._classifiers[key] = clf.set_precision(dtype, compile=compile_)
        return self._classifiers[key]

    def windows(self, model: str):
        """All inference windows of the records, as the model's feature extractor prepares them."""
        import numpy as np

        from tac_ecg_hf.data import read_record

        if model not in self._windows:
            fe = self.classifier(model, "fp32").feature_extractor(self.args.task)
            parts = [np.concatenate(list(fe.iter_windows(fe.prepare(read_record(p))))) for p in self.records]
            self._windows[model] = np.concatenate(parts)
        return self._windows[model]

    def new_out(self, suffix: str = ".csv") -> Path:
        self._outs += 1
        return self.tmp / f"out-{self._outs}{suffix}"


def batches(windows, size: int) -> list:
    return [windows[i : i + size] for i in range(0, len(windows), size)]


def first_call_seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cli_flags(args) -> list[str]:
    """``--task`` and, where they differ from the CLI's defaults, ``--model`` and ``--threads``: what a user types."""
    flags = ["--task", args.task] + (["--model", args.models[0]] if args.models[0] != DEFAULT_MODEL else [])
    return flags + (["--threads", str(args.threads)] if args.threads != 1 else [])


def tac_ecg_command() -> list[str]:
    """The ``tac-ecg`` console script of this interpreter's environment, else ``python -m tac_ecg_hf.cli``."""
    script = Path(sys.executable).with_name("tac-ecg")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tac_ecg_hf.cli"]


# ------------------------------------------------------------------------------------------------ (a) forward


def bench_forward(ctx: Context) -> dict:
    import torch

    args, out = ctx.args, {}
    names = [v for v in VARIANTS if args.compile or not VARIANTS[v][1]]
    for model in args.models:
        windows = ctx.windows(model)
        batch = windows[: args.batch_size]
        clfs = {name: ctx.classifier(model, name) for name in names}
        # the first call compiles (torch.compile) or creates the oneDNN primitives (eager)
        first = {name: first_call_seconds(lambda c=c: c.logits(batch, args.task)) for name, c in clfs.items()}
        fns = {name: (lambda c=c: c.logits(batch, args.task)) for name, c in clfs.items()}
        measured, per_round = common.interleaved(fns, args.rounds, args.min_run_time, f"forward {model}", args.threads)
        probs = {n: c.probabilities(c.logits(batch, args.task), args.task) for n, c in clfs.items()}
        base = clfs["fp32"].model
        encoder = getattr(base, "get_base_model", lambda: base)().encoder
        with torch.no_grad():
            x = torch.as_tensor(batch)
            ref = encoder(input_values=x).pooler_output
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = encoder(input_values=x).pooler_output.float()
        out[model] = {
            "batch_windows": len(batch),
            "variants": {n: {**common.summary(m, len(batch)), "first_call_s": first[n]} for n, m in measured.items()},
            "speedup_vs_fp32": {n: common.ratio(per_round, "fp32", n) for n in names if n != "fp32"},
            "bf16_pooled_rel_error": float((low - ref).norm() / ref.norm()),
            "max_abs_dprob_vs_fp32": {n: float(abs(p - probs["fp32"]).max()) for n, p in probs.items() if n != "fp32"},
        }
        print(f"  {model}: " + ", ".join(f"{n} {v['per_s']:.0f}/s" for n, v in out[model]["variants"].items()))
    return out


# ------------------------------------------------------------------------------------------------ (b) bulk


def bench_bulk(ctx: Context) -> dict:
    import numpy as np
    import pandas as pd

    from tac_ecg_hf.bulk import bulk_predict
    from tac_ecg_hf.data import read_record

    args, model, task = ctx.args, ctx.args.models[0], ctx.args.task
    best = "compile+bf16" if args.compile else "bf16"
    windows = np.concatenate([ctx.windows(model)] * args.bulk_copies)
    parts = batches(windows, args.batch_size)
    summaries, outs, fns, warm = {}, {}, {}, {}
    for precision in ("fp32", best):
        clf = ctx.classifier(model, precision)
        # compile for every batch shape of the run (full batches and the remainder) before timing
        warm[precision] = sum(
            first_call_seconds(lambda b=b: clf.logits(b, task)) for b in {len(b): b for b in parts}.values()
        )

        def bulk(clf=clf, precision=precision):
            outs[precision] = ctx.new_out()
            summaries[precision] = bulk_predict(
                clf,
                [ctx.bulk_folder],
                [task],
                outs[precision],
                batch_size=args.batch_size,
                num_workers=args.workers,
                num_threads=args.threads,  # as the forward-only runs it is compared with
                progress=False,
            )

        def forward(clf=clf):
            for b in parts:
                clf.logits(b, task)

        fns[f"bulk {precision}"], fns[f"forward {precision}"] = bulk, forward
    clf32 = ctx.classifier(model, "fp32")
    fns["single-record loop fp32"] = lambda: [clf32.predict(p, task) for p in ctx.bulk_records]
    fe = clf32.feature_extractor(task)  # what the DataLoader workers do, here in one process
    fns["read+prepare only"] = lambda: [
        list(fe.iter_windows(fe.prepare(read_record(p)))) for p in ctx.bulk_records
    ]
    for fn in fns.values():  # one untimed round: DataLoader, file cache, allocator
        fn()
    measured, per_round = common.interleaved(fns, args.bulk_rounds, 0.0, "bulk", args.threads, once=True)
    n = len(ctx.bulk_records)
    # The most a bulk run could do on this machine's CPUs, if they were never idle and handing records over cost
    # nothing: every record needs a reader's work (read + prepare) and the model's (the forward of its windows), so
    # on C CPUs the best time for the archive is (read+prepare + forward) / C; the same per round as the ratios.
    from tac_ecg_hf.bulk import usable_cpus

    cpus = usable_cpus()
    least = [(r["read+prepare only"] + r[f"forward {best}"]) / cpus for r in per_round]  # seconds for the archive
    bound = [r["forward fp32"] / t for r, t in zip(per_round, least)]
    busy = [t / r[f"bulk {best}"] for r, t in zip(per_round, least)]  # how close the run came to it
    frames = {p: pd.read_csv(path) for p, path in outs.items()}
    prob_columns = [c for c in frames["fp32"].columns if c.startswith("prob/")]
    return {
        "model": model,
        "records": n,
        "copies": ctx.args.bulk_copies,
        "windows": len(windows),
        "workers": args.workers,
        "batch_size": args.batch_size,
        "best": best,
        "warmup_s": warm,
        "variants": {name: common.summary(m, n) for name, m in measured.items()},
        "ratios": {
            "bulk_vs_forward_fp32": common.ratio(per_round, "forward fp32", "bulk fp32"),
            f"bulk_vs_forward_{best}": common.ratio(per_round, f"forward {best}", f"bulk {best}"),
            f"bulk_{best}_vs_forward_fp32": common.ratio(per_round, "forward fp32", f"bulk {best}"),
            "read_prepare_vs_forward_fp32": common.ratio(per_round, "forward fp32", "read+prepare only"),
            "bulk_fp32_vs_single_loop": common.ratio(per_round, "single-record loop fp32", "bulk fp32"),
            f"bulk_{best}_vs_single_loop": common.ratio(per_round, "single-record loop fp32", f"bulk {best}"),
        },
        "cpus": cpus,
        "cpu_bound": {
            f"bulk_{best}_vs_forward_fp32_at_most": common.stats(bound),
            f"bulk_{best}_share_of_the_bound": common.stats(busy),
        },
        "rows_failed": {p: int(s.failed) for p, s in summaries.items()},
        "rows_written": {p: int(s.rows) for p, s in summaries.items()},
        "max_abs_dprob_bulk_best_vs_fp32": float(
            (frames[best][prob_columns] - frames["fp32"][prob_columns]).abs().max().max()
        ),
    }


# ------------------------------------------------------------------------------------------------ (c) train


def build_trainee(encoder: str, method: str, task: str, samples: int):
    """A randomly initialised classifier for ``task``: ``full`` (all weights trainable) or ``adapter`` (one serial
    LRC-Adapter, rank 8, on the frozen encoder). Random weights: speed does not depend on them."""
    import peft
    import torch
    from transformers import AutoModelForSequenceClassification

    from tac_ecg_hf import create_encoder_config, get_task
    from tac_ecg_hf.adapters.lrc import LRCConfig

    spec = get_task(task)
    preset, overrides = common.resolve_encoder(encoder)
    config = create_encoder_config(
        preset,
        **overrides,
        num_samples=samples,
        num_labels=spec.num_labels,
        id2label=spec.id2label,
        label2id=spec.label2id,
        problem_type=spec.problem_type,
    )
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    if method == "adapter":
        model = peft.get_peft_model(model, LRCConfig.for_task(task, r=8), adapter_name=task)
    return model


def bench_train(ctx: Context) -> dict:
    import torch

    from tac_ecg_hf import get_task

    args, task = ctx.args, ctx.args.task
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.train_batch, 12, args.train_samples, generator=g)
    y = (torch.rand(args.train_batch, get_task(task).num_labels, generator=g) > 0.7).float()
    fns, params = {}, {}
    for precision in ("fp32", "bf16"):
        for method in ("adapter", "full"):
            model = build_trainee(args.train_encoder, method, task, args.train_samples).train()
            trainable = [p for p in model.parameters() if p.requires_grad]
            params[method] = sum(p.numel() for p in trainable)
            optimizer = torch.optim.AdamW(trainable, lr=1e-4)
            autocast = (
                (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
                if precision == "bf16"
                else contextlib.nullcontext
            )

            def step(model=model, optimizer=optimizer, autocast=autocast):
                with autocast():
                    loss = model(input_values=x, labels=y).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            for _ in range(2):  # optimizer state, oneDNN primitives
                step()
            fns[f"{method} {precision}"] = step
    measured, per_round = common.interleaved(fns, args.rounds, args.min_run_time, "train step", args.threads)
    return {
        "encoder": args.train_encoder,
        "batch_size": args.train_batch,
        "samples": args.train_samples,
        "trainable_params": params,
        "variants": {name: common.summary(m, args.train_batch) for name, m in measured.items()},
        "ratios": {
            "adapter_vs_full_fp32": common.ratio(per_round, "full fp32", "adapter fp32"),
            "adapter_vs_full_bf16": common.ratio(per_round, "full bf16", "adapter bf16"),
            "bf16_vs_fp32_adapter": common.ratio(per_round, "adapter fp32", "adapter bf16"),
            "bf16_vs_fp32_full": common.ratio(per_round, "full fp32", "full bf16"),
        },
    }


# ------------------------------------------------------------------------------------------------ (d) memory


def bench_memory(ctx: Context) -> dict:
    """Peak RSS of ``tac-ecg predict DIR --out x.csv`` as the folder grows: symbolic links to a few real 10 s records
    (one window each), grown in place from the smallest size to the largest."""
    import wfdb

    args = ctx.args
    ten_seconds = [p for p in ctx.all_records if (h := wfdb.rdheader(str(p.with_suffix("")))).sig_len == 10 * h.fs]
    sources = ten_seconds[:8] or ctx.all_records[:8]
    folder = ctx.link_records(ctx.tmp / "many", sources)
    made = len(sources)
    rows = []
    for size in sorted(args.memory_sizes):
        start = time.perf_counter()
        while made < size:
            (folder / f"R{made:07d}.hea").symlink_to(sources[made % len(sources)].resolve())
            made += 1
        link_s = time.perf_counter() - start
        out = ctx.new_out()
        cmd = tac_ecg_command() + [
            "predict",
            str(folder),
            "--out",
            str(out),
            "--quiet",
            "--workers",
            str(args.workers),
        ]
        cmd += cli_flags(args) + (["--batch-size", str(args.batch_size)] if args.batch_size != 64 else [])
        run = common.run_measured(cmd, env=common.child_env(args.threads), sample_every=0.5)
        with open(out) as f:
            written = sum(1 for _ in f) - 1
        out.unlink()
        rows.append(
            {
                "records": made,
                "rows_written": written,
                "wall_s": run["wall_s"],
                "records_per_s": made / run["wall_s"],
                "peak_rss_mb": run["peak_rss_mb"],
                "tree_pss_peak_mb": run["tree_pss_peak_mb"],
                "link_s": link_s,
            }
        )
        print(f"  {made} records: {run['wall_s']:.1f} s, peak RSS {run['peak_rss_mb']:.0f} MB")
    first, last = rows[0], rows[-1]
    shown = shlex.join(["tac-ecg", *cmd[len(tac_ecg_command()) :]])
    return {
        "model": args.models[0],
        "sources": [p.stem for p in sources],
        "command": shown.replace(str(folder), "DIR").replace(str(out), "x.csv"),
        "runs": rows,
        "growth": last["peak_rss_mb"] / first["peak_rss_mb"],
        "delta_mb": last["peak_rss_mb"] - first["peak_rss_mb"],
    }


# ------------------------------------------------------------------------------------------------ (e) cli


def importtime(cmd: list[str], env: dict, top: int = 12) -> dict:
    """``python -X importtime`` of ``cmd``: total, self time summed per top-level package, slowest modules."""
    import subprocess

    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    entries = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            entries.append((int(m[1]) / 1e6, int(m[2]) / 1e6, len(m[3]) // 2, m[4]))
    packages: dict[str, float] = {}
    for self_s, _, _, name in entries:
        packages[name.split(".")[0]] = packages.get(name.split(".")[0], 0.0) + self_s
    slowest = sorted(entries, key=lambda e: -e[0])[:top]
    return {
        "command": shlex.join(["python", "-X", "importtime", *cmd[3:]]).replace(tac_ecg_command()[0], "tac-ecg"),
        "returncode": proc.returncode,
        "total_s": sum(e[0] for e in entries),
        "by_package_s": dict(sorted(packages.items(), key=lambda kv: -kv[1])[:top]),
        "slowest_modules_self_s": {name: s for s, _, _, name in slowest},
    }


def bench_cli(ctx: Context) -> dict:
    args = ctx.args
    env = common.child_env(args.threads)
    tac = tac_ecg_command()
    record = str(ctx.records[0])
    common_flags = cli_flags(args)
    n = len(ctx.records)
    commands = {
        "import torch": lambda: [sys.executable, "-c", "import torch"],
        "predict 1 record": lambda: tac + ["predict", record] + common_flags,
        f"predict DIR ({n} records)": lambda: (
            tac
            + ["predict", str(ctx.folder), "--out", str(ctx.new_out()), "--quiet", "--workers", str(args.workers)]
            + common_flags
        ),
    }
    peaks: dict[str, float] = {}

    def runner(name):
        def run():
            result = common.run_measured(commands[name](), env=env)
            peaks[name] = max(peaks.get(name, 0.0), result["peak_rss_mb"])
            return result

        return run

    # the launcher's own wall time is the child's (not the launcher's start-up): take it, not the Timer's
    walls: dict[str, list[float]] = {name: [] for name in commands}
    fns = {name: (lambda name=name: walls[name].append(runner(name)()["wall_s"])) for name in commands}
    common.interleaved(fns, args.cli_rounds, 0.0, "cli", args.threads, once=True)
    best = {name: min(w) for name, w in walls.items()}
    single, folder = "predict 1 record", f"predict DIR ({n} records)"
    per_round = [{name: walls[name][r] for name in commands} for r in range(args.cli_rounds)]
    shown = ["tac-ecg"] + commands[single]()[len(tac) :]
    out = {
        "commands": {
            "import torch": 'python -c "import torch"',
            single: " ".join(shown),
            folder: f"tac-ecg predict DIR --out x.csv --quiet --workers {args.workers} " + " ".join(common_flags),
        },
        "records": n,
        "walls_s": walls,
        "best_s": best,
        "peak_rss_mb": peaks,
        "ratios": {
            "single_vs_import_torch_best": best[single] / best["import torch"],
            # these are ratios of wall times (lower is better): common.ratio of the time of base over other
            "single_vs_import_torch": common.ratio(per_round, single, "import torch"),
            "folder_vs_single_best": best[folder] / best[single],
            "folder_vs_single": common.ratio(per_round, folder, single),
        },
        "importtime": {
            "import tac_ecg_hf": importtime([sys.executable, "-X", "importtime", "-c", "import tac_ecg_hf"], env)
        },
    }
    if not args.quick:
        cmd = [sys.executable, "-X", "importtime"] + (tac if tac[0] != sys.executable else tac[1:])
        out["importtime"]["tac-ecg predict 1 record"] = importtime(cmd + ["predict", record] + common_flags, env)
    return out


# ------------------------------------------------------------------------------------------------ report


def targets(results: dict) -> list[dict]:
    """Each target of issue 12 that the sections run can check: value, threshold and whether it is met."""
    values = {}
    if "bulk" in results:
        bulk = results["bulk"]
        values["bulk_vs_forward_fp32"] = bulk["ratios"]["bulk_vs_forward_fp32"]["median"]
        values["bulk_best_vs_forward_fp32_eager"] = bulk["ratios"][f"bulk_{bulk['best']}_vs_forward_fp32"]["median"]
    if "train" in results:
        values["adapter_vs_full_train_fp32"] = results["train"]["ratios"]["adapter_vs_full_fp32"]["median"]
        values["adapter_vs_full_train_bf16"] = results["train"]["ratios"]["adapter_vs_full_bf16"]["median"]
    if "memory" in results and len(results["memory"]["runs"]) > 1:
        values["memory_growth"] = results["memory"]["growth"]
    if "cli" in results:
        values["cli_single_vs_import_torch"] = results["cli"]["ratios"]["single_vs_import_torch_best"]
        values["cli_folder_vs_single"] = results["cli"]["ratios"]["folder_vs_single_best"]
    fill = {"best": results.get("bulk", {}).get("best"), "n": results.get("cli", {}).get("records")}
    rows = []
    for name, value in values.items():
        threshold, op, what = TARGETS[name]
        met = value >= threshold if op == ">=" else value <= threshold
        rows.append(
            {"name": name, "what": what.format(**fill), "value": value, "target": f"{op} {threshold}", "met": met}
        )
    return rows


def speed_table(variants: dict, unit: str, ratios: dict | None = None, base: str | None = None) -> str:
    """One row per variant: items/s at the median, median and IQR of the time, repeats, [speed-up over ``base``]."""
    headers, rows = ["variant", unit, "median ms (IQR)", "n"], []
    for name, v in variants.items():
        rows.append([name, v["per_s"], f"{1e3 * v['median_s']:.1f} ({1e3 * v['iqr_s']:.1f})", v["n"]])
        if ratios is not None:
            r = ratios.get(name)
            rows[-1].append("1.00" if name == base else f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})")
    if ratios is not None:
        headers.append(f"speed-up over {base} (rounds min-max)")
    return common.markdown_table(headers, rows)


def body_markdown(results: dict, image_dir: str) -> str:
    """The tables and plots of ``results``; images linked as ``image_dir/NAME.png``."""
    parts = []
    tg = results.get("targets")
    if tg:
        rows = [[t["what"], t["value"], t["target"], t["met"]] for t in tg]
        parts.append(
            "**Targets of issue 12**\n\n" + common.markdown_table(["measure", "value", "target", "met"], rows)
        )
    if "forward" in results:
        text = "**(a) Forward** (batch of real CPSC2018 windows, 12 x 1000 samples, one thread)\n\n"
        for model, r in results["forward"].items():
            text += f"`{model}`, batch {r['batch_windows']}:\n\n"
            text += speed_table(r["variants"], "windows/s", r["speedup_vs_fp32"], "fp32") + "\n\n"
            compile_s = {n: v["first_call_s"] for n, v in r["variants"].items() if VARIANTS[n][1]}
            text += (
                f"bf16 relative error of the pooled features: {r['bf16_pooled_rel_error']:.2%}; max |dp| against "
                f"fp32: " + ", ".join(f"{n} {v:.4f}" for n, v in r["max_abs_dprob_vs_fp32"].items()) + ". "
            )
            if compile_s:
                text += "First call (compilation): " + ", ".join(f"{n} {v:.0f} s" for n, v in compile_s.items()) + "."
            text += "\n\n"
        parts.append(text + f"![forward throughput]({image_dir}/speed_forward.png)")
    if "bulk" in results:
        b = results["bulk"]
        text = (
            f"**(b) Bulk prediction** of {b['records']} CPSC2018 WFDB records ({b['windows']} windows; "
            f"{b.get('copies', 1)} links to each of the {b['records'] // b.get('copies', 1)} real records) with "
            f"`{b['model']}`, `bulk_predict(..., batch_size={b['batch_size']}, num_workers={b['workers']})`, "
            "against a loop of `ECGTaskClassifier.predict`, the forward alone on the same windows, and reading + "
            "preparing the records in one process (what the workers do)\n\n"
        )
        text += speed_table(b["variants"], "records/s") + "\n\n"
        text += common.markdown_table(
            ["ratio of speeds (records/s)", "median", "rounds min-max"],
            [
                [k.replace("_vs_", " / "), r["median"], f"{r['min']:.2f}-{r['max']:.2f}"]
                for k, r in b["ratios"].items()
            ],
        )
        if "cpu_bound" in b:
            at_most = b["cpu_bound"][f"bulk_{b['best']}_vs_forward_fp32_at_most"]
            share = b["cpu_bound"][f"bulk_{b['best']}_share_of_the_bound"]
            text += (
                f"\n\nThe CPU bound: on {b['cpus']} CPU(s) a record needs a reader's work and the model's, so bulk "
                f"{b['best']} can be at most (read+prepare + forward {b['best']}) / {b['cpus']} per record: "
                f"**{at_most['median']:.2f}x** the fp32 eager forward (rounds {at_most['min']:.2f}-"
                f"{at_most['max']:.2f}); the run reached {share['median']:.0%} of that bound."
            )
        text += (
            f"\n\nFailed rows: {b['rows_failed']}; max |dp| between the bulk {b['best']} and fp32 outputs: "
            f"{b['max_abs_dprob_bulk_best_vs_fp32']:.4f}. Warm-up (compile for each batch shape), not timed: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in b["warmup_s"].items())
            + f".\n\n![bulk throughput]({image_dir}/speed_bulk.png)"
        )
        parts.append(text)
    if "train" in results:
        t = results["train"]
        text = (
            f"**(c) Training steps** (forward + backward + AdamW, batch {t['batch_size']} x 12 x {t['samples']}, "
            f"`{t['encoder']}`; trainable parameters: adapter {t['trainable_params']['adapter']:,}, full "
            f"{t['trainable_params']['full']:,})\n\n"
        )
        text += speed_table(t["variants"], "samples/s") + "\n\n"
        text += common.markdown_table(
            ["speed-up", "median", "rounds min-max"],
            [
                [k.replace("_vs_", " / "), r["median"], f"{r['min']:.2f}-{r['max']:.2f}"]
                for k, r in t["ratios"].items()
            ],
        )
        parts.append(text + f"\n\n![training throughput]({image_dir}/speed_train.png)")
    if "memory" in results:
        m = results["memory"]
        rows = [
            [r["records"], r["rows_written"], r["wall_s"], r["records_per_s"], r["peak_rss_mb"], r["tree_pss_peak_mb"]]
            for r in m["runs"]
        ]
        text = (
            f"**(d) Memory of bulk runs**: `{m['command']}` over folders of symbolic links to {len(m['sources'])} "
            "real 10 s records; peak RSS = the kernel's peak of the largest process (`ru_maxrss` under a small "
            "launcher), tree = largest 0.5 s sample of the summed PSS of the main process and its DataLoader "
            "workers (shared pages split between them)\n\n"
        )
        text += common.markdown_table(["records", "rows", "wall s", "records/s", "peak RSS MB", "tree PSS MB"], rows)
        text += (
            f"\n\nGrowth of the peak from {m['runs'][0]['records']:,} to {m['runs'][-1]['records']:,} records: "
            f"x{m['growth']:.3f} ({m['delta_mb']:+.1f} MB).\n\n"
            f"![memory vs records]({image_dir}/speed_memory.png)"
        )
        parts.append(text)
    if "cli" in results:
        c = results["cli"]
        rows = [[c["commands"][n], min(w), max(w), len(w), c["peak_rss_mb"][n]] for n, w in c["walls_s"].items()]
        text = "**(e) Command line** (alternated rounds; wall of the process)\n\n" + common.markdown_table(
            ["command", "best s", "worst s", "n", "peak RSS MB"], rows
        )
        for what, imp in c["importtime"].items():
            text += (
                f"\n\n`{imp['command']}`: {imp['total_s']:.2f} s of imports; by top-level package (self time): "
                + ", ".join(f"{k} {v:.2f} s" for k, v in imp["by_package_s"].items())
                + "; slowest modules: "
                + ", ".join(f"`{k}` {v:.2f} s" for k, v in list(imp["slowest_modules_self_s"].items())[:6])
                + "."
            )
        parts.append(text + f"\n\n![command line walls]({image_dir}/speed_cli.png)")
    return "\n\n".join(parts)


def plots(results: dict, out: Path) -> list[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from tac_ecg_hf.plotting import plot_throughput

    threads, paths = results["machine"]["torch_threads"], []

    def bars(name, triples, title, ylabel):
        plot_throughput(triples, out / name, title=title, ylabel=ylabel)
        paths.append(str(out / name))

    if "forward" in results:
        bars(
            "speed_forward.png",
            [
                (m.split("/")[-1], n, v["per_s"])
                for m, r in results["forward"].items()
                for n, v in r["variants"].items()
            ],
            f"Forward, {threads} thread(s)",
            "10 s windows / s",
        )
    if "bulk" in results:
        b = results["bulk"]
        triples = [
            (p, kind, b["variants"][f"{kind} {p}"]["per_s"])
            for p in ("fp32", b["best"])
            for kind in ("bulk", "forward")
            if f"{kind} {p}" in b["variants"]
        ]
        triples.append(("fp32", "single-record loop", b["variants"]["single-record loop fp32"]["per_s"]))
        triples.append(("fp32", "read+prepare only", b["variants"]["read+prepare only"]["per_s"]))
        bars(
            "speed_bulk.png",
            triples,
            f"{b['records']} CPSC2018 records, {threads} thread(s), {b['workers']} worker(s)",
            "records / s",
        )
    if "train" in results:
        bars(
            "speed_train.png",
            [(n.split()[1], n.split()[0], v["per_s"]) for n, v in results["train"]["variants"].items()],
            f"Training steps, {results['train']['encoder']}, {threads} thread(s)",
            "samples / s",
        )
    if "cli" in results:
        c = results["cli"]
        bars("speed_cli.png", {n: 1e3 * s for n, s in c["best_s"].items()}, "Command-line wall time (best of N)", "ms")
    if "memory" in results:
        runs = results["memory"]["runs"]
        fig = Figure(figsize=(6, 4), dpi=90)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        xs = [r["records"] for r in runs]
        ax.plot(xs, [r["peak_rss_mb"] for r in runs], "o-", label="peak RSS, largest process")
        ax.plot(xs, [r["tree_pss_peak_mb"] for r in runs], "s--", label="sampled PSS, process + workers")
        ax.set(xscale="log", xlabel="records in the folder", ylabel="MB", title="Memory of tac-ecg predict DIR --out")
        ax.set_ylim(0, 1.2 * max(r["tree_pss_peak_mb"] for r in runs))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "speed_memory.png", facecolor="white")
        paths.append(str(out / "speed_memory.png"))
    return paths


SECTION_INTRO = """`benchmarks/bench_speed.py` measures, on one torch thread, what issue 12 asks for: the forward
in fp32 / bf16 autocast / `torch.compile` / compile + bf16; end-to-end bulk prediction from WFDB files against
single-record predictions and against the forward alone; adapter against full fine-tuning training steps; the memory
of bulk runs as the number of records grows; the command line's wall time. Within a section the variants are timed in
interleaved rounds with a rotating order (`torch.utils.benchmark` for the statistics), so that load from other
processes hits all of them alike; ratios are per-round ratios (median and range). Full JSON and markdown:
`benchmarks/results/speed.*`."""


def render(results: dict, out: Path) -> dict:
    """Write speed.json, speed.md, SPEED_SECTION.md and the PNGs for ``results``."""
    out.mkdir(parents=True, exist_ok=True)
    results["targets"] = targets(results)
    results["plots"] = plots(results, out)
    header = common.header_markdown(results)
    if results["settings"].get("quick"):
        header += "\n\n**--quick run: small settings for a smoke test, not a measurement.**"
    (out / "speed.md").write_text(f"{header}\n\n{body_markdown(results, '.')}\n")
    rel = os.path.relpath(out, Path(__file__).resolve().parent)
    (out / "SPEED_SECTION.md").write_text(
        f"## Speed (CPU)\n\n{SECTION_INTRO}\n\n{header}\n\n{body_markdown(results, rel)}\n"
    )
    common.write_json(out / "speed.json", results)
    print(
        f"\n{body_markdown(results, '.')}\n\nwrote {out}/speed.json, speed.md, SPEED_SECTION.md and "
        f"{len(results['plots'])} PNGs"
    )
    return results


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    data = os.environ.get("TAC_ECG_DATA") or str(common.REPO_ROOT.parent / "shared" / "data")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument(
        "--data-dir", type=Path, default=Path(data), help="folder holding cpsc2018/ (default $TAC_ECG_DATA)"
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=["tac-ecg/xresnet1d101-cetp", "tac-ecg/resnet-cetp"],
        help="models of (a); the first one is used by (b), (d) and (e)",
    )
    p.add_argument("--task", default="cpsc2018")
    p.add_argument("--threads", type=int, default=1, help="torch threads (and OMP_NUM_THREADS of child processes)")
    p.add_argument("--records", type=int, default=120, help="CPSC2018 records of (b) and (e)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per forward")
    p.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers of bulk runs (default: the package's default)"
    )
    p.add_argument("--bulk-copies", type=int, default=4, help="links of each record in the archive of (b)")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="leave out the torch.compile variants")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of (a) and (c)")
    p.add_argument("--min-run-time", type=float, default=1.0, help="seconds per variant and round in (a) and (c)")
    p.add_argument("--bulk-rounds", type=int, default=3)
    p.add_argument("--cli-rounds", type=int, default=5)
    p.add_argument("--train-encoder", default="xresnet1d101")
    p.add_argument("--train-batch", type=int, default=32)
    p.add_argument("--train-samples", type=int, default=1000)
    p.add_argument("--memory-sizes", nargs="+", type=int, default=[1000, 10_000, 100_000], help="records per bulk run")
    p.add_argument("--quick", action="store_true", help="small settings for a smoke test (no compile, < 1 min)")
    p.add_argument("--out", type=Path, default=common.default_out_dir())
    p.add_argument("--render-only", action="store_true", help="re-render from OUT/speed.json")
    args = p.parse_args(argv)
    if args.workers is None:
        from tac_ecg_hf.bulk import default_num_workers

        args.workers = default_num_workers()
    if args.quick:
        args.models = args.models if "--models" in (argv or sys.argv) else ["tac-ecg/resnet-cetp"]
        args.compile, args.records, args.batch_size = False, min(args.records, 12), min(args.batch_size, 16)
        args.bulk_copies = 1
        args.rounds, args.min_run_time, args.bulk_rounds, args.cli_rounds = 2, 0.05, 1, 1
        args.train_encoder, args.train_batch = "xresnet1d-tiny", min(args.train_batch, 4)
        args.memory_sizes = [8, 24]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.render_only:
        return render(json.loads((args.out / "speed.json").read_text()), args.out)
    started = time.perf_counter()
    info = common.setup(args.threads)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "render_only"}
    results = {"benchmark": "speed", "command": common.command_line(), "machine": info, "settings": settings}
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
        ctx = Context(args, Path(tmp))
        results["section_s"] = {}
        for name in args.sections:
            t0 = time.perf_counter()
            print(f"({'abcde'[SECTIONS.index(name)]}) {name} ...", flush=True)
            results[name] = globals()[f"bench_{name}"](ctx)
            results["section_s"][name] = time.perf_counter() - t0
            print(f"    {results['section_s'][name]:.1f} s, load average {common.loadavg()}", flush=True)
    common.finish_machine_info(info)
    results["elapsed_s"] = time.perf_counter() - started
    return render(results, args.out)


if __name__ == "__main__":
    main()
