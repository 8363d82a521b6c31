"""The ``tac-ecg`` command line.

    tac-ecg predict RECORD --task ptbxl-super [--model tac-ecg/xresnet1d101-cetp] [--plot out.png] [--json]
    tac-ecg list
    tac-ecg evaluate --model tac-ecg/xresnet1d101-cetp --task ptbxl-super [--data-dir ../shared/data]
    tac-ecg push tac-ecg/xresnet1d101-cetp [--endpoint URL] [--token TOKEN] [--repo-id other/name]
    tac-ecg demo [--data-dir ../shared/data]

Input files are only ever read. On bad input the command exits with status 2 and a one-line reason.
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

EXIT_BAD_INPUT = 2


def _default_data_dir() -> str:
    env = os.environ.get("TAC_ECG_DATA")
    if env:
        return env
    here = Path.cwd()
    for candidate in (here / "../shared/data", here / "shared/data", Path(__file__).resolve().parents[2] / "../shared/data"):
        if candidate.is_dir():
            return str(candidate.resolve())
    return str((here / "../shared/data").resolve())


def _record_files(path: Path) -> set[Path]:
    """The input file and its companions (header, signal files, sidecar) of a record path, resolved."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".hea", ".mat", ".dat", ".npy", ".csv", ".json") else path
    files = {path, *(stem.parent / (stem.name + ext) for ext in (".hea", ".mat", ".dat", ".npy", ".csv", ".json"))}
    return {f.resolve() for f in files}


def _check_output_path(out: str | None, record: str) -> None:
    """Refuse to write a plot over the record or one of its companion files (the user's input is never lost)."""
    if not out:
        return
    target = Path(out).resolve()
    if target in _record_files(Path(record)):
        raise ValueError(f"--plot {out} would overwrite the input record's files; choose another path such as out.png.")
    if target.is_dir():
        raise ValueError(f"--plot {out} is a directory; give a file name such as out.png.")


