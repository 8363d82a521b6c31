#!/usr/bin/env python
"""Speed and memory of the LRC-Adapter against full fine-tuning, on CPU.

For each encoder (default ``xresnet1d101`` and ``resnet1d18``, random weights, random 12-lead inputs):

(a) training samples/s (forward + backward + AdamW step) for the serial LRC-Adapter (TAC-ECG), the parallel
    (mergeable) LRC-Adapter and full fine-tuning; ratio adapter / full;
(b) inference samples/s (eval, ``no_grad``) for the bare classifier, the serial adapter, the parallel adapter and
    the parallel adapter merged into the encoder (``merge_and_unload``);
(c) time of ``set_adapter`` among three loaded task adapters (ptbxl-super, cpsc2018, cinc2017), of
    ``load_adapter`` from a saved directory, and, for reference, of swapping or loading a full model;
(d) peak RSS of training steps for each method, each in a fresh subprocess, and the bytes of trainable
    parameters + gradients + AdamW state.

The methods are timed in interleaved rounds (the order rotates each round), so that load from other processes on
a shared machine hits them alike; ratios are computed per round and summarised by their median and range.

    python benchmarks/bench_speed.py                     # default settings (a few minutes on 2 cores)
    python benchmarks/bench_speed.py --quick --out /tmp/speed   # tiny encoders, seconds
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import MiB, SWITCH_TASKS, TRAIN_METHODS  # noqa: E402

INFER_MODELS = ("bare", "lrc-serial", "lrc-parallel", "lrc-parallel-merged")


# ------------------------------------------------------------------------------------------------ (d) worker


def memory_worker(spec: dict) -> dict:
    """In a fresh process: peak RSS of ``steps`` training steps of one (encoder, method)."""
    import torch

    from tac_ecg_hf.training import count_parameters

    model = common.build_for_method(spec["encoder"], spec["method"], rank=spec["rank"], num_samples=spec["samples"])
    x, y = common.make_batch("ptbxl-super", spec["batch"], spec["samples"])
    step, optimizer = common.make_train_step(model, x, y)
    trainable, total = count_parameters(model)
    trainable_bytes = common.tensor_bytes(p for p in model.parameters() if p.requires_grad)
    total_bytes = common.tensor_bytes(model.parameters())
    warm = common.make_code_warmup(model, num_samples=min(spec["samples"], 128), train=True)
    peak = common.measure_peak(lambda: [step() for _ in range(spec["steps"])], warmup=warm)
    opt_bytes = common.optimizer_state_bytes(optimizer)
    del optimizer, step
    gc.collect()
    return {
        **peak,
        "trainable_params": trainable,
        "total_params": total,
        "trainable_param_bytes": trainable_bytes,
        "grad_bytes": trainable_bytes,
        "optimizer_state_bytes": opt_bytes,
        "param_memory_bytes": 2 * trainable_bytes + opt_bytes,
        "all_param_bytes": total_bytes,
        "steps": spec["steps"],
        "torch_threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------------------------ (a) training


def bench_training(encoder: str, args) -> dict:
    from tac_ecg_hf.training import count_parameters

    x, y = common.make_batch("ptbxl-super", args.batch, args.samples)
    runs = {}
    for method in TRAIN_METHODS:
        model = common.build_for_method(encoder, method, rank=args.rank, num_samples=args.samples)
        step, _ = common.make_train_step(model, x, y)
        trainable, total = count_parameters(model)
        runs[method] = {"model": model, "step": step, "times": [], "round_medians": [], "params": (trainable, total)}
    started = time.perf_counter()  # the section budget counts the warm-up too
    for method in TRAIN_METHODS:  # warm-up (first steps allocate optimizer state and oneDNN primitives)
        for _ in range(args.warmup):
            runs[method]["step"]()
    order = list(TRAIN_METHODS)
    for r in range(args.rounds):
        if r >= 2 and time.perf_counter() - started > args.section_budget:
            break
        for method in order[r % len(order):] + order[: r % len(order)]:
            times = common.timed_repeats(runs[method]["step"], 0, args.steps_per_round, args.steps_per_round, 0.0)
            runs[method]["times"] += times
            runs[method]["round_medians"].append(statistics.median(times))
    result = {"batch_size": args.batch, "methods": {}, "ratios": {}}
    for method, run in runs.items():
        result["methods"][method] = {
            **common.throughput_summary(run["times"], args.batch),
            "trainable_params": run["params"][0],
            "total_params": run["params"][1],
        }
    full_rounds = runs["full"]["round_medians"]
    for method in ("lrc-serial", "lrc-parallel"):
        per_round = [f / a for f, a in zip(full_rounds, runs[method]["round_medians"])]
        result["ratios"][f"{method}/full"] = {
            "samples_per_s_ratio": result["methods"][method]["samples_per_s"] / result["methods"]["full"]["samples_per_s"],
            "per_round": common.summarize(per_round),
        }
    del runs
    gc.collect()
    return result


# ------------------------------------------------------------------------------------------------ (b) inference


def bench_inference(encoder: str, args) -> dict:
    import torch

    x, _ = common.make_batch("ptbxl-super", args.infer_batch, args.samples, seed=1)
    models = {
        "bare": common.build_for_method(encoder, "bare", num_samples=args.samples),
        "lrc-serial": common.build_for_method(encoder, "lrc-serial", rank=args.rank, num_samples=args.samples),
        "lrc-parallel": common.build_for_method(encoder, "lrc-parallel", rank=args.rank, num_samples=args.samples),
    }
    for name in ("lrc-serial", "lrc-parallel"):
        common.randomize_adapter_outputs(models[name])
    models["lrc-parallel"].eval()
    merged = copy.deepcopy(models["lrc-parallel"]).merge_and_unload()
    models["lrc-parallel-merged"] = merged
    with torch.no_grad():
        reference = models["lrc-parallel"](input_values=x[:4]).logits
        merged_logits = merged.eval()(input_values=x[:4]).logits
    merge_diff = float((reference - merged_logits).abs().max())
    steps = {name: common.make_infer_step(model, x) for name, model in models.items()}
    started = time.perf_counter()  # the section budget counts the warm-up too
    for name in INFER_MODELS:
        for _ in range(args.infer_warmup):
            steps[name]()
    times = {name: [] for name in INFER_MODELS}
    round_medians = {name: [] for name in INFER_MODELS}
    order = list(INFER_MODELS)
    for r in range(args.infer_rounds):
        if r >= 2 and time.perf_counter() - started > args.section_budget:
            break
        for name in order[r % len(order):] + order[: r % len(order)]:
            t = common.timed_repeats(steps[name], 0, args.infer_steps_per_round, args.infer_steps_per_round, 0.0)
            times[name] += t
            round_medians[name].append(statistics.median(t))
    result = {
        "batch_size": args.infer_batch,
        "models": {name: common.throughput_summary(times[name], args.infer_batch) for name in INFER_MODELS},
        "ratios_vs_bare": {},
        "merge_max_abs_diff": merge_diff,
        "merged_has_adapter_layers": any("lrc_" in n for n, _ in merged.named_parameters()),
    }
    for name in INFER_MODELS[1:]:
        per_round = [b / m for b, m in zip(round_medians["bare"], round_medians[name])]
        result["ratios_vs_bare"][name] = {
            "samples_per_s_ratio": result["models"][name]["samples_per_s"] / result["models"]["bare"]["samples_per_s"],
            "per_round": common.summarize(per_round),
        }
    del models, steps, merged
    gc.collect()
    return result


# ------------------------------------------------------------------------------------------------ (c) switching


def _multi_task_model(encoder: str, variant: str, rank: int, samples: int):
    from tac_ecg_hf.adapters.lrc import LRCConfig
    import peft

    base = common.build_base_classifier(encoder, task=SWITCH_TASKS[0], num_samples=samples)
    model = peft.get_peft_model(base, LRCConfig.for_task(SWITCH_TASKS[0], variant=variant, r=rank), adapter_name=SWITCH_TASKS[0])
    for task in SWITCH_TASKS[1:]:
        model.add_adapter(task, LRCConfig.for_task(task, variant=variant, r=rank))
    common.randomize_adapter_outputs(model)
    model.eval()
    return model


def bench_switching(encoder: str, args) -> dict:
    import torch

    from tac_ecg_hf.tasks import get_task

    result = {"tasks": list(SWITCH_TASKS), "set_adapter_us": {}, "n_switches": args.switches}
    x, _ = common.make_batch("ptbxl-super", 2, args.samples, seed=2)
    for variant in ("serial", "parallel"):
        model = _multi_task_model(encoder, variant, args.rank, args.samples)
        # correctness: each task's head answers with its own label count
        with torch.no_grad():
            for task in SWITCH_TASKS:
                model.set_adapter(task)
                n_out = model(input_values=x).logits.shape[-1]
                if n_out != get_task(task).num_labels:
                    raise RuntimeError(f"after set_adapter({task!r}) the model outputs {n_out} logits")
        times = []
        for i in range(args.switches + 3):
            task = SWITCH_TASKS[i % len(SWITCH_TASKS)]
            t0 = time.perf_counter_ns()
            model.set_adapter(task)
            dt = time.perf_counter_ns() - t0
            if i >= 3:
                times.append(dt / 1e3)
        result["set_adapter_us"][f"lrc-{variant}"] = common.summarize(times)
        if variant == "serial":
            serial_model = model
        else:
            del model

    # load_adapter from disk (serial, the TAC-ECG adapter)
    model = serial_model
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        task = SWITCH_TASKS[1]
        adapter_dir = Path(tmp) / task
        files = {t: (Path(tmp) / t / "adapter_model.safetensors") for t in SWITCH_TASKS}
        result["adapter_file_bytes"] = {t: f.stat().st_size for t, f in files.items() if f.is_file()}
        with torch.no_grad():
            model.set_adapter(task)
            expected = model(input_values=x).logits
        load_times = []
        reload_equal = None
        for i in range(args.loads):
            name = f"reload-{i}"
            t0 = time.perf_counter()
            model.load_adapter(str(adapter_dir), adapter_name=name)
            load_times.append(time.perf_counter() - t0)
            if i == 0:
                with torch.no_grad():
                    model.set_adapter(name)
                    reload_equal = bool(torch.equal(model(input_values=x).logits, expected))
            model.set_adapter(SWITCH_TASKS[0])
            model.delete_adapter(name)
        result["load_adapter_ms"] = common.summarize([1e3 * t for t in load_times])
        result["reload_logits_equal"] = reload_equal

        # references: switching between fully fine-tuned models instead of adapters
        full = common.build_base_classifier(encoder, task=task, num_samples=args.samples)
        full_dir = Path(tmp) / "full"
        full.save_pretrained(full_dir)
        result["full_model_file_bytes"] = sum(f.stat().st_size for f in full_dir.glob("*.safetensors"))
        cls = type(full)
        load_full = []
        for _ in range(args.full_loads):
            t0 = time.perf_counter()
            cls.from_pretrained(full_dir)
            load_full.append(time.perf_counter() - t0)
        result["full_from_pretrained_ms"] = common.summarize([1e3 * t for t in load_full])
        other = {k: v.clone() for k, v in common.build_base_classifier(encoder, task=task, seed=1).state_dict().items()}
        own = {k: v.clone() for k, v in full.state_dict().items()}
        swap = []
        for i in range(args.full_swaps):
            t0 = time.perf_counter()
            full.load_state_dict(other if i % 2 == 0 else own)
            swap.append(time.perf_counter() - t0)
        result["full_state_dict_swap_ms"] = common.summarize([1e3 * t for t in swap])
    del model, serial_model
    gc.collect()
    return result


# ------------------------------------------------------------------------------------------------ (d) memory


def bench_memory(encoder: str, args) -> dict:
    out = {}
    for method in TRAIN_METHODS:
        spec = {
            "kind": "memory",
            "encoder": encoder,
            "method": method,
            "batch": args.batch,
            "samples": args.samples,
            "rank": args.rank,
            "steps": args.mem_steps,
            "threads": args.threads,
        }
        out[method] = common.run_worker(__file__, spec)
    return out


# ------------------------------------------------------------------------------------------------ report


def tables(results: dict) -> str:
    parts = []
    rows = []
    for enc, r in results["encoders"].items():
        tr = r["training"]
        for m in TRAIN_METHODS:
            s = tr["methods"][m]
            ratio = "1.00" if m == "full" else "{:.2f} ({:.2f}-{:.2f})".format(
                tr["ratios"][f"{m}/full"]["samples_per_s_ratio"],
                tr["ratios"][f"{m}/full"]["per_round"]["min"],
                tr["ratios"][f"{m}/full"]["per_round"]["max"],
            )
            rows.append([enc, m, s["trainable_params"], s["samples_per_s"],
                         f"{s['samples_per_s_p25']:.1f}-{s['samples_per_s_p75']:.1f}", s["step_ms_median"], s["n_steps"], ratio])
    parts.append(f"**(a) Training** (forward + backward + AdamW step, batch {results['settings']['batch']}, "
                 f"{results['settings']['samples']} samples)\n\n" + common.markdown_table(
        ["encoder", "method", "trainable params", "samples/s (median)", "IQR samples/s", "step ms", "steps",
         "speed vs full (per-round min-max)"], rows))
    rows = []
    for enc, r in results["encoders"].items():
        inf = r["inference"]
        for m in INFER_MODELS:
            s = inf["models"][m]
            ratio = "1.00" if m == "bare" else "{:.2f} ({:.2f}-{:.2f})".format(
                inf["ratios_vs_bare"][m]["samples_per_s_ratio"],
                inf["ratios_vs_bare"][m]["per_round"]["min"],
                inf["ratios_vs_bare"][m]["per_round"]["max"],
            )
            rows.append([enc, m, s["samples_per_s"], f"{s['samples_per_s_p25']:.1f}-{s['samples_per_s_p75']:.1f}",
                         s["step_ms_median"], s["n_steps"], ratio])
    parts.append(f"**(b) Inference** (eval, no_grad, batch {results['settings']['infer_batch']})\n\n" + common.markdown_table(
        ["encoder", "model", "samples/s (median)", "IQR samples/s", "batch ms", "batches", "speed vs bare (per-round min-max)"], rows))
    diffs = ", ".join(f"{enc}: {r['inference']['merge_max_abs_diff']:.1e}" for enc, r in results["encoders"].items())
    parts.append(f"Merged vs unmerged parallel adapter, max |logit difference|: {diffs}.")
    rows = []
    for enc, r in results["encoders"].items():
        sw = r["switching"]
        for variant, s in sw["set_adapter_us"].items():
            rows.append([enc, f"set_adapter ({variant}, 3 tasks loaded)", f"{s['median']:.0f} µs",
                         f"{s['p10']:.0f}-{s['p90']:.0f} µs", s["n"]])
        s = sw["load_adapter_ms"]
        size_kb = statistics.median(sw["adapter_file_bytes"].values()) / 1024
        rows.append([enc, f"load_adapter from disk (serial, {size_kb:.0f} KB file)", f"{s['median']:.1f} ms",
                     f"{s['p10']:.1f}-{s['p90']:.1f} ms", s["n"]])
        s = sw["full_state_dict_swap_ms"]
        rows.append([enc, "reference: full model load_state_dict (in memory)", f"{s['median']:.1f} ms",
                     f"{s['p10']:.1f}-{s['p90']:.1f} ms", s["n"]])
        s = sw["full_from_pretrained_ms"]
        rows.append([enc, f"reference: full model from_pretrained ({sw['full_model_file_bytes'] / MiB:.1f} MB file)",
                     f"{s['median']:.0f} ms", f"{s['p10']:.0f}-{s['p90']:.0f} ms", s["n"]])
    parts.append("**(c) Task switching**\n\n" + common.markdown_table(["encoder", "operation", "median", "p10-p90", "n"], rows))
    reload = ", ".join(f"{enc}: {r['switching']['reload_logits_equal']}" for enc, r in results["encoders"].items())
    parts.append(f"Reloaded adapter gives bit-identical logits: {reload}.")
    if any("memory" in r for r in results["encoders"].values()):
        rows = []
        for enc, r in results["encoders"].items():
            for m in TRAIN_METHODS:
                s = r["memory"][m]
                rows.append([enc, m, s["trainable_params"], s["param_memory_bytes"] / MiB, s["peak_rss_delta_mb"],
                             s["rss_before_mb"]])
        parts.append(
            f"**(d) Memory** (training, batch {results['settings']['batch']}, {results['settings']['mem_steps']} steps, "
            "fresh subprocess per row; param memory = trainable params + grads + AdamW state)\n\n"
            + common.markdown_table(["encoder", "method", "trainable params", "param memory MB",
                                     "peak RSS delta of training MB", "RSS before MB"], rows)
        )
    return "\n\n".join(parts)


def plots(results: dict, out: Path) -> list[str]:
    from tac_ecg_hf.plotting import plot_throughput

    paths = []
    bars = [(enc, m, r["training"]["methods"][m]["samples_per_s"]) for enc, r in results["encoders"].items() for m in TRAIN_METHODS]
    path = out / "speed_train.png"
    threads = results["machine"]["torch_threads"]
    plot_throughput(bars, path, title=f"Training throughput (CPU, {threads} thread(s), batch {results['settings']['batch']})")
    paths.append(str(path))
    bars = [(enc, m, r["inference"]["models"][m]["samples_per_s"]) for enc, r in results["encoders"].items() for m in INFER_MODELS]
    path = out / "speed_inference.png"
    plot_throughput(bars, path, title=f"Inference throughput (CPU, {threads} thread(s), batch {results['settings']['infer_batch']})")
    paths.append(str(path))
    return paths


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoders", nargs="+", default=None,
                   help="encoder presets (default xresnet1d101 resnet1d18; --quick: xresnet1d-tiny)")
    p.add_argument("--batch", type=int, default=32, help="training batch size")
    p.add_argument("--infer-batch", type=int, default=64, help="inference batch size")
    p.add_argument("--samples", type=int, default=1000, help="record length in samples (100 Hz: 1000 = 10 s)")
    p.add_argument("--rank", type=int, default=8, help="LRC-Adapter rank")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores)")
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps per method")
    p.add_argument("--rounds", type=int, default=8, help="interleaved timing rounds (training)")
    p.add_argument("--steps-per-round", type=int, default=1, help="timed training steps per method and round")
    p.add_argument("--infer-warmup", type=int, default=1)
    p.add_argument("--infer-rounds", type=int, default=8)
    p.add_argument("--infer-steps-per-round", type=int, default=1)
    p.add_argument("--section-budget", type=float, default=30.0,
                   help="seconds (warm-up included) after which the timed rounds of a section stop (at least 2 rounds)")
    p.add_argument("--switches", type=int, default=300, help="timed set_adapter calls")
    p.add_argument("--loads", type=int, default=10, help="timed load_adapter calls")
    p.add_argument("--full-loads", type=int, default=3, help="timed full-model from_pretrained calls")
    p.add_argument("--full-swaps", type=int, default=10, help="timed full-model load_state_dict calls")
    p.add_argument("--mem-steps", type=int, default=2, help="training steps in each memory subprocess")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--quick", action="store_true", help="tiny encoder, tiny batches, few steps (smoke test)")
    p.add_argument("--out", type=Path, default=common.default_out_dir(), help="folder for speed.json, speed.md, PNGs")
    p.add_argument("--render-only", action="store_true", help="re-render speed.md and the PNGs from OUT/speed.json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.threads = args.threads or 1  # robust on a busy machine; the smoke test checks plumbing, not speed
        args.encoders = args.encoders or ["xresnet1d-tiny"]
        args.batch, args.infer_batch, args.samples = min(args.batch, 8), min(args.infer_batch, 8), min(args.samples, 500)
        args.warmup, args.rounds, args.steps_per_round = 1, 2, 1
        args.infer_warmup, args.infer_rounds, args.infer_steps_per_round = 1, 2, 1
        args.switches, args.loads, args.full_loads, args.full_swaps, args.mem_steps = 30, 2, 1, 2, 1
    args.encoders = args.encoders or ["xresnet1d101", "resnet1d18"]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        common.worker_main(args.worker, memory_worker)
        return {}
    if args.render_only:
        return render(json.loads((args.out / "speed.json").read_text()), args.out)
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
    settings = {k: v for k, v in vars(args).items() if k not in ("worker", "out", "render_only")}
    results = {"benchmark": "speed", "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
               "machine": info, "settings": settings, "encoders": {}}
    for enc in args.encoders:
        t0 = time.perf_counter()
        r = {}
        parts = [("training", bench_training), ("inference", bench_inference), ("switching", bench_switching)]
        if not args.no_memory:
            parts.append(("memory", bench_memory))
        r["section_seconds"] = {}
        for name, fn in parts:
            t1 = time.perf_counter()
            print(f"[{enc}] {name} ...", end=" ", flush=True)
            r[name] = fn(enc, args)
            r["section_seconds"][name] = time.perf_counter() - t1
            print(f"{r['section_seconds'][name]:.1f} s (load average {common.loadavg()})", flush=True)
        r["seconds"] = time.perf_counter() - t0
        results["encoders"][enc] = r
    info["loadavg_end"] = common.loadavg()
    info["cpu_busy_cores_end"] = common.cpu_busy_cores()
    results["elapsed_s"] = time.perf_counter() - start
    return render(results, args.out)


def render(results: dict, out: Path) -> dict:
    """Write speed.json, speed.md and the PNGs for ``results`` and print the tables."""
    info = results["machine"]
    warning = results["contention_warning"] = common.contention_warning(info)
    out.mkdir(parents=True, exist_ok=True)
    results["plots"] = plots(results, out)
    md = (f"Command: `{results['command']}`\n\n{common.machine_markdown(info)} "
          f"Total run time {results['elapsed_s']:.0f} s.\n\n" + (f"{warning}\n\n" if warning else "") + f"{tables(results)}\n")
    (out / "speed.md").write_text(md)
    common.write_json(out / "speed.json", results)
    print()
    print(md)
    print(f"wrote {out / 'speed.json'}, {out / 'speed.md'}, " + ", ".join(results["plots"]))
    return results


if __name__ == "__main__":
    main()
