"""The ``tac-ecg`` command line.

    tac-ecg predict RECORD --task cpsc2018 [--model ID|DIR] [--plot out.png] [--json]
    tac-ecg predict DIR|GLOB|FILE... --tasks cpsc2018,cinc2017 --out results.csv [--dtype bf16] [--compile]
    tac-ecg zero-shot RECORD --labels "normal ECG,atrial fibrillation,right bundle branch block"
    tac-ecg list
    tac-ecg evaluate --task ptbxl-super [--model ID|DIR] [--data-dir ../shared/data]
    tac-ecg push DIR|ID --repo-id org/name [--endpoint URL]
    tac-ecg seed-cache
    tac-ecg demo [--data-dir ../shared/data]

Input files are only ever read. Bad input (a record, an argument or a checkpoint) exits with status 2 and one line on
stderr, ``tac-ecg <command>: error: <what, and how to fix it>``; exit status 1 is kept for bugs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from .errors import InvalidArgumentError, bad_input_error_types

EXIT_BAD_INPUT = 2
DEFAULT_MODEL = "tac-ecg/xresnet1d101-cetp"  # also inference.DEFAULT_MODEL; not imported here to keep --help fast


def _default_data_dir() -> str:
    env = os.environ.get("TAC_ECG_DATA")
    if env:
        return env
    here = Path.cwd()
    for candidate in (
        here / "../shared/data",
        here / "shared/data",
        Path(__file__).resolve().parents[2] / "../shared/data",
    ):
        if candidate.is_dir():
            return str(candidate.resolve())
    return str((here / "../shared/data").resolve())


def _record_files(path: Path) -> set[Path]:
    """The input file and its companions (header, signal files, sidecar) of a record path, resolved."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".hea", ".mat", ".dat", ".npy", ".csv", ".json") else path
    files = {path, *(stem.parent / (stem.name + ext) for ext in (".hea", ".mat", ".dat", ".npy", ".csv", ".json"))}
    return {f.resolve() for f in files}


def _check_output_path(out: str | None, records: list[str], flag: str) -> None:
    """Refuse to write over an input record or one of its companion files (the user's input is never lost)."""
    if not out:
        return
    target = Path(out).resolve()
    for record in records:
        if target in _record_files(Path(record)):
            raise InvalidArgumentError(f"{flag} {out} would overwrite the input record's files; choose another path.")
    if target.is_dir():
        raise InvalidArgumentError(f"{flag} {out} is a directory; give a file name.")


def _write_atomically(writer, path: str) -> None:
    """Render to a temporary file next to ``path`` and rename it into place: no half-written file on a crash."""
    import tempfile

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix or ".tmp", dir=target.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _tasks(args) -> list[str]:
    from .tasks import TASKS

    tasks = [t.strip() for t in (args.tasks or args.task or "").split(",") if t.strip()]
    if not tasks:
        raise InvalidArgumentError("give --task TASK (or --tasks a,b): one of " + ", ".join(sorted(TASKS)) + ".")
    return list(dict.fromkeys(tasks))


def _threads(args) -> int | None:
    """``--threads`` checked (1 to ``bulk.MAX_THREADS``), or None where it was not given."""
    if args.threads is None:
        return None
    from .bulk import check_num_threads

    return check_num_threads(args.threads)


def _read_kwargs(args) -> dict:
    kwargs = {}
    if args.leads:
        kwargs["lead_names"] = args.leads.split(",")
    if args.fs is not None:
        kwargs["sampling_rate"] = args.fs
    if args.gain is not None:
        kwargs["gain"] = args.gain
    return kwargs


