"""Bulk prediction over archives: ``tac-ecg predict DIR|GLOB|FILE... --out results.csv|.jsonl|.parquet``.

Records are read and prepared by the tasks' feature extractors in ``DataLoader`` worker processes while the model runs
in the main process on batches packed with the windows of several records. A record that cannot be read or prepared is
written as a row with its error and does not stop the run. Rows are appended as records finish, so an interrupted run
keeps what it wrote and re-running with the same ``--out`` skips the records already there. ``--tasks a,b`` predicts
several tasks in one pass over the files. Under ``accelerate launch`` the files are split between the processes and
the outputs merged by the main process. Memory stays flat in the number of records: a bounded number of records is in
flight at a time and rows are written as they finish.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import IterableDataset

from .errors import InvalidArgumentError

__all__ = [
    "expand_inputs",
    "bulk_predict",
    "default_num_workers",
    "default_resources",
    "usable_cpus",
    "check_num_threads",
    "ResultWriter",
    "BulkSummary",
]

RECORD_SUFFIXES = (".hea", ".mat", ".npy", ".csv")
MAX_WORKERS = 64  # reader processes; each holds a copy of the feature extractors and two packs of windows
MAX_THREADS = 1024  # torch threads of the model; more would only queue OpenMP threads on the cores there are
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}


def _record_files_under(folder: str) -> list[str]:
    """Record files under ``folder`` (recursively, not following symbolic links to folders), as strings."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [
            os.path.join(root, name) for name in files if os.path.splitext(name)[1].lower() in RECORD_SUFFIXES
        ]
    return [f for f in found if os.path.isfile(f)]


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Record files from files, folders (searched recursively) and glob patterns, sorted, one path per record: a WFDB
    record is its ``.hea`` (its ``.mat``/``.dat`` are not listed again); sidecar ``.json`` files are skipped.

    The paths are plain strings, not ``pathlib.Path`` objects: a run over an archive keeps one per record, and a
    ``Path`` with its cached parts costs about 400 bytes, 4x the string (40 MB per 100,000 records; see the memory
    section of benchmarks/RESULTS.md).
    """
    inputs = [os.fspath(item) for item in inputs]
    found: list[str] = []
    for text in inputs:
        if os.path.isdir(text):
            candidates = _record_files_under(text)
        elif any(ch in text for ch in "*?["):
            candidates = [p for p in glob.glob(text, recursive=True) if os.path.isfile(p)]
        else:
            candidates = [text]
        candidates.sort()
        for p in candidates:
            stem, suffix = os.path.splitext(p)
            if suffix.lower() in (".mat", ".dat") and os.path.isfile(stem + ".hea") and os.path.isfile(p):
                continue  # the header stands for the record
            found.append(p)
    if len(inputs) == 1 and os.path.isdir(inputs[0]):
        return found  # one folder lists each file once
    seen, unique = set(), []
    for p in found:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


class _RecordStream(IterableDataset):
    """This worker's share of the records (every ``num_workers``-th), read and prepared, yielded as *packs* of about
    ``batch_size`` windows: a list of entries, each a record's head (its fields and window counts, errors included)
    or a piece of at most ``batch_size`` windows of one task of the record before it.

    Why packs instead of transformers' one-example-per-item dataset: the model runs only when a batch of windows is
    full, and that forward takes about as long as preparing the records behind it. With one record per item, a
    prefetch of a few items lets the workers run a few records ahead (reading and the model then take turns: bulk ran
    at 0.38x the forward alone, see RESULTS.md), and a prefetch of a batch of records would hold that many records in
    memory however long they are. A pack is one batch of work, whatever the records' length, so a prefetch of two
    packs per worker overlaps reading and the model with memory bounded by about two batches of windows per worker
    (plus the record a worker is reading); a long record's windows are made and sent a batch at a time.
    """

    def __init__(self, paths: Sequence[str], extractors: dict, read_kwargs: dict, batch_size: int):
        super().__init__()
        self.paths = list(paths)
        self.extractors = extractors
        self.read_kwargs = read_kwargs
        self.batch_size = batch_size

    def __iter__(self):
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        start, step = (info.id, info.num_workers) if info is not None else (0, 1)
        pack, size = [], 0
        for i in range(start, len(self.paths), step):
            for entry in self._record(i):
                pack.append(entry)
                size += len(entry.get("windows", ()))
                if size >= self.batch_size:
                    yield pack
                    pack, size = [], 0
        if pack:
            yield pack

    def _record(self, i: int):
        """The head of record ``i``, then its windows task by task in pieces of at most ``batch_size``."""
        head, prepared = self._prepare(i)
        yield head
        for task, signal in prepared.items():
            for windows in self.extractors[task].iter_windows(signal, batch_size=self.batch_size):
                yield {"index": i, "task": task, "windows": windows}

    def _prepare(self, i: int) -> tuple[dict, dict]:
        """Record ``i`` read and prepared for each task, with warnings silenced (they are the data layer's notes,
        which the rows carry): its head and the prepared signals of the tasks that did not fail. A plain function
        rather than part of the generator, so that the ``catch_warnings`` context never spans a ``yield`` (a
        generator suspended inside it leaves the filters changed for whatever runs meanwhile, the main process
        itself with ``num_workers=0``)."""
        from .data import read_record
        from .inference import reference_labels

        path = self.paths[i]
        stem = os.path.splitext(os.path.basename(path))[0]
        head = {"index": i, "path": path, "record_id": stem, "total": {}, "notes": {}, "errors": {}, "reference": []}
        prepared = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                record = read_record(path, **self.read_kwargs)
            except (ValueError, OSError) as err:  # the package's input errors are ValueError/OSError subclasses
                head["errors"] = dict.fromkeys(self.extractors, _one_line(err))
                return head, prepared
            head["record_id"] = record.record_id
            head["reference"] = reference_labels(record)
            # each task on its own: a single-lead record fails a 12-lead task and still gets its single-lead ones
            for task, fe in self.extractors.items():
                try:
                    prepared[task] = fe.prepare(record)
                except (ValueError, OSError) as err:
                    head["errors"][task] = _one_line(err)
                    continue
                pad = fe.padding_note(prepared[task])
                head["notes"][task] = list(prepared[task].notes) + ([pad] if pad else [])
                head["total"][task] = len(fe.window_starts(prepared[task].num_samples))
        return head, prepared


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _identity(pack):
    return pack


class ResultWriter:
    """Appends result rows to a CSV, JSON Lines or Parquet file and knows which (path, task) pairs it holds already.

    CSV and JSONL are appended to in place; Parquet (which cannot be appended to) is written as numbered part files in
    ``<out>.parts/`` and joined into ``<out>`` by :meth:`close`. The columns: ``path``, ``record_id``, ``task``,
    ``decision`` (labels joined by ``;``), one ``prob/<label>`` column per label of the tasks asked for, ``notes``,
    ``reference`` and ``error``."""

    def __init__(self, out: str | os.PathLike, labels: Sequence[str], flush_every: int = 256):
        self.out = Path(out)
        self.format = FORMATS.get(self.out.suffix.lower())
        if self.format is None:
            raise InvalidArgumentError(f"--out {out}: use a .csv, .jsonl or .parquet file name.")
        if self.out.is_dir():
            raise InvalidArgumentError(f"--out {out} is a directory; give a file name such as results.csv.")
        self.columns = (
            ["path", "record_id", "task", "decision"]
            + [f"prob/{label}" for label in labels]
            + ["notes", "reference", "error"]
        )
        self.parts = self.out.with_name(self.out.name + ".parts")
        self.flush_every = flush_every
        self._buffer: list[dict] = []
        self.done = self._existing()

    def _existing(self) -> set[tuple[str, str]]:
        rows: list[dict] = []
        if self.format in ("csv", "jsonl") and self.out.is_file():
            _drop_partial_line(self.out)
        if self.format == "csv" and self.out.is_file():
            with open(self.out, newline="") as fh:
                reader = csv.DictReader(fh)
                if reader.fieldnames and reader.fieldnames != self.columns:
                    raise InvalidArgumentError(
                        f"--out {self.out} was written with other columns (other tasks?); use another file to start "
                        "afresh."
                    )
                rows = list(reader)
        elif self.format == "jsonl" and self.out.is_file():
            with open(self.out) as fh:
                rows = [json.loads(line) for line in fh if line.strip()]
        elif self.format == "parquet":
            import pyarrow.parquet as pq

            files = ([self.out] if self.out.is_file() else []) + sorted(self.parts.glob("part-*.parquet"))
            for f in files:
                rows += pq.read_table(f, columns=["path", "task"]).to_pylist()
        return {(r["path"], r["task"]) for r in rows}

    def write(self, row: dict) -> None:
        # ``done`` stays what the file held when the run began (what to skip): the run writes each (path, task) once,
        # and a set of every row written would grow with the archive
        self._buffer.append(row)
        if len(self._buffer) >= self.flush_every or self.format != "parquet":
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        rows = [{c: row.get(c) for c in self.columns} for row in self._buffer]
        self._buffer = []
        if self.format == "csv":
            new = not self.out.is_file() or self.out.stat().st_size == 0
            with open(self.out, "a", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.columns)
                if new:
                    writer.writeheader()
                writer.writerows(rows)
        elif self.format == "jsonl":
            with open(self.out, "a") as fh:
                for row in rows:
                    fh.write(json.dumps(row, allow_nan=False) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            self.parts.mkdir(exist_ok=True)
            index = len(list(self.parts.glob("part-*.parquet")))
            tmp = self.parts / f".part-{index:06d}.tmp"
            pq.write_table(pa.Table.from_pylist(rows, schema=self._schema()), tmp)
            os.replace(tmp, self.parts / f"part-{index:06d}.parquet")

    def _schema(self):
        import pyarrow as pa

        return pa.schema([(c, pa.float64() if c.startswith("prob/") else pa.string()) for c in self.columns])

    def close(self) -> None:
        self.flush()
        if self.format == "parquet" and self.parts.is_dir():
            import pyarrow.parquet as pq

            files = ([self.out] if self.out.is_file() else []) + sorted(self.parts.glob("part-*.parquet"))
            tmp = self.out.with_name(self.out.name + ".tmp")
            with pq.ParquetWriter(tmp, self._schema()) as writer:
                for f in files:
                    writer.write_table(pq.read_table(f).cast(self._schema()))
            os.replace(tmp, self.out)
            for f in self.parts.glob("part-*.parquet"):
                f.unlink()
            self.parts.rmdir()


def _drop_partial_line(path: Path) -> None:
    """Cut a last line without its newline: the row an interrupted run was writing (a new row appended to it would
    corrupt both; the record is predicted again)."""
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        end, chunk = size, 1 << 16
        while end > 0:
            start = max(0, end - chunk)
            fh.seek(start)
            newline = fh.read(end - start).rfind(b"\n")
            if newline >= 0:
                fh.truncate(start + newline + 1)
                return
            end = start
        fh.truncate(0)


@dataclass
class BulkSummary:
    records: int
    skipped: int
    failed: int
    rows: int
    seconds: float

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("nan")


def usable_cpus() -> int:
    """CPUs this process may use (its affinity mask where the OS has one), shared out between the processes of an
    ``accelerate launch`` on this machine (``LOCAL_WORLD_SIZE``): each bulk process sizes its readers and model
    threads from its share, so that N processes do not each take the whole machine."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, cpus // local)


