#!/usr/bin/env python
"""Task adaptation (TAC-ECG phase 2) and its baselines: a Trainer script (every TrainingArguments flag works).

    # LRC-Adapter (serial, TAC-ECG) on a CETP-trained encoder, for CPSC2018's nine classes from every source
    python examples/finetune.py --task cpsc2018 --method lrc --base_model runs/cetp --output_dir runs/cpsc2018-lrc \
        --num_train_epochs 30 --per_device_train_batch_size 64 --bf16
    # baselines: mergeable low-rank conv, PEFT LoRA on Conv1d, linear probe, full fine-tuning, from scratch
    python examples/finetune.py --task ptbxl-super --method lora --base_model tac-ecg/xresnet1d101-cetp \
        --output_dir runs/lora
    # resume a killed run, 5-fold cross-validation, 10% of the labels
    python examples/finetune.py ... --resume_from_checkpoint True
    python examples/finetune.py ... --cv_folds 5 --cv_fold 2 --label_fraction 0.1

The output folder is a model repository: the encoder and its preprocessor_config.json at the root and, for adapter
methods, the adapter in <output_dir>/<task>/ with the held-out metrics (through the public predict path, with
bootstrap CIs) and calibrated thresholds in its adapter_config.json. `tac-ecg predict --model <output_dir>` uses it
and `tac-ecg push <output_dir> --repo-id org/name` publishes it with a model card. Runs under `accelerate launch` too.
"""

import sys

from tac_ecg_hf.distributed import end_distributed_run
from tac_ecg_hf.jsonutil import dumps
from tac_ecg_hf.training import (
    DataArguments,
    ModelArguments,
    command_line,
    default_learning_rate,
    parse_args,
    run_finetune,
)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, data_args, training_args = parse_args((ModelArguments, DataArguments), argv)
    if not any(a.split("=")[0] == "--learning_rate" for a in argv):  # the method's own default
        training_args.learning_rate = default_learning_rate(model_args.method)
    result = run_finetune(model_args, data_args, training_args, command=command_line("examples/finetune.py", argv))
    if training_args.process_index == 0:
        print(dumps(result.to_dict(), indent=2))
    end_distributed_run()  # under accelerate launch: the gloo group goes before the interpreter exits


if __name__ == "__main__":
    main()
