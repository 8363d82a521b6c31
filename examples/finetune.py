#!/usr/bin/env python
"""Task adaptation (TAC-ECG phase 2) and its baselines with Trainer + Accelerate.

    # LRC-Adapter (serial, TAC-ECG) on a CETP-trained encoder
    python examples/finetune.py --task ptbxl-super --method lrc --base runs/cetp-xresnet/encoder --output-dir runs/ptbxl-lrc
    # baselines: mergeable low-rank conv, PEFT LoRA on Conv1d, linear probe, full fine-tuning, from scratch
    python examples/finetune.py --task ptbxl-super --method lora --base runs/cetp-xresnet/encoder --output-dir runs/ptbxl-lora

--data-dir is the folder holding ptbxl/, cpsc2018/, cinc2017/ (like ../shared/data). For adapter methods the adapter
is saved under ``<output-dir>/adapters/<task>`` (adapter_config.json + adapter_model.safetensors), with the test
metrics in its config; other methods save the whole model.
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

from accelerate import PartialState

from tac_ecg_hf.evaluation import load_task_dataset
from tac_ecg_hf.tasks import TASKS
from tac_ecg_hf.training import METHODS, finetune, save_finetuned


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--method", default="lrc", choices=METHODS)
    p.add_argument("--base", default=None, help="pre-trained encoder (directory or Hub id); not used by --method scratch")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--encoder", default="xresnet1d101", help="encoder preset for --method scratch")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--epochs", type=float, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--max-records", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    config = {"max_records": args.max_records} if args.max_records else {}
    dataset = load_task_dataset(args.task, args.data_dir, **config)
    print({split: len(ds) for split, ds in dataset.items()})
    model, result = finetune(
        dataset,
        args.task,
        args.method,
        base=args.base,
        output_dir=args.output_dir,
        seed=args.seed,
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        rank=args.rank,
        encoder=args.encoder,
    )
    if not PartialState().is_main_process:  # under `accelerate launch`, one process writes
        return
    command = " ".join(["python examples/finetune.py", *map(shlex.quote, argv if argv is not None else sys.argv[1:])])
    saved = save_finetuned(model, result, Path(args.output_dir), command=command)
    print(json.dumps(result.to_dict(), indent=2))
    print(f"saved to {saved}")


if __name__ == "__main__":
    main()