def default_resources(cpus: int | None = None, num_workers: int | None = None) -> tuple[int, int]:
    """``(reader workers, model threads)`` of a bulk run on ``cpus`` CPUs (``usable_cpus()`` if None), with
    ``num_workers`` readers where the caller chose them.

    Reading and preparing a record (wfdb's header parser, the band-pass, resampling) costs about twice the compiled
    bf16 model's share of it and about as much as the fp32 eager forward (benchmarks/RESULTS.md), so about two thirds
    of the CPUs read and the rest run the model:

    * 1 CPU: no worker process, 1 thread. Measured here, one core (``taskset -c 0``), bf16, the 120 CPSC2018 records:
      51-55 records/s reading in the main process against 49-50 with one worker, which only adds the hand-over.
    * 2 CPUs: 2 workers and 1 thread. The main process mostly waits for records, so the three processes share the two
      cores without loss: compile+bf16 did 86.8 records/s with two workers, 61.8 with one; 91-92% of the two cores
      busy with two workers, 76-78% with one.
    * more CPUs: ``round(2/3 * cpus)`` workers (at most ``MAX_WORKERS``), the other CPUs as model threads. This split
      follows the measured costs; it was not measured on a machine with more than two cores.
    """
    cpus = usable_cpus() if cpus is None else max(1, int(cpus))
    if num_workers is None:
        num_workers = 0 if cpus == 1 else 2 if cpus == 2 else min(MAX_WORKERS, max(2, round(cpus * 2 / 3)))
    return num_workers, max(1, cpus - num_workers)


