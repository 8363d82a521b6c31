"""The preamble shared by the benchmark scripts: threads, machine and load (psutil), timing
(``torch.utils.benchmark``), peak memory of child processes, and the header (command, machine, date, load) every result
file carries.

Not part of the library: a script imports it as ``common`` (Python puts a script's own folder first on ``sys.path``).
Run as a script, this file is the launcher of :func:`run_measured` (see there).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
MiB = 1024**2

#: tiny encoders for ``--quick`` runs: name -> (preset, overrides)
TINY_ENCODERS = {
    "xresnet1d-tiny": (
        "xresnet1d101",
        {"layers": [1, 1, 1, 1], "block_widths": [8, 8, 8, 8], "stem_widths": [8, 8, 16]},
    ),
    "resnet1d-tiny": ("resnet1d18", {"layers": [1, 1, 1, 1], "base_width": 8}),
}


# ------------------------------------------------------------------------------------------------ machine and load


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), else all logical cores."""
    import psutil

    try:
        return len(psutil.Process().cpu_affinity())
    except (AttributeError, psutil.Error):  # no affinity API on macOS
        return psutil.cpu_count() or 1


def cpu_model() -> str:
    # psutil has no CPU model name; /proc/cpuinfo is where Linux keeps it (platform.processor() is often empty)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> list[float]:
    import psutil

    return [round(x, 2) for x in psutil.getloadavg()]


def cpu_busy_cores(interval: float = 1.0) -> float:
    """Cores kept busy by all processes during ``interval`` seconds; call it while this process idles to see what the
    others take."""
    import psutil

    return round(psutil.cpu_percent(interval=interval) / 100 * (psutil.cpu_count() or 1), 2)


def set_threads(threads: int | None) -> int:
    """torch threads for this process, and ``OMP_NUM_THREADS`` for the processes it starts (default: all cores)."""
    import torch

    n = int(threads) if threads else available_cores()
    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    return n


def machine_info() -> dict:
    """CPU, memory, library versions, date and the load at the start (complete it with :func:`finish_machine_info`)."""
    import peft
    import psutil
    import torch
    import transformers

    memory = psutil.virtual_memory()
    return {
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": psutil.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "cores_available": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "mem_total_gib": round(memory.total / 1024**3, 1),
        "mem_available_gib_start": round(memory.available / 1024**3, 1),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg_start": loadavg(),
        "cpu_busy_cores_start": cpu_busy_cores(),
    }


def finish_machine_info(info: dict) -> dict:
    import psutil

    info["loadavg_end"] = loadavg()
    info["cpu_busy_cores_end"] = cpu_busy_cores()
    info["mem_available_gib_end"] = round(psutil.virtual_memory().available / 1024**3, 1)
    info["peak_rss_mb_of_this_process"] = round(_own_peak_rss_bytes() / MiB, 1)
    return info


def _own_peak_rss_bytes() -> int:
    import resource

    # ru_maxrss is KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def contention_warning(info: dict) -> str | None:
    """A warning when other processes keep busy the cores torch's threads need (OpenMP threads then wait on
    descheduled peers and timings get many times slower and noisy)."""
    busy = info.get("cpu_busy_cores_start")
    if busy is None:
        return None
    cores, threads = info["cores_available"], info["torch_threads"]
    free = cores - busy
    if threads > 1 and threads > max(free, 0) + 0.5:
        return (
            f"WARNING: other processes keep {busy:.1f} of {cores} cores busy but torch uses {threads} threads; OpenMP "
            f"threads wait on descheduled peers, so timings are slow and noisy. Use --threads "
            f"{max(1, int(free + 0.5))} or run on an idle machine."
        )
    if free < threads - 0.5 or free < 0.5:
        return (
            f"NOTE: other processes kept {busy:.1f} of {cores} cores busy at the start; this run time-shares cores "
            "with them, so absolute timings are inflated (ratios measured in interleaved rounds much less so)."
        )
    return None


def setup(threads: int | None = 1) -> dict:
    """The preamble of a benchmark run: torch threads, quiet libraries, machine info; prints a contention warning."""
    import warnings

    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    set_threads(threads)
    info = machine_info()
    warning = contention_warning(info)
    if warning:
        print(warning, flush=True)
    return info


