#!/usr/bin/env python
"""Distill a CLIP-like teacher into a smaller student inside ``transformers.Trainer``.

    accelerate launch recipes/distill_clip.py                      # embedded teacher -> ~half-size student
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \\
        recipes/distill_clip.py                                    # two real processes (gloo on CPU)
    python recipes/distill_clip.py --help                          # every option (ours and TrainingArguments')
    accelerate launch recipes/distill_clip.py --teacher openai/clip-vit-base-patch32 \\
        --dataset_name ... --image_column image --caption_column caption      # with the network

The same run is ``vlmcompress distill ...`` (or ``accelerate launch -m vlmcompress.cli distill ...``). The student is
inherited from the teacher (every 2nd layer, 25% of every MLP's neurons removed by Taylor importance) unless
``--student`` or ``--student_config`` says otherwise, trained with the similarity-matrix KL (T annealed 3 -> 1) and its
own contrastive loss, evaluated beside the teacher and written to ``--output_dir`` with its processor,
``compression_report.json`` and card.
Arguments are the dataclasses of ``vlmcompress.workflows.distill`` (``StudentArguments``, ``DataArguments``,
``DistillationConfig``, ``DistillTrainingArguments``), parsed by ``HfArgumentParser``.
"""

from vlmcompress.threads import use_training_thread_policy

use_training_thread_policy()  # this is a training process: spin OpenMP threads (before torch is imported)

import sys  # noqa: E402

from vlmcompress.workflows.distill import run_distillation  # noqa: E402


def main(argv=None):
    return run_distillation(argv, family="clip", prog="distill_clip")


if __name__ == "__main__":
    sys.exit(main())
