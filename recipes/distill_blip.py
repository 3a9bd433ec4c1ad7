#!/usr/bin/env python
"""Distill a BLIP captioner into a smaller one inside ``transformers.Trainer`` (``distill_clip.py``'s run with BLIP
defaults).

    accelerate launch recipes/distill_blip.py                      # embedded BLIP captioner -> smaller captioner
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \\
        recipes/distill_blip.py                                    # two real processes (gloo on CPU)
    python recipes/distill_blip.py --help                          # every option
    accelerate launch recipes/distill_blip.py --teacher Salesforce/blip-image-captioning-base \\
        --dataset_name ... --image_column image --caption_column text    # with the network

The same run is ``vlmcompress distill --family blip ...``. The student inherits every 2nd layer of the vision tower
and of the text decoder and loses 35% of every MLP's neurons by Taylor importance; it is trained with the token-level
KL on the decoder's next-token logits and its own captioning loss (the hidden-state loss is there, off by default).
Teacher and student are measured by how often their greedy caption names the right number. Defaults are the
``Blip*Arguments`` dataclasses of ``vlmcompress.workflows.distill``.
"""

from vlmcompress.threads import use_training_thread_policy

use_training_thread_policy()  # this is a training process: spin OpenMP threads (before torch is imported)

import sys  # noqa: E402

from vlmcompress.workflows.distill import run_distillation  # noqa: E402


def main(argv=None):
    return run_distillation(argv, family="blip", prog="distill_blip")


if __name__ == "__main__":
    sys.exit(main())