def _cmd_predict(args) -> int:
    import torch

    from .inference import check_threshold

    bulk = (
        args.out is not None
        or len(args.records) > 1
        or any(Path(r).is_dir() or any(c in r for c in "*?[") for r in args.records)
    )
    # one record: one thread (a record is small); a bulk run shares the CPUs out between readers and the model
    # (bulk.default_resources) unless --threads says otherwise
    threads = _threads(args)
    torch.set_num_threads(threads or 1)
    tasks = _tasks(args)
    if args.threshold is not None:
        check_threshold(args.threshold)
    _check_output_path(args.out, [r for r in args.records if Path(r).is_file()], "--out")
    _check_output_path(args.plot, args.records, "--plot")
    if bulk:
        if args.plot:
            raise InvalidArgumentError(
                "--plot draws one record; leave it out when predicting many records or with --out."
            )
        if not args.out:
            raise InvalidArgumentError(
                "several records: give --out results.csv (or .jsonl, .parquet) for the results."
            )
        return _predict_bulk(args, tasks, threads)
    from .data import read_record

    record = read_record(args.records[0], **_read_kwargs(args))  # read (and validate) before the slower model load
    clf = _classifier(args, tasks)
    clf.set_precision(args.dtype or "fp32", compile=args.compile)
    predictions = [clf.predict(record, task=task, threshold=args.threshold) for task in tasks]
    notes = _notes(args)
    if args.json:
        payload = [{**p.to_dict(), "notes": p.notes + notes} for p in predictions]
        print(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, allow_nan=False))
    else:
        for prediction in predictions:
            for note in dict.fromkeys(prediction.notes + notes):
                print(f"note: {note}")
            print(prediction.format())
    if args.plot:
        from .plotting import plot_ecg

        prediction = predictions[0]
        _write_atomically(
            lambda tmp: plot_ecg(
                record.signal,
                record.sampling_rate,
                list(record.lead_names),
                title=f"{record.record_id} - {prediction.task}"
                + (f"  (reference: {', '.join(prediction.reference)})" if prediction.reference else ""),
                prediction=dict(zip(prediction.labels, map(float, prediction.probabilities))),
                decision=prediction.decision,
                path=tmp,
            ),
            args.plot,
        )
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0


def _classifier(args, tasks: list[str]):
    """The model with the adapters of ``tasks``: built without transformers or PEFT where ``tac_ecg_hf.lite`` takes
    the checkpoint (about 2 s less to start on this CPU), else ``ECGTaskClassifier.from_pretrained``; the same
    probabilities either way (tests/test_lite.py)."""
    from .inference import ECGTaskClassifier, resolve_model
    from .lite import load_lite_classifier

    clf = load_lite_classifier(resolve_model(args.model, revision=args.revision), tasks, args.allow_pickle)
    if clf is None:
        clf = ECGTaskClassifier.from_pretrained(
            args.model, tasks=tasks, revision=args.revision, allow_pickle=args.allow_pickle
        )
    return clf


def _predict_bulk(args, tasks: list[str], threads: int | None) -> int:
    from .bulk import _check_num_workers, bulk_predict
    from .distributed import end_distributed_run

    _check_num_workers(args.workers)  # a bad --workers says so before the model loads
    clf = _classifier(args, tasks)
    clf.set_precision(args.dtype or "bf16", compile=args.compile)
    summary = bulk_predict(
        clf, args.records, tasks, args.out, batch_size=args.batch_size, num_workers=args.workers,
        threshold=args.threshold, read_kwargs=_read_kwargs(args), progress=not args.quiet, num_threads=threads,
    )
    end_distributed_run()  # under accelerate launch: all processes merged, the gloo group goes before exit
    print(
        f"{summary.records} record(s) predicted in {summary.seconds:.1f} s ({summary.records_per_second:.1f} "
        f"records/s), {summary.failed} failed (their rows hold the error), {summary.skipped} already in {args.out}; "
        f"{summary.rows} row(s) written to {args.out}"
    )
    return 0


def _cmd_zero_shot(args) -> int:
    import torch
    from transformers import pipeline

    from .data import read_record
    from .inference import MODEL_ALIASES, resolve_model

    torch.set_num_threads(_threads(args) or 1)
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    if len(labels) < 2:
        raise InvalidArgumentError(
            '--labels needs at least two comma-separated phrases, e.g. "normal ECG,atrial fibrillation".'
        )
    record = read_record(args.record, **_read_kwargs(args))
    folder = resolve_model(MODEL_ALIASES.get(args.model, args.model), revision=args.revision)
    classify = pipeline("zero-shot-ecg-classification", model=str(folder))
    results = classify(record, candidate_labels=labels, hypothesis_template=args.template)
    if args.json:
        print(json.dumps({"record": record.record_id, "results": results}, indent=2, allow_nan=False))
        return 0
    for note in dict.fromkeys(results[0].get("notes", []) if results else []):
        print(f"note: {note}")
    print(f"record {record.record_id}  zero-shot with {folder.name}'s CETP dual encoder")
    width = max(len(r["label"]) for r in results)
    for r in results:
        print(f"  {r['label']:<{width}}  {r['score']:6.3f}  {'#' * int(round(r['score'] * 30))}")
    return 0