def command_line() -> str:
    """The command that started this run, as a user would type it from the repository root."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), REPO_ROOT)
    return shlex.join(["python", script, *sys.argv[1:]])


def machine_markdown(info: dict) -> str:
    return (
        f"CPU: {info['cpu_model']} ({info.get('cpu_capability', '?')}), {info['cores_available']} cores available "
        f"({info['cpu_count']} logical), torch threads {info['torch_threads']}, RAM {info['mem_total_gib']} GiB; "
        f"torch {info['torch']}, transformers {info['transformers']}, peft {info['peft']}, Python {info['python']}. "
        f"Date {info['date']}. Load average (1/5/15 min) at start {info['loadavg_start']}, at end "
        f"{info.get('loadavg_end')}; cores busy (all processes, 1 s sample) at start {info['cpu_busy_cores_start']}, "
        f"at end {info.get('cpu_busy_cores_end')}."
    )


def header_markdown(results: dict) -> str:
    """Command, machine, date, load and run time of a result, for the top of its markdown."""
    text = f"Command: `{results['command']}`\n\n{machine_markdown(results['machine'])}"
    if "elapsed_s" in results:
        text += f" Run time {results['elapsed_s']:.0f} s."
    warning = contention_warning(results["machine"])
    return text + (f"\n\n{warning}" if warning else "")


# ------------------------------------------------------------------------------------------------ timing


def interleaved(
    fns: dict[str, Callable[[], Any]],
    rounds: int,
    min_run_time: float,
    label: str,
    threads: int = 1,
    once: bool = False,
) -> tuple[dict, list[dict[str, float]]]:
    """Time each function of ``fns`` in ``rounds`` interleaved rounds, the order rotating each round, so that load from
    other processes hits all of them alike. Per round and function: ``Timer.blocked_autorange(min_run_time)`` (its
    block-size estimate doubles as a warm-up call), or with ``once=True`` one timed call (for calls of seconds).

    Returns the merged ``Measurement`` of each function and, per round, each function's median seconds (for
    per-round ratios: :func:`ratio`)."""
    from torch.utils.benchmark import Measurement, TaskSpec, Timer

    names = list(fns)
    found: dict[str, list] = {name: [] for name in names}
    per_round = []
    for r in range(rounds):
        medians = {}
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if once:
                start = time.perf_counter()
                fns[name]()
                spec = TaskSpec(stmt=name, setup="pass", label=label, sub_label=name, num_threads=threads)
                m = Measurement(number_per_run=1, raw_times=[time.perf_counter() - start], task_spec=spec)
            else:
                timer = Timer(stmt="fn()", globals={"fn": fns[name]}, label=label, sub_label=name, num_threads=threads)
                m = timer.blocked_autorange(min_run_time=min_run_time)
            found[name].append(m)
            medians[name] = m.median
        per_round.append(medians)
    return {name: Measurement.merge(ms)[0] for name, ms in found.items()}, per_round


def summary(m, items: int = 1) -> dict:
    """Median, IQR and best time of a ``Measurement``, and ``items`` per second at the median."""
    return {
        "median_s": m.median,
        "iqr_s": m.iqr,
        "min_s": min(m.times),
        "n": len(m.times),
        "per_s": items / m.median,
    }


def ratio(per_round: list[dict[str, float]], base: str, other: str) -> dict:
    """Speed of ``other`` relative to ``base`` (time of base / time of other) in each round, its median and range."""
    return stats([r[base] / r[other] for r in per_round])


def stats(values: list[float]) -> dict:
    """The median, range and values of one measure over the rounds."""
    import statistics

    return {"median": statistics.median(values), "min": min(values), "max": max(values), "per_round": values}


# ------------------------------------------------------------------------------------------------ child processes


def child_env(threads: int = 1) -> dict:
    """Environment of benchmarked child processes: this checkout first on the path, ``threads`` OpenMP threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def run_measured(
    cmd: Sequence[str], env: dict | None = None, sample_every: float | None = None, timeout: float = 3600
):
    """Run ``cmd`` and return its wall seconds and peak memory: ``peak_rss_mb``, the kernel's peak resident set of the
    largest process of its tree (``getrusage(RUSAGE_CHILDREN).ru_maxrss``), and with ``sample_every`` seconds
    ``tree_pss_peak_mb``, the largest sampled sum over the process and its children (DataLoader workers) of their
    proportional set size (psutil ``memory_full_info().pss``: a page shared by two processes counts half in each, so
    the sum is the memory the run holds; USS where the system has no PSS).

    The command runs under a small launcher process (this file run as a script) because ``ru_maxrss`` cannot be
    trusted from the benchmark process itself: Linux records at ``exec`` the peak RSS of the memory the child had
    before it (the fork's copy of the parent, or with ``vfork`` the parent's own), so every child of a 1 GB
    benchmark process would report at least 1 GB. Under the launcher that floor is the launcher's 10-20 MB."""
    launcher = [sys.executable, __file__, "--sample-every", str(sample_every or 0), "--"]
    proc = subprocess.run(launcher + list(cmd), capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"launcher failed ({proc.returncode}) for {shlex.join(cmd)}:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["returncode"] != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited with {result['returncode']}:\n{result['output_tail']}")
    return result


def _launch(argv: list[str]) -> None:
    """The launcher of :func:`run_measured`: ``python common.py --sample-every S -- CMD...``; prints one JSON line."""
    import resource
    import tempfile

    sample_every = float(argv[2])
    cmd = argv[4:]
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        tree_peak = 0
        if sample_every > 0:
            import psutil

            proc = psutil.Process(child.pid)
            while child.poll() is None:
                total = 0
                for p in [proc, *proc.children(recursive=True)]:
                    try:
                        info = p.memory_full_info()
                        total += getattr(info, "pss", info.uss)
                    except psutil.Error:  # a worker that just ended
                        pass
                tree_peak = max(tree_peak, total)
                time.sleep(sample_every)
        returncode = child.wait()
        wall = time.perf_counter() - start
        log.seek(0)
        tail = log.read()[-3000:]
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    result = {"wall_s": wall, "peak_rss_mb": maxrss / MiB, "returncode": returncode, "output_tail": tail}
    if sample_every > 0:
        result["tree_pss_peak_mb"] = tree_peak / MiB
    print(json.dumps(result))


# ------------------------------------------------------------------------------------------------ models and output


def resolve_encoder(name: str) -> tuple[str, dict]:
    """(preset, overrides) for a preset name of tac_ecg_hf or one of ``TINY_ENCODERS``."""
    if name in TINY_ENCODERS:
        preset, overrides = TINY_ENCODERS[name]
        return preset, dict(overrides)
    return name, {}


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v):
        if isinstance(v, bool) or v is None:
            return {True: "yes", False: "**no**", None: "n/a"}[v]
        if isinstance(v, float):
            if v != v:  # NaN
                return "n/a"
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows])


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def default_out_dir() -> Path:
    return Path(__file__).resolve().parent / "results"


if __name__ == "__main__":
    _launch(sys.argv)
