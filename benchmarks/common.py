"""Helpers shared by ``bench_speed.py`` and ``bench_scale.py``: machine info, timing statistics, peak-RSS
measurement, model construction and subprocess workers.

Not part of the library: the scripts put this folder first on ``sys.path`` (Python does so for a script's folder).
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

#: tiny encoders for ``--quick`` runs and smoke tests: preset name -> (base preset, overrides)
TINY_ENCODERS = {
    "xresnet1d-tiny": ("xresnet1d101", {"layers": [1, 1, 1, 1], "block_widths": [8, 8, 8, 8], "stem_widths": [8, 8, 16]}),
    "resnet1d-tiny": ("resnet1d18", {"layers": [1, 1, 1, 1], "base_width": 8}),
}

#: training methods compared by the benchmarks (LRC serial = TAC-ECG, LRC parallel = mergeable variant)
TRAIN_METHODS = ("lrc-serial", "lrc-parallel", "full")
SWITCH_TASKS = ("ptbxl-super", "cpsc2018", "cinc2017")


# ------------------------------------------------------------------------------------------------ machine info


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def cpu_busy_cores(interval: float = 1.0) -> float | None:
    """How many cores were busy (all processes, from /proc/stat) during ``interval`` seconds; call it while this
    process idles to see what other processes take."""
    def snapshot():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        t0, i0 = snapshot()
        time.sleep(interval)
        t1, i1 = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    if t1 == t0:
        return 0.0
    return round((1 - (i1 - i0) / (t1 - t0)) * (os.cpu_count() or 1), 2)


def contention_warning(info: dict) -> str | None:
    """A warning when other processes keep cores busy that torch's threads need (OpenMP threads then wait on
    descheduled peers and timings get many times slower and noisy)."""
    busy = info.get("cpu_busy_cores_start")
    if busy is None:
        return None
    cores, threads = info["cores_available"], info["torch_threads"]
    free = cores - busy
    if threads > 1 and threads > max(free, 0) + 0.5:
        return (f"WARNING: other processes keep {busy:.1f} of {cores} cores busy but torch uses {threads} threads; "
                "OpenMP threads wait on descheduled peers, so timings are many times slower and noisy. "
                f"Use --threads {max(1, int(free + 0.5))} or run on an idle machine.")
    if threads == 1 and free < 0.5:
        return (f"NOTE: other processes keep {busy:.1f} of {cores} cores busy; this single-threaded run time-shares "
                "a core with them, so absolute timings are inflated (ratios from interleaved rounds less so).")
    return None


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def machine_info() -> dict:
    import peft
    import torch
    import transformers

    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores_available": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "mem_total_gib": mem_total_gib(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": now_iso(),
        "loadavg_start": loadavg(),
        "cpu_busy_cores_start": cpu_busy_cores(),
    }


def machine_markdown(info: dict) -> str:
    return (
        f"CPU: {info['cpu_model']}, {info['cores_available']} cores available ({info['cpu_count']} visible), "
        f"torch threads {info['torch_threads']}, RAM {info['mem_total_gib']} GiB; torch {info['torch']}, "
        f"transformers {info['transformers']}, peft {info['peft']}, Python {info['python']}. "
        f"Date {info['date']}; load average (1/5/15 min) at start {info['loadavg_start']}, "
        f"at end {info.get('loadavg_end')}; cores busy with other processes (1 s sample) at start "
        f"{info.get('cpu_busy_cores_start')}, at end {info.get('cpu_busy_cores_end')}."
    )


# ------------------------------------------------------------------------------------------------ statistics


def _quantile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(values: list[float]) -> dict:
    """median, quartiles, 10/90 % quantiles, min, max and count of ``values``."""
    if not values:
        raise ValueError("summarize() needs at least one value")
    s = sorted(float(v) for v in values)
    return {
        "median": statistics.median(s),
        "p10": _quantile(s, 0.10),
        "p25": _quantile(s, 0.25),
        "p75": _quantile(s, 0.75),
        "p90": _quantile(s, 0.90),
        "min": s[0],
        "max": s[-1],
        "n": len(s),
    }


def throughput_summary(step_seconds: list[float], batch: int) -> dict:
    """samples/s statistics from per-step times (median samples/s = batch / median step time)."""
    t = summarize(step_seconds)
    return {
        "samples_per_s": batch / t["median"],
        # a slow step gives a low throughput: p25 of samples/s comes from p75 of the step time
        "samples_per_s_p25": batch / t["p75"],
        "samples_per_s_p75": batch / t["p25"],
        "samples_per_s_min": batch / t["max"],
        "samples_per_s_max": batch / t["min"],
        "step_ms_median": 1e3 * t["median"],
        "step_ms_p25": 1e3 * t["p25"],
        "step_ms_p75": 1e3 * t["p75"],
        "n_steps": t["n"],
        "batch_size": batch,
    }


def timed_repeats(
    fn: Callable[[], Any],
    warmup: int,
    min_repeats: int,
    max_repeats: int,
    min_seconds: float,
    max_seconds: float = math.inf,
) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then time it at least ``min_repeats`` times and until ``min_seconds``
    have passed (at most ``max_repeats`` times; once ``max_seconds`` have passed since the start, including warm-up,
    it stops after at least one timed call). Returns the per-call seconds."""
    begin = time.perf_counter()
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < min_seconds):
        if times and time.perf_counter() - begin > max_seconds:
            break
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