def _cmd_list(args) -> int:
    from .hub import bundled_path, bundled_repo_ids
    from .inference import available_tasks

    repo_ids = bundled_repo_ids()
    if not repo_ids:
        print("no bundled models in this installation; pass --model <Hub id or folder> to tac-ecg predict")
    for repo_id in repo_ids:
        path = bundled_path(repo_id)
        config = json.loads((path / "config.json").read_text())
        zero_shot = "  + CETP dual encoder (zero-shot)" if (path / "cetp" / "config.json").is_file() else ""
        print(
            f"{repo_id}  ({config.get('model_type')}, {config.get('sampling_rate')} Hz, {config.get('num_samples')} "
            f"samples){zero_shot}"
        )
        for task in available_tasks(path):
            adapter = json.loads((path / task / "adapter_config.json").read_text())
            test = (adapter.get("metrics") or {}).get("test") or {}
            auc = test.get("macro_auc")
            extra = f"  held-out macro-AUC {auc:.3f} (n={test.get('n')})" if isinstance(auc, (int, float)) else ""
            print(
                f"    {task:<12} {adapter.get('variant')} r={adapter.get('r')}  labels={adapter.get('labels')}{extra}"
            )
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluation import evaluate_split
    from .inference import MODEL_ALIASES

    result = evaluate_split(MODEL_ALIASES.get(args.model, args.model), args.task, args.data_dir, split=args.split)
    print(json.dumps(result, indent=2, default=lambda v: None if v != v else v))
    return 0


def _cmd_push(args) -> int:
    from .hub import push_run
    from .inference import MODEL_ALIASES, resolve_model

    folder = resolve_model(MODEL_ALIASES.get(args.source, args.source))
    info = push_run(folder, args.repo_id, endpoint=args.endpoint, token=args.token, private=args.private)
    print(f"pushed {folder} to {getattr(info, 'commit_url', None) or args.repo_id}")
    return 0


def _cmd_seed_cache(args) -> int:
    from .hub import seed_hf_cache

    for path in seed_hf_cache():
        print(f"cached {path}")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(data_dir=args.data_dir, output_dir=args.output_dir, quick=args.quick)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``tac-ecg predict: error: ...``) and exit status 2, without the usage block."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {' '.join(str(message).split())}\n")


