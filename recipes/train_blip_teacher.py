#!/usr/bin/env python
"""Train the embedded BLIP teacher: a BlipForConditionalGeneration captioner from scratch on two-digit MNIST numbers.

    python recipes/train_blip_teacher.py --output_dir outputs/blip-teacher
    python recipes/train_blip_teacher.py --output_dir src/vlmcompress/assets/blip-digits-captioner   # the shipped one

Every step draws fresh images (random training digit images, shifts of at most 2 px) of numbers seen in training,
each with a caption from a random template; the loss is the decoder's next-token cross-entropy. As for the CLIP
teacher, an auxiliary linear probe must read the tens and units digit off the vision tower's pooled output (thrown
away afterwards): a captioner from scratch otherwise spends its first hundreds of steps learning the templates
before it looks at the image. At the end the model is evaluated on the test split (how often its greedy caption names
the right number, seen and held-out numbers separately) and saved with its processor and ``compression_report.json``.
"""

from __future__ import annotations

from vlmcompress.threads import use_training_thread_policy

use_training_thread_policy()  # a training process: spin OpenMP threads (before torch is imported)

from transformers import HfArgumentParser  # noqa: E402

from vlmcompress.embedded.training import BlipTeacherArguments, train_blip_teacher  # noqa: E402


def main(args: BlipTeacherArguments | None = None) -> dict:
    if args is None:
        (args,) = HfArgumentParser(BlipTeacherArguments).parse_args_into_dataclasses()
    return train_blip_teacher(args)


if __name__ == "__main__":
    main()