def default_num_workers() -> int:
    """Reader processes of a bulk run when none are asked for (see :func:`default_resources`)."""
    return default_resources()[0]


def _check_num_workers(num_workers) -> int:
    if num_workers is None:
        return default_num_workers()
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or not 0 <= num_workers <= MAX_WORKERS:
        raise InvalidArgumentError(
            f"--workers must be a whole number from 0 (read in the main process) to {MAX_WORKERS}, "
            f"got {num_workers!r}."
        )
    return num_workers


def check_num_threads(num_threads) -> int:
    """``num_threads`` as torch CPU threads (a whole number from 1 to ``MAX_THREADS``), else a one-line error."""
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or not 1 <= num_threads <= MAX_THREADS:
        raise InvalidArgumentError(
            f"--threads must be a whole number from 1 to {MAX_THREADS} (torch CPU threads), got {num_threads!r}."
        )
    return num_threads


def bulk_predict(
    classifier,
    inputs: Sequence[str | os.PathLike],
    tasks: Sequence[str],
    out: str | os.PathLike,
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    threshold: float | None = None,
    read_kwargs: dict | None = None,
    progress: bool = True,
    num_threads: int | None = None,
) -> BulkSummary:
    """Predict ``tasks`` for every record under ``inputs`` and write one row per record and task to ``out``.

    ``num_workers`` reader processes (0 reads in this process) and ``num_threads`` torch threads for the model while
    the run lasts (torch's setting is restored after it); where None, :func:`default_resources` shares this process's
    CPUs out between them."""
    import torch

    num_workers = _check_num_workers(num_workers)
    if num_threads is None:
        num_threads = default_resources(num_workers=num_workers)[1]
    num_threads = check_num_threads(num_threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        return _bulk_predict(classifier, inputs, tasks, out, batch_size, num_workers, threshold, read_kwargs, progress)
    finally:
        torch.set_num_threads(previous)


def _bulk_predict(classifier, inputs, tasks, out, batch_size, num_workers, threshold, read_kwargs, progress):
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from .inference import WindowPacker, decide

    paths = expand_inputs(inputs)
    state = _distributed_state()
    if state is not None:
        paths = paths[state.process_index :: state.num_processes]
        target = Path(out)
        out = target.with_name(f"{target.stem}.rank{state.process_index}{target.suffix}")
    labels = list(dict.fromkeys(label for task in tasks for label in classifier.adapter_config(task).labels))
    writer = ResultWriter(out, labels)
    if state is not None:  # what an earlier run merged into the requested file is done too
        writer.done |= ResultWriter(target, labels).done
    total = len(paths)
    pending = [p for p in paths if any((p, t) not in writer.done for t in tasks)]
    del paths
    extractors = {task: classifier.feature_extractor(task) for task in tasks}
    dataset = _RecordStream(pending, extractors, read_kwargs or {}, batch_size)
    # batch_size=None: the packs are the batches (see _RecordStream); two packs ahead per worker
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_identity,
        prefetch_factor=2 if num_workers else None,
        persistent_workers=False,
    )
    packers = {task: WindowPacker(batch_size) for task in tasks}
    in_flight: dict[int, dict] = {}
    start = time.perf_counter()
    failed = rows = 0

    def finish(index: int) -> None:
        nonlocal rows
        item = in_flight.pop(index)
        for task in tasks:
            if (item["path"], task) in writer.done:
                continue
            config = classifier.adapter_config(task)
            error = item["errors"].get(task)
            row = {
                "path": item["path"],
                "record_id": item["record_id"],
                "task": task,
                "error": error,
                "reference": ";".join(item["reference"]),
            }
            if error is None:
                probs = item["sums"][task] / item["counts"][task]
                multi = config.problem_type == "multi_label_classification"
                cut = [threshold] * len(config.labels) if threshold is not None else classifier.thresholds(task)
                decision, fallback = decide(task, list(config.labels), probs, multi, cut)
                row["decision"] = ";".join(decision)
                row["notes"] = " | ".join(item["notes"][task] + fallback)
                row.update({f"prob/{label}": round(float(p), 6) for label, p in zip(config.labels, probs)})
            writer.write(row)
            rows += 1

    def run(task: str, windows: np.ndarray, owners: np.ndarray) -> None:
        probs = classifier.probabilities(classifier.logits(windows, task), task)
        for index in np.unique(owners):
            item = in_flight[int(index)]
            item["sums"][task] = item["sums"].get(task, 0) + probs[owners == index].sum(0)
            item["counts"][task] = item["counts"].get(task, 0) + int((owners == index).sum())
            item["left"][task] -= int((owners == index).sum())
        for index in [i for i in np.unique(owners) if not any(in_flight[int(i)]["left"].values())]:
            finish(int(index))

    bar = tqdm(total=len(pending), unit="rec", desc="predicting", disable=not progress, dynamic_ncols=True)
    with torch.inference_mode():
        for pack in loader:
            for entry in pack:
                index = entry["index"]
                if "task" in entry:  # a piece of the windows of a record whose head came before
                    for batch in packers[entry["task"]].add(entry["windows"], index):
                        run(entry["task"], *batch)
                    continue
                entry.update(sums={}, counts={}, left={t: entry["total"].get(t, 0) for t in tasks})
                in_flight[index] = entry
                failed += bool(entry["errors"])
                if not any(entry["left"].values()):  # nothing to run: every task failed
                    finish(index)
                bar.update(1)
            # bound the records in flight: flush partial batches when too many records wait for their windows
            if len(in_flight) > 4 * batch_size:
                for task in tasks:
                    for batch in packers[task].flush():
                        run(task, *batch)
        for task in tasks:
            for batch in packers[task].flush():
                run(task, *batch)
    bar.close()
    writer.close()
    if state is not None:
        _merge_ranks(state, Path(out))
    return BulkSummary(
        records=len(pending),
        skipped=total - len(pending),
        failed=failed,
        rows=rows,
        seconds=time.perf_counter() - start,
    )