def _write_plot_atomically(figure_writer, path: str) -> None:
    """Render to a temporary file next to ``path`` and rename it into place: no half-written PNG on a crash."""
    import tempfile

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp.png", dir=target.parent)
    os.close(fd)
    try:
        figure_writer(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _cmd_predict(args) -> int:
    import torch

    torch.set_num_threads(max(1, args.threads))
    from .data import read_record
    from .inference import ECGTaskClassifier

    leads = args.leads.split(",") if args.leads else None
    _check_output_path(args.plot, args.record)
    # read (and so validate) the record before the slower model load; it is read once and only read
    extra = {"gain": args.gain} if args.gain is not None else {}
    record = read_record(args.record, lead_names=leads, sampling_rate=args.fs, **extra)
    clf = ECGTaskClassifier.from_pretrained(
        args.model, tasks=[args.task], revision=args.revision, allow_pickle=args.allow_pickle
    )
    prediction = clf.predict(record, task=args.task, threshold=args.threshold)
    notes = _notes(args)
    if args.json:
        print(json.dumps({**prediction.to_dict(), "notes": notes}, indent=2))
    else:
        for note in notes:
            print(f"note: {note}")
        print(prediction.format())
    if args.plot:
        from .plotting import plot_ecg

        _write_plot_atomically(
            lambda tmp: plot_ecg(
                record.signal,
                record.sampling_rate,
                list(record.lead_names),
                title=f"{record.record_id} - {args.task}"
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


def _cmd_list(args) -> int:
    from .hub import bundled_path, bundled_repo_ids
    from .inference import available_tasks

    repo_ids = bundled_repo_ids()
    if not repo_ids:
        print("no bundled models in this installation; pass --model <Hub id or folder> to tac-ecg predict")
    for repo_id in repo_ids:
        path = bundled_path(repo_id)
        config = json.loads((path / "config.json").read_text())
        print(f"{repo_id}  ({config.get('model_type')}, {config.get('sampling_rate')} Hz, {config.get('num_samples')} samples)")
        for task in available_tasks(path):
            adapter = json.loads((path / "adapters" / task / "adapter_config.json").read_text())
            metrics = adapter.get("metrics") or {}
            auc = metrics.get("test_macro_auc")
            extra = f"  test macro-AUC {auc:.3f}" if isinstance(auc, (int, float)) else ""
            print(f"    adapter {task:<12} {adapter.get('variant')} r={adapter.get('r')}  labels={adapter.get('labels')}{extra}")
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluation import evaluate_bundled

    result = evaluate_bundled(args.model, args.task, data_dir=args.data_dir, split=args.split, revision=args.revision)
    print(json.dumps(result, indent=2))
    return 0


def _cmd_push(args) -> int:
    from .hub import push_bundled

    info = push_bundled(args.model, endpoint=args.endpoint, token=args.token, private=args.private, target_repo_id=args.repo_id)
    print(f"pushed {args.model} to {getattr(info, 'commit_url', None) or args.repo_id or args.model}")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(data_dir=args.data_dir, output_dir=args.output_dir, quick=args.quick)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``tac-ecg predict: error: ...``) and exit status 2, without the usage block."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {' '.join(str(message).split())}\n")


def build_parser() -> argparse.ArgumentParser:
    from .inference import DEFAULT_MODEL
    from .tasks import TASKS

    parser = _Parser(prog="tac-ecg", description="TAC-ECG on the Hugging Face stack.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="classify one ECG record with a task adapter")
    p.add_argument("record", help="WFDB header (.hea with .dat or .mat), .mat, .npy or .csv file")
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model id or directory (default {DEFAULT_MODEL})")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument("--fs", type=float, default=None, help="sampling rate in Hz (needed for .npy/.csv without sidecar)")
    p.add_argument("--leads", default=None, help="comma-separated lead names of the file's rows/columns")
    p.add_argument("--gain", type=float, default=None, help="ADC units per mV for integer .mat/.npy/.csv files without a header")
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold for multi-label tasks")
    p.add_argument("--plot", default=None, help="write a PNG of the leads with the prediction")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1: one record is small, and extra threads only wait on busy cores)",
    )
    p.add_argument(
        "--allow-pickle", action="store_true",
        help="also load pickle checkpoints (pytorch_model.bin / adapter_model.bin); only for files you trust",
    )
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("list", help="list bundled models and their task adapters")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("evaluate", help="evaluate a model's task adapter on the held-out split of the real data")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--data-dir", default=_default_data_dir())
    p.add_argument("--split", default="test")
    p.add_argument("--revision", default=None)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("push", help="publish a bundled model (encoder + adapters + card) to a Hub")
    p.add_argument("model", help="bundled model id, e.g. tac-ecg/xresnet1d101-cetp")
    p.add_argument("--repo-id", default=None, help="target repo id (default: the same id)")
    p.add_argument("--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    p.add_argument("--token", default=None)
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser("demo", help="run CETP -> LRC-Adapter -> evaluation on the real data (a few minutes on CPU)")
    p.add_argument("--data-dir", default=_default_data_dir())
    p.add_argument("--output-dir", default=None, help="where to write the demo's models and plots (default: a temp dir)")
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
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    notes += handler.messages if handler is not None else []
    return list(dict.fromkeys(" ".join(n.split()) for n in notes if n.strip()))


@contextlib.contextmanager
def _quiet_libraries():
    """No progress bars or library log lines on stderr while a command runs (stderr carries only the one-line
    error); the previous settings are restored afterwards (``main`` may be called in-process)."""
    from transformers.utils import logging as hf_logging
    import huggingface_hub.utils as hub_utils

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hub_bars_disabled = hub_utils.are_progress_bars_disabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_utils.disable_progress_bars()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        if not hub_bars_disabled:
            hub_utils.enable_progress_bars()


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) if str(err).strip() else type(err).__name__
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = " ".join(err.args[0].split())
    return text


def main(argv: list[str] | None = None) -> int:
    """Run ``tac-ecg``. Bad input (unreadable or inconsistent records, unknown model/task, refused checkpoints,
    Hub errors) exits with status 2 and exactly one line on stderr, ``tac-ecg <command>: error: <reason>``;
    input files are only read."""
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
                from .adapters.lrc import AdapterMismatchError
                from .data.errors import ECGInputError
                from .hub.errors import HubAccessError

                bad_input = (ECGInputError, AdapterMismatchError, HubAccessError, ValueError, KeyError, OSError)
                if isinstance(err, bad_input):
                    print(f"tac-ecg {args.command}: error: {_one_line(err)}", file=sys.stderr)
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