def _record_arguments(p) -> None:
    p.add_argument("--fs", type=float, default=None, help="sampling rate in Hz (needed for .npy/.csv without sidecar)")
    p.add_argument("--leads", default=None, help="comma-separated lead names of the file's rows/columns")
    p.add_argument(
        "--gain", type=float, default=None, help="ADC units per mV for integer .mat/.npy/.csv files without a header"
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model id or directory (default {DEFAULT_MODEL})")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--threads", type=int, default=None,
        help="torch CPU threads (default 1 for one record, which is small; for bulk runs the CPUs the readers leave)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tac-ecg", description="TAC-ECG on the Hugging Face stack.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="classify ECG records with task adapters")
    p.add_argument(
        "records", nargs="+", metavar="RECORD", help="WFDB header (.hea), .mat, .npy, .csv; or folders and globs"
    )
    p.add_argument("--task", default=None, help="task adapter to use (tac-ecg list shows them)")
    p.add_argument("--tasks", default=None, help="several tasks in one pass, comma-separated")
    _record_arguments(p)
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="one decision threshold in [0, 1] for multi-label tasks (default: the adapter's calibrated per-class "
             "thresholds)",
    )
    p.add_argument("--plot", default=None, help="write a PNG of the leads with the prediction (one record)")
    p.add_argument(
        "--out", default=None, help="write one row per record and task to a .csv, .jsonl or .parquet file (resumable)"
    )
    p.add_argument(
        "--dtype", default=None, choices=["fp32", "bf16"],
        help="bf16: CPU autocast on AVX-512 BF16 / AMX (default: bf16 for bulk runs, where its probabilities stay "
        "within 0.02 of fp32's on every bundled adapter, 0.019 at most over the 120 CPSC2018 records; fp32 for one "
        "record)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model (pays off for bulk runs only)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per forward pass")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader processes reading and preparing records (bulk; default: none on 1 CPU, 2 on 2 CPUs, about "
        "two thirds of the CPUs on more)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--allow-pickle", action="store_true",
        help="also load pickle checkpoints (pytorch_model.bin / adapter_model.bin); only for files you trust",
    )
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("zero-shot", help="score a record against free-text labels with the CETP dual encoder")
    p.add_argument("record")
    p.add_argument("--labels", required=True, help='comma-separated phrases, e.g. "normal ECG,atrial fibrillation"')
    p.add_argument("--template", default="{}", help="prompt template around each label (default: the label itself)")
    _record_arguments(p)
    p.set_defaults(func=_cmd_zero_shot)

    p = sub.add_parser("list", help="list bundled models and their task adapters")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("evaluate", help="evaluate a task adapter on the held-out records of the real data")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--task", required=True)
    p.add_argument("--data-dir", default=_default_data_dir())
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("push", help="publish a trained run or bundled model (encoder, adapters, CETP, card) to a Hub")
    p.add_argument("source", help="run folder (examples/finetune.py --output_dir) or bundled model id")
    p.add_argument("--repo-id", required=True, help="target repo id, org/name")
    p.add_argument("--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    p.add_argument("--token", default=None)
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser(
        "seed-cache", help="copy the bundled models into the Hugging Face cache (offline AutoModel / pipeline by id)"
    )
    p.set_defaults(func=_cmd_seed_cache)

    p = sub.add_parser("demo", help="run CETP -> LRC-Adapter -> evaluation on the real data (a few minutes on CPU)")
    p.add_argument("--data-dir", default=_default_data_dir())
    p.add_argument(
        "--output-dir", default=None, help="where to write the demo's models and plots (default: a temp dir)"
    )
    p.add_argument("--quick", action="store_true", help="smaller settings (for smoke tests)")
    p.set_defaults(func=_cmd_demo)
    return parser


class _NoteHandler(logging.Handler):
    """Collects warnings logged by tac_ecg_hf (e.g. "using the bundled checkpoint") as notes for stdout."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _notes(args) -> list[str]:
    """Warnings of the data layer and the library (UserWarning, not library deprecations) and logged notes."""
    caught, handler = getattr(args, "_notes_source", ([], None))
    notes = [
        str(w.message)
        for w in caught
        if issubclass(w.category, UserWarning) and not issubclass(w.category, FutureWarning)
    ]
    notes += handler.messages if handler is not None else []
    return list(dict.fromkeys(" ".join(n.split()) for n in notes if n.strip()))


@contextlib.contextmanager
def _quiet_libraries():
    """No library log lines or loading bars on stderr while a command runs (stderr carries only the one-line error);
    the previous settings are restored afterwards (``main`` may be called in-process). transformers is quietened when
    it is imported (a post-import hook, at once if it already is): a single prediction never imports it."""
    import huggingface_hub.utils as hub_utils

    from ._lazy import when_imported

    hub_bars_disabled = hub_utils.are_progress_bars_disabled()
    hub_utils.disable_progress_bars()
    state = {"active": True, "restore": []}

    def quiet_transformers(hf_logging) -> None:
        if not state["active"]:
            return  # imported after this command ended
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

        def restore() -> None:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()

        state["restore"].append(restore)

    when_imported("transformers.utils.logging", quiet_transformers)
    try:
        yield
    finally:
        state["active"] = False
        for restore in state["restore"]:
            restore()
        if not hub_bars_disabled:
            hub_utils.enable_progress_bars()


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) if str(err).strip() else type(err).__name__
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = " ".join(err.args[0].split())
    return text


def bad_input_message(err: BaseException) -> str | None:
    """The one-line message of an error that is the user's input (a record, an argument, a checkpoint, the Hub), or
    ``None`` for a bug.

    Bad input is what the package refuses with its own exception types
    (:func:`tac_ecg_hf.errors.bad_input_error_types`), a Hub failure, or an operating-system error (a missing file, a
    permission, a full disk). Any other exception -- a ``ValueError`` from numpy or torch included -- is a bug, and the
    CLI says "internal error" (exit status 1)."""
    from .hub.errors import describe_hub_error

    if isinstance(err, bad_input_error_types()):  # a HubAccessError's message already names the repo and revision
        return _one_line(err)
    hub = describe_hub_error(err)
    if hub is not None:
        return hub
    if isinstance(err, OSError):
        return _one_line(err)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run ``tac-ecg``. Bad input exits with status 2 and exactly one line on stderr; input files are only read."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = _NoteHandler()
    package_logger = logging.getLogger("tac_ecg_hf")
    package_logger.addHandler(handler)
    propagate = package_logger.propagate
    package_logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught, _quiet_libraries():
            warnings.simplefilter("always")
            args._notes_source = (caught, handler)
            try:
                return args.func(args)
            except KeyboardInterrupt:
                print(f"tac-ecg {args.command}: interrupted", file=sys.stderr)
                return 130
            except Exception as err:  # noqa: BLE001 - every failure becomes one line
                if os.environ.get("TAC_ECG_DEBUG"):
                    raise
                message = bad_input_message(err)
                if message is not None:
                    print(f"tac-ecg {args.command}: error: {message}", file=sys.stderr)
                    return EXIT_BAD_INPUT
                print(
                    f"tac-ecg {args.command}: internal error: {type(err).__name__}: {_one_line(err)} "
                    "(set TAC_ECG_DEBUG=1 for the traceback)",
                    file=sys.stderr,
                )
                return 1
    finally:
        package_logger.removeHandler(handler)
        package_logger.propagate = propagate


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