def _distributed_state():
    """Accelerate's process state when launched on several processes (``accelerate launch``), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    # cpu=True: the model predicts on the CPU and the processes only meet at a barrier (gloo); without it accelerate
    # sees no accelerator and sets every process up as a single one (all would predict every file)
    return PartialState(cpu=True)


def _merge_ranks(state, rank_out: Path) -> None:
    """The main process joins the per-process outputs into the requested file."""
    state.wait_for_everyone()
    if not state.is_main_process:
        return
    stem = rank_out.stem.rsplit(".rank", 1)[0]
    target = rank_out.with_name(stem + rank_out.suffix)
    parts = [rank_out.with_name(f"{stem}.rank{r}{rank_out.suffix}") for r in range(state.num_processes)]
    fmt = FORMATS[rank_out.suffix.lower()]
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [pq.read_table(p) for p in parts if p.is_file()]
        if target.is_file():
            tables.insert(0, pq.read_table(target))
        pq.write_table(pa.concat_tables(tables), target)
    else:
        with open(target, "a", newline="") as out:
            for i, part in enumerate(p for p in parts if p.is_file()):
                with open(part, newline="") as fh:
                    lines = fh.readlines()
                if fmt == "csv" and (target.stat().st_size > 0 or i > 0):
                    lines = lines[1:]
                out.writelines(lines)
    for p in parts:
        if p.is_file():
            p.unlink()