# ------------------------------------------------------------------------------------------------ memory


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process: VmHWM from /proc/self/status (Linux), else ``ru_maxrss``.

    Not ``ru_maxrss`` first: on Linux it is kept in the signal struct, which a child inherits across fork + exec,
    so a fresh subprocess of a big parent starts with the parent's peak, and ``clear_refs`` does not reset it.
    VmHWM belongs to the process's own address space (fresh after exec) and can be reset."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this address space (VmHWM) to the current RSS.
    Linux >= 4.0; returns False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return peak_rss_bytes() <= current_rss_bytes() + 4 * 1024 * 1024


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def optimizer_state_bytes(optimizer) -> int:
    import torch

    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                total += value.numel() * value.element_size()
    return total


MiB = 1024**2


# ------------------------------------------------------------------------------------------------ models


def resolve_encoder(name: str) -> tuple[str, dict]:
    """(preset, overrides) for a preset name of tac_ecg_hf or one of ``TINY_ENCODERS``."""
    if name in TINY_ENCODERS:
        preset, overrides = TINY_ENCODERS[name]
        return preset, dict(overrides)
    return name, {}


def build_base_classifier(encoder: str, task: str = "ptbxl-super", num_samples: int | None = None, seed: int = 0):
    """A randomly initialised ``*ForSequenceClassification`` for ``task`` (the frozen-encoder stand-in)."""
    import torch

    from tac_ecg_hf.models.encoders import ENCODER_FAMILIES, create_encoder_config
    from tac_ecg_hf.tasks import get_task

    spec = get_task(task)
    preset, overrides = resolve_encoder(encoder)
    if num_samples is not None:
        overrides["num_samples"] = int(num_samples)
    config = create_encoder_config(
        preset,
        **overrides,
        num_labels=spec.num_labels,
        id2label=spec.id2label,
        label2id=spec.label2id,
        problem_type=spec.problem_type,
    )
    torch.manual_seed(seed)
    return ENCODER_FAMILIES[config.model_type][2](config)


def build_for_method(encoder: str, method: str, task: str = "ptbxl-super", rank: int = 8, num_samples: int | None = None, seed: int = 0):
    """``full``: the plain classifier (everything trainable); ``lrc-serial`` / ``lrc-parallel``: a PEFT model with
    one LRC-Adapter for ``task`` (frozen encoder, BatchNorm kept in eval mode by the tuner)."""
    import peft

    from tac_ecg_hf.adapters.lrc import LRCConfig

    model = build_base_classifier(encoder, task=task, num_samples=num_samples, seed=seed)
    if method in ("full", "bare"):
        return model
    if method not in ("lrc-serial", "lrc-parallel"):
        raise ValueError(f"unknown method {method!r}")
    variant = method.split("-", 1)[1]
    return peft.get_peft_model(model, LRCConfig.for_task(task, variant=variant, r=rank), adapter_name=task)


