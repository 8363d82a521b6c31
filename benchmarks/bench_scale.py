#!/usr/bin/env python
"""How time and memory grow with record length and batch size, on CPU (LRC-Adapter model).

Two sweeps per encoder (default ``xresnet1d101`` and ``resnet1d18``, random weights, one serial LRC-Adapter for
ptbxl-super):

* record length 250, 1000, 6000 samples (2.5 s, 10 s, 60 s at 100 Hz) at a fixed batch size (32);
* batch size 1, 8, 32, 128 at a fixed length (1000 samples);

each measured for inference (eval, ``no_grad``, adapter active) and for a training step of the adapter
(forward + backward + AdamW step on the adapter parameters, frozen encoder). ``--grid`` measures the full
cross product instead.

Every (encoder, length, batch) configuration runs in a fresh Python process. Inside it inference runs first, then
training, and the kernel's peak-RSS counter (``ru_maxrss`` / VmHWM) is reset before each (``/proc/self/clear_refs``),
so the two peaks do not mix; where that reset is impossible each mode gets its own process. The peak covers the
warm-up and timed repeats; the delta is taken against the RSS just before (model built, inputs allocated).

    python benchmarks/bench_scale.py                      # default sweeps (a few minutes on 2 cores)
    python benchmarks/bench_scale.py --quick --out /tmp/scale    # tiny encoder, seconds
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

MODES = ("inference", "train")
SAMPLING_RATE = 100


# ------------------------------------------------------------------------------------------------ worker


def scale_worker(spec: dict) -> dict:
    """In a fresh process: time and peak RSS of each mode in ``spec['modes']`` for one configuration."""
    import torch

    from tac_ecg_hf.training import count_parameters

    length, batch = spec["length"], spec["batch"]
    model = common.build_for_method(spec["encoder"], spec["method"], rank=spec["rank"], num_samples=length)
    trainable, total = count_parameters(model)
    x, y = common.make_batch("ptbxl-super", batch, length)
    out = {"encoder": spec["encoder"], "length": length, "batch": batch, "trainable_params": trainable,
           "total_params": total, "torch_threads": torch.get_num_threads(), "modes": {}}
    for mode in spec["modes"]:
        if mode == "inference":
            step, warmup = common.make_infer_step(model, x), spec["warmup_infer"]
        elif mode == "train":
            step, _ = common.make_train_step(model, x, y)
            warmup = spec["warmup_train"]
        else:
            raise ValueError(f"unknown mode {mode!r}")
        code_warm = common.make_code_warmup(model, num_samples=min(length, 128), train=mode == "train")
        holder = {}

        def run():
            holder["times"] = common.timed_repeats(step, warmup, spec["min_repeats"], spec["max_repeats"],
                                                   spec["min_seconds"], spec["max_seconds"])

        peak = common.measure_peak(run, warmup=code_warm)
        stats = common.throughput_summary(holder["times"], batch)
        stats["ms_per_sample"] = stats["step_ms_median"] / batch
        out["modes"][mode] = {**stats, **peak}
        del step
    return out


# ------------------------------------------------------------------------------------------------ driver


def configurations(args) -> list[tuple[int, int, list[str]]]:
    """(length, batch, sweeps it belongs to) in a stable order."""
    configs: dict[tuple[int, int], list[str]] = {}
    if args.grid:
        for length in args.lengths:
            for batch in args.batch_sizes:
                configs.setdefault((length, batch), []).append("grid")
    else:
        for length in args.lengths:
            configs.setdefault((length, args.fixed_batch), []).append("length")
        for batch in args.batch_sizes:
            configs.setdefault((args.fixed_length, batch), []).append("batch")
    return [(length, batch, sweeps) for (length, batch), sweeps in configs.items()]


def loglog_slope(xs: list[float], ys: list[float], floor: float = 0.0) -> float:
    """Least-squares slope of log(y) against log(x): y grows like x ** slope (NaN with < 2 points or any y <= floor)."""
    if len(xs) < 2 or any(y <= floor for y in ys):
        return math.nan
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den else math.nan


def fits(rows: list[dict], args) -> list[dict]:
    out = []
    for enc in args.encoders:
        for mode in args.modes:
            sel = [r for r in rows if r["encoder"] == enc and r["mode"] == mode]
            length_rows = sorted((r for r in sel if "length" in r["sweeps"] or ("grid" in r["sweeps"] and r["batch"] == args.fixed_batch)),
                                 key=lambda r: r["length"])
            batch_rows = sorted((r for r in sel if "batch" in r["sweeps"] or ("grid" in r["sweeps"] and r["length"] == args.fixed_length)),
                                key=lambda r: r["batch"])
            out.append({
                "encoder": enc,
                "mode": mode,
                "time_vs_length_exponent": loglog_slope([r["length"] for r in length_rows], [r["step_ms_median"] for r in length_rows]),
                "time_vs_batch_exponent": loglog_slope([r["batch"] for r in batch_rows], [r["step_ms_median"] for r in batch_rows]),
                "memory_vs_length_exponent": loglog_slope([r["length"] for r in length_rows],
                                                          [r["peak_rss_delta_mb"] for r in length_rows], floor=1.0),
                "memory_vs_batch_exponent": loglog_slope([r["batch"] for r in batch_rows],
                                                         [r["peak_rss_delta_mb"] for r in batch_rows], floor=1.0),
            })
    return out


def table(rows: list[dict], fit_rows: list[dict], settings: dict) -> str:
    body = []
    for r in rows:
        body.append([r["encoder"], r["mode"], r["length"], f"{r['length'] / SAMPLING_RATE:g} s", r["batch"],
                     r["step_ms_median"], f"{r['step_ms_p25']:.1f}-{r['step_ms_p75']:.1f}", r["samples_per_s"],
                     r["ms_per_sample"], r["peak_rss_delta_mb"], r["n_steps"]])
    text = (f"Model: {settings['method'].split('-')[1]} LRC-Adapter (rank {settings['rank']}) on a frozen encoder; "
            "train = forward + backward + "
            "AdamW step on the adapter; inference = eval + no_grad, adapter active.\n\n")
    text += common.markdown_table(
        ["encoder", "mode", "samples", "duration", "batch", "ms / batch (median)", "IQR ms", "samples/s", "ms / sample",
         "peak RSS delta MB", "repeats"], body)
    body = [[f["encoder"], f["mode"], f["time_vs_length_exponent"], f["time_vs_batch_exponent"],
             f["memory_vs_length_exponent"], f["memory_vs_batch_exponent"]] for f in fit_rows]
    text += ("\n\nLog-log slopes (1.0 = linear growth) of time per batch and of peak RSS delta; n/a where a "
             "memory delta is below 1 MB (measurement noise):\n\n")
    text += common.markdown_table(["encoder", "mode", "time vs length", "time vs batch", "memory vs length",
                                   "memory vs batch"], body)
    return text


def plot(rows: list[dict], args, path: Path, threads: int | None = None) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig = Figure(figsize=(10, 7.2), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    styles = {"inference": "-", "train": "--"}
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    for ei, enc in enumerate(args.encoders):
        for mode in args.modes:
            sel = [r for r in rows if r["encoder"] == enc and r["mode"] == mode]
            lr = sorted((r for r in sel if r["batch"] == args.fixed_batch), key=lambda r: r["length"])
            br = sorted((r for r in sel if r["length"] == args.fixed_length), key=lambda r: r["batch"])
            kw = dict(color=colors[ei % len(colors)], linestyle=styles[mode], marker="o", label=f"{enc} {mode}")
            if lr:
                axes[0, 0].plot([r["length"] / SAMPLING_RATE for r in lr], [r["step_ms_median"] for r in lr], **kw)
                axes[1, 0].plot([r["length"] / SAMPLING_RATE for r in lr], [max(r["peak_rss_delta_mb"], 0.1) for r in lr], **kw)
            if br:
                axes[0, 1].plot([r["batch"] for r in br], [r["ms_per_sample"] for r in br], **kw)
                axes[1, 1].plot([r["batch"] for r in br], [max(r["peak_rss_delta_mb"], 0.1) for r in br], **kw)
    axes[0, 0].set(title=f"time per batch vs record length (batch {args.fixed_batch})", xlabel="record length (s, 100 Hz)",
                   ylabel="ms / batch")
    axes[0, 1].set(title=f"time per sample vs batch size ({args.fixed_length / SAMPLING_RATE:g} s records)",
                   xlabel="batch size", ylabel="ms / sample")
    axes[1, 0].set(title="peak RSS delta vs record length", xlabel="record length (s, 100 Hz)", ylabel="MB")
    axes[1, 1].set(title="peak RSS delta vs batch size", xlabel="batch size", ylabel="MB")
    lengths_s = sorted({r["length"] / SAMPLING_RATE for r in rows if r["batch"] == args.fixed_batch})
    batches = sorted({r["batch"] for r in rows if r["length"] == args.fixed_length})
    label = FuncFormatter(lambda v, _: f"{v:g}")
    for ax, ticks in zip(axes.flat, [lengths_s, batches, lengths_s, batches]):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(label)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(label)
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.grid(which="both", alpha=0.3)
        ax.title.set_fontsize(9)
    axes[0, 0].legend(fontsize=7)
    if threads:
        fig.suptitle(f"CPU, {threads} torch thread(s); {args.method.split('-')[1]} LRC-Adapter, rank {args.rank}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=80, facecolor="white")
    return str(path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoders", nargs="+", default=None, help="encoder presets (default xresnet1d101 resnet1d18)")
    p.add_argument("--lengths", nargs="+", type=int, default=[250, 1000, 6000], help="record lengths in samples (100 Hz)")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 32, 128])
    p.add_argument("--fixed-batch", type=int, default=32, help="batch size of the length sweep")
    p.add_argument("--fixed-length", type=int, default=1000, help="record length of the batch sweep")
    p.add_argument("--grid", action="store_true", help="full lengths x batch sizes grid instead of two sweeps")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--method", choices=["lrc-serial", "lrc-parallel"], default="lrc-serial", help="adapter variant")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores)")
    p.add_argument("--warmup-infer", type=int, default=1)
    p.add_argument("--warmup-train", type=int, default=1)
    p.add_argument("--min-repeats", type=int, default=3)
    p.add_argument("--max-repeats", type=int, default=20)
    p.add_argument("--min-seconds", type=float, default=1.5, help="time each mode at least this long (after warm-up)")
    p.add_argument("--max-seconds", type=float, default=8.0,
                   help="cap per mode and configuration, warm-up included (fewer repeats when a step is slow)")
    p.add_argument("--separate-modes", action="store_true", help="one subprocess per mode (default: per configuration)")
    p.add_argument("--quick", action="store_true", help="tiny encoder, short records, small batches (smoke test)")
    p.add_argument("--out", type=Path, default=common.default_out_dir(), help="folder for scale.json, scale.md, scale.png")
    p.add_argument("--render-only", action="store_true", help="re-render scale.md and scale.png from OUT/scale.json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.threads = args.threads or 1  # robust on a busy machine; the smoke test checks plumbing, not speed
        args.encoders = args.encoders or ["xresnet1d-tiny"]
        args.lengths, args.batch_sizes = [250, 500], [1, 4]
        args.fixed_batch, args.fixed_length = 4, 250
        args.warmup_infer, args.warmup_train = 1, 1
        args.min_repeats, args.max_repeats, args.min_seconds = 2, 3, 0.0
    args.encoders = args.encoders or ["xresnet1d101", "resnet1d18"]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        common.worker_main(args.worker, scale_worker)
        return {}
    if args.render_only:
        return render(json.loads((args.out / "scale.json").read_text()), args.out)
    import warnings

    import transformers

    warnings.filterwarnings("ignore")
    transformers.utils.logging.disable_progress_bar()
    args.threads = common.set_threads(args.threads)
    start = time.perf_counter()
    info = common.machine_info()
    warning = common.contention_warning(info)
    if warning:
        print(warning, flush=True)
    separate = args.separate_modes or not common.reset_peak_rss()
    settings = {k: v for k, v in vars(args).items() if k not in ("worker", "out", "render_only")}
    settings["separate_mode_processes"] = separate
    rows = []
    for enc in args.encoders:
        for length, batch, sweeps in configurations(args):
            groups = [[m] for m in args.modes] if separate else [list(args.modes)]
            for modes in groups:
                spec = {"encoder": enc, "length": length, "batch": batch, "modes": modes, "method": args.method,
                        "rank": args.rank, "threads": args.threads, "warmup_infer": args.warmup_infer,
                        "warmup_train": args.warmup_train, "min_repeats": args.min_repeats,
                        "max_repeats": args.max_repeats, "min_seconds": args.min_seconds,
                        "max_seconds": args.max_seconds}
                t0 = time.perf_counter()
                res = common.run_worker(__file__, spec)
                for mode, stats in res["modes"].items():
                    rows.append({"encoder": enc, "mode": mode, "length": length, "batch": batch, "sweeps": sweeps,
                                 "trainable_params": res["trainable_params"], "total_params": res["total_params"], **stats})
                    print(f"[{enc}] length {length:5d} batch {batch:4d} {mode:9s}: {stats['step_ms_median']:9.1f} ms/batch "
                          f"{stats['samples_per_s']:8.1f} samples/s, peak RSS +{stats['peak_rss_delta_mb']:.0f} MB",
                          flush=True)
                print(f"    (subprocess {time.perf_counter() - t0:.1f} s)", flush=True)
    info["loadavg_end"] = common.loadavg()
    info["cpu_busy_cores_end"] = common.cpu_busy_cores()
    results = {"benchmark": "scale", "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
               "machine": info, "settings": settings, "results": rows, "elapsed_s": time.perf_counter() - start}
    return render(results, args.out)


def render(results: dict, out: Path) -> dict:
    """Write scale.json, scale.md and scale.png for ``results`` and print the tables."""
    info, settings, rows = results["machine"], results["settings"], results["results"]
    args = argparse.Namespace(**settings)
    warning = results["contention_warning"] = common.contention_warning(info)
    fit_rows = results["fits"] = fits(rows, args)
    out.mkdir(parents=True, exist_ok=True)
    results["plots"] = [plot(rows, args, out / "scale.png", threads=info["torch_threads"])]
    md = (f"Command: `{results['command']}`\n\n{common.machine_markdown(info)} "
          f"Total run time {results['elapsed_s']:.0f} s.\n\n" + (f"{warning}\n\n" if warning else "")
          + f"{table(rows, fit_rows, settings)}\n")
    (out / "scale.md").write_text(md)
    common.write_json(out / "scale.json", results)
    print()
    print(md)
    print(f"wrote {out / 'scale.json'}, {out / 'scale.md'}, {results['plots'][0]}")
    return results


if __name__ == "__main__":
    main()
