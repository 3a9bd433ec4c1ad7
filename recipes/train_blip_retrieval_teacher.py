#!/usr/bin/env python
"""Train a BLIP retrieval teacher on the digits: a BlipForImageTextRetrieval that inherits the embedded captioner.

    python recipes/train_blip_retrieval_teacher.py --output_dir outputs/blip-retrieval-teacher

The retrieval model is built from the embedded BLIP captioner's config: its vision tower is the captioner's (already
trained on the digits), its text encoder starts from the captioner's decoder (the same BERT layers, self-attention,
cross-attention to the image and MLP; used bidirectionally here), and the ITC projections and the ITM head start
random. It is trained with BLIP's own retrieval objective through the model adapter (``training_loss``): the
image-text contrastive loss (ITC, every pair showing the same number is a positive) plus image-text matching (ITM:
each image with its caption and with the next row's, a negative unless it names the same number). Every step draws
fresh images of seen numbers with a caption from a random template. At the end it is evaluated zero-shot on the test
split through its ITC embeddings (seen and held-out numbers) and saved with its processor and
``compression_report.json``. ``benchmarks/run.py --suite blip_retrieval`` distils from it (ITC and ITM terms).
"""

from __future__ import annotations

from vlmcompress.threads import use_training_thread_policy

use_training_thread_policy()  # a training process: spin OpenMP threads (before torch is imported)

from transformers import HfArgumentParser  # noqa: E402

from vlmcompress.embedded.training import RetrievalTeacherArguments, train_blip_retrieval_teacher  # noqa: E402


def main(args: RetrievalTeacherArguments | None = None) -> dict:
    if args is None:
        (args,) = HfArgumentParser(RetrievalTeacherArguments).parse_args_into_dataclasses()
    return train_blip_retrieval_teacher(args)


if __name__ == "__main__":
    main()
