#!/usr/bin/env python
"""Distill a BLIP captioner into a smaller one inside ``transformers.Trainer`` (``recipes/distill_clip.py``'s run
with BLIP defaults).

    accelerate launch recipes/distill_blip.py                      # embedded BLIP captioner -> smaller captioner
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \\
        recipes/distill_blip.py                                    # two real processes (gloo on CPU)
    python recipes/distill_blip.py --help                          # every option
    accelerate launch recipes/distill_blip.py --teacher Salesforce/blip-image-captioning-base \\
        --dataset_name ... --image_column image --caption_column text    # with the network

The student inherits every 2nd layer of the vision tower and of the text decoder (and loses 35% of every MLP's
neurons by Taylor importance: 48.6% of the teacher's parameters) and is trained with the token-level KL on the
decoder's next-token logits and its own captioning loss (the hidden-state loss is there, off by default: it cost
held-out accuracy in our runs). Teacher and student are measured by how
often their greedy caption names the right number (seen and held-out numbers), and the student is written to
``--output_dir`` with its processor, ``compression_report.json`` and model card.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the sibling recipe, also under accelerate launch

import distill_clip  # noqa: E402

from vlmcompress.distillation import DistillationConfig  # noqa: E402


@dataclass
class BlipStudentArguments(distill_clip.StudentArguments):
    teacher: str | None = field(default=None, metadata={"help": "Teacher captioner: save_pretrained folder or Hub id (default: the embedded BLIP captioner)."})
    towers: str = field(default="vision,text_decoder", metadata={"help": "Towers the inherited student shrinks."})
    mlp_ratio: float = field(default=0.35, metadata={"help": "Inherited student: fraction of MLP neurons removed in every layer."})

    def teacher_path(self) -> str:
        from vlmcompress.teacher_blip import blip_teacher_path

        return self.teacher or blip_teacher_path()


@dataclass
class BlipDataArguments(distill_clip.DataArguments):
    eval_images_per_number: int = field(default=20, metadata={"help": "Embedded data: test images per number (greedy captioning of each)."})
    train_images_per_number: int = field(default=120, metadata={"help": "Embedded data: training images per seen number (90 numbers)."})
    eval_split: str = field(default="test", metadata={"help": "Split used for evaluation (a label column scores captions by number; else exact match)."})
    cache_teacher: str = field(default="false", metadata={"choices": ["auto", "true", "false"], "help": "Teacher caching holds image/text embeddings, which captioners do not distill from: off."})


@dataclass
class BlipDistillationConfig(DistillationConfig):
    logit_weight: float = field(default=0.0, metadata={"help": "Two-tower models only (0 for captioners)."})
    embedding_weight: float = field(default=0.0, metadata={"help": "Two-tower models only (0 for captioners)."})
    token_weight: float = field(default=1.0, metadata={"help": "Weight of the token-level KL on the decoder's next-token logits."})
    token_temperature: float = field(default=2.0, metadata={"help": "Softmax temperature of the token-level KL (x T^2)."})
    hidden_weight: float = field(default=0.0, metadata={"help": "Weight of the hidden-state loss (vision and decoder layers the student inherited); off: it cost held-out accuracy in our runs."})
    caption_weight: float = field(default=0.5, metadata={"help": "Weight of the student's own captioning loss."})


@dataclass
class BlipTrainingArguments(distill_clip.DistillTrainingArguments):
    output_dir: str = field(default="outputs/distill_blip", metadata={"help": "Where the student, its processor and compression_report.json go."})
    max_steps: int = field(default=1500, metadata={"help": "Optimizer steps."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Image-caption pairs per step and process."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (AdamW)."})


ARGUMENTS = (BlipStudentArguments, BlipDataArguments, BlipDistillationConfig, BlipTrainingArguments)


def main(argv=None):
    return distill_clip.main(argv, arguments=ARGUMENTS, prog="distill_blip")


if __name__ == "__main__":
    distill_clip.run(arguments=ARGUMENTS, prog="distill_blip")
