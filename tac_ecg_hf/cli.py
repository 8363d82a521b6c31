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
import json
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


def _cmd_predict(args) -> int:
    from .inference import ECGTaskClassifier

    clf = ECGTaskClassifier.from_pretrained(args.model, tasks=[args.task], revision=args.revision)
    leads = args.leads.split(",") if args.leads else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prediction = clf.predict(args.record, task=args.task, sampling_rate=args.fs, lead_names=leads, threshold=args.threshold)
    notes = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
    if args.json:
        print(json.dumps({**prediction.to_dict(), "notes": notes}, indent=2))
    else:
        for note in notes:
            print(f"note: {note}")
        print(prediction.format())
    if args.plot:
        from .data import read_record
        from .plotting import plot_ecg

        record = read_record(args.record, lead_names=leads, sampling_rate=args.fs)
        plot_ecg(
            record.signal,
            record.sampling_rate,
            list(record.lead_names),
            title=f"{record.record_id} - {args.task}",
            prediction=dict(zip(prediction.labels, map(float, prediction.probabilities))),
            decision=prediction.decision,
            path=args.plot,
        )
        print(f"plot written to {args.plot}")
    return 0


def _cmd_list(args) -> int:
    from .hub import bundled_path, bundled_repo_ids
    from .inference import available_tasks

    for repo_id in bundled_repo_ids():
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


def build_parser() -> argparse.ArgumentParser:
    from .inference import DEFAULT_MODEL
    from .tasks import TASKS

    parser = argparse.ArgumentParser(prog="tac-ecg", description="TAC-ECG on the Hugging Face stack.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="classify one ECG record with a task adapter")
    p.add_argument("record", help="WFDB header (.hea with .dat or .mat), .mat, .npy or .csv file")
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model id or directory (default {DEFAULT_MODEL})")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument("--fs", type=float, default=None, help="sampling rate in Hz (needed for .npy/.csv without sidecar)")
    p.add_argument("--leads", default=None, help="comma-separated lead names of the file's rows/columns")
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold for multi-label tasks")
    p.add_argument("--plot", default=None, help="write a PNG of the leads with the prediction")
    p.add_argument("--json", action="store_true", help="print JSON")
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .adapters.lrc import AdapterMismatchError
    from .data.errors import ECGInputError

    try:
        from .hub.errors import HubAccessError
    except ImportError:  # pragma: no cover
        HubAccessError = RuntimeError  # noqa: N806
    try:
        return args.func(args)
    except (ECGInputError, AdapterMismatchError, HubAccessError, FileNotFoundError, ValueError, KeyError, OSError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if isinstance(err, KeyError):
            message = message.strip("'\"")
        print(f"tac-ecg {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