def randomize_adapter_outputs(model, std: float = 1e-3, seed: int = 1) -> None:
    """Give the zero-initialised up/B projections small random values, so that adapters change the output
    (timings do not depend on it; merge checks and load checks do)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lrc_up." in name:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def make_batch(task: str, batch: int, num_samples: int, leads: int = 12, seed: int = 0):
    import torch

    from tac_ecg_hf.tasks import get_task

    spec = get_task(task)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, leads, num_samples, generator=g)
    if spec.multi_label:
        y = (torch.rand(batch, spec.num_labels, generator=g) > 0.7).float()
    else:
        y = torch.randint(0, spec.num_labels, (batch,), generator=g)
    return x, y


def make_train_step(model, x, y, lr: float = 1e-3):
    """(step function, optimizer): forward + backward + AdamW step on the trainable parameters."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    model.train()

    def step():
        out = model(input_values=x, labels=y)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, optimizer


def make_infer_step(model, x):
    import torch

    model.eval()

    def step():
        with torch.no_grad():
            model(input_values=x)

    return step


def set_threads(threads: int | None) -> int:
    import torch

    n = int(threads) if threads else available_cores()
    torch.set_num_threads(n)
    return n


# ------------------------------------------------------------------------------------------------ workers


def make_code_warmup(model, leads: int = 12, num_samples: int = 128, train: bool = True) -> Callable[[], None]:
    """A tiny forward (+ backward) on a (1, leads, num_samples) input, run before a peak-memory measurement so that
    library code paged in on first use (about 20 MB of libtorch) is not counted as the step's memory. No optimizer
    step: optimizer state stays part of the measured step; gradients are dropped again."""
    import torch

    x = torch.randn(1, leads, num_samples)

    def warm():
        if train:
            was_training = model.training
            model.train()
            out = model(input_values=x)
            out.logits.float().sum().backward()
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        else:
            with torch.no_grad():
                model(input_values=x)

    return warm


def measure_peak(fn: Callable[[], Any], warmup: Callable[[], Any] | None = None) -> dict:
    """Run ``fn`` and report its peak RSS above the RSS just before it (kernel peak counter reset first).
    ``warmup`` (e.g. :func:`make_code_warmup`) runs before the baseline is taken."""
    if warmup is not None:
        warmup()
    gc.collect()
    reset_ok = reset_peak_rss()
    before = current_rss_bytes()
    peak_before = peak_rss_bytes()
    fn()
    peak = peak_rss_bytes()
    return {
        "rss_before_mb": before / MiB,
        "peak_rss_mb": peak / MiB,
        "peak_rss_delta_mb": (peak - before) / MiB,
        # without a reset an earlier peak can hide the step's own: then the delta is an upper bound
        "peak_reset": reset_ok,
        "peak_before_mb": peak_before / MiB,
    }


def run_worker(script: str | os.PathLike, spec: dict, timeout: float = 900) -> dict:
    """Run ``script --worker JSON`` in a fresh Python process and return the JSON it prints last."""
    cmd = [sys.executable, os.fspath(script), "--worker", json.dumps(spec)]
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONWARNINGS", "ignore")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"worker {spec} failed with exit code {proc.returncode}:\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
        )
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"worker {spec} printed no JSON:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def worker_main(argv_json: str, handler: Callable[[dict], dict]) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    spec = json.loads(argv_json)
    set_threads(spec.get("threads"))
    result = handler(spec)
    print(json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------------ output


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v):
        if isinstance(v, float):
            if v != v:  # NaN
                return "n/a"
            if abs(v) >= 100:
                return f"{v:,.0f}"
            if abs(v) >= 10:
                return f"{v:.1f}"
            return f"{v:.2f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False))


def default_out_dir() -> Path:
    return Path(__file__).resolve().parent / "results"
