#!/usr/bin/env python
"""CETP pre-training (TAC-ECG phase 1) on every ECG-text pair at hand: a Trainer script.

    python examples/pretrain_cetp.py --data_dir ../shared/data --encoder xresnet1d101 --output_dir runs/cetp \
        --num_train_epochs 30 --per_device_train_batch_size 64 --learning_rate 1e-3 --augment --bf16 \
        --load_best_model_at_end --metric_for_best_model eval_loss --greater_is_better false

Pairs: PTB-XL reports and English SCP statement texts, LUDB's diagnoses, the SNOMED-CT descriptions of the PhysioNet
2020 records' codes (training splits only; validation for model selection; test records never). The output folder holds
the ECG encoder with its preprocessor_config.json at the root (what the task adapters train on) and the dual encoder in
cetp/ (ECG tower, projections, temperature; the text tower is referenced by id, not copied) for zero-shot use. Any
Hugging Face text model works with --text_model. Runs under `accelerate launch` (the loss gathers features across
processes).
"""

from tac_ecg_hf.distributed import end_distributed_run
from tac_ecg_hf.jsonutil import dumps
from tac_ecg_hf.training import CETPArguments, DataArguments, command_line, parse_args, run_pretrain_cetp


def main(argv=None):
    cetp_args, data_args, training_args = parse_args(
        (CETPArguments, DataArguments), argv, defaults={"learning_rate": "1e-3", "per_device_train_batch_size": "64"}
    )
    _, metrics = run_pretrain_cetp(
        cetp_args, data_args, training_args, command=command_line("examples/pretrain_cetp.py", argv)
    )
    if training_args.process_index == 0:
        print(dumps(metrics, indent=2))
    end_distributed_run()  # under accelerate launch: the gloo group goes before the interpreter exits


if __name__ == "__main__":
    main()
