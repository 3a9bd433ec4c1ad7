"""Evaluation protocols on a user's data, as LAION's CLIP_benchmark defines them, so figures compare with published
ones.

- zero-shot classification: class embeddings by prompt ensembling (each class name in every template, embeddings
  normalised, averaged, renormalised), top-1 and top-5 accuracy and mean per-class recall;
- retrieval: every caption of every image; image->text recall@k is the share of images with at least one of their
  own captions among the k nearest texts, text->image recall@k the share of captions whose image is among the k
  nearest images (ground truth by image, never by label);
- captioning: greedy captions against every reference of the image, corpus BLEU-4 and ROUGE-L from the ``evaluate``
  modules shipped in ``vlmcompress/evaluation/metrics`` (loaded offline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import VlmcompressError
from ..report import EVAL_TASKS

TASKS = EVAL_TASKS  # declared in report.py, beside the evaluation set's other options
RECALL_KS = (1, 5, 10)
METRICS_FOLDER = Path(__file__).resolve().parent / "metrics"


def metric_path(name: str) -> str:
    """Folder of a shipped ``evaluate`` module (``bleu`` or ``rouge``): ``evaluate.load(metric_path("bleu"))``."""
    folder = METRICS_FOLDER / name
    if not (folder / f"{name}.py").is_file():
        raise VlmcompressError(f"no shipped metric {name!r}: expected one of "
                               f"{', '.join(sorted(p.name for p in METRICS_FOLDER.iterdir() if p.is_dir()))}")
    return str(folder)


def load_metric(name: str):
    """The shipped ``evaluate`` metric ``name`` (``bleu`` or ``rouge``), loaded from its folder (no network)."""
    import evaluate

    return evaluate.load(metric_path(name))


def check_task(eval_set, task: str, captioner: bool) -> list[str]:
    """The protocols to run on ``eval_set``; one-line errors for a set that cannot be scored as asked."""
    if task not in TASKS:
        raise VlmcompressError(f"--eval-task takes {', '.join(TASKS)}, got {task!r}")
    name = eval_set.name
    cols = ", ".join(c for c in eval_set.dataset.column_names)
    no_classes = (f"the evaluation set {name} has no datasets.ClassLabel label column for zero-shot classification "
                  f"(columns: {cols}; looked for label, labels, class): use an image folder (one subfolder per class), "
                  "cast the column with dataset.cast_column(name, ClassLabel(names=[...])), or name it with "
                  "--eval-label-column")
    no_captions = (f"the evaluation set {name} has no captions for {{}} (columns: {cols}; looked for captions, caption, "
                   "text, sentences): name the column with --eval-caption-column (a string, or a list of strings per "
                   "image)")
    if captioner:
        if task not in ("auto", "captioning"):
            raise VlmcompressError(f"a captioner is evaluated by captioning, not {task}: drop --eval-task or pass "
                                   "captioning")
        if not eval_set.captions:
            raise VlmcompressError(no_captions.format("captioning"))
        return ["captioning"]
    if task == "captioning":
        raise VlmcompressError("--eval-task captioning needs a captioner (BLIP for conditional generation); this model "
                               "is a two-tower model: use zero_shot or retrieval")
    if task == "zero_shot" and eval_set.class_names is None:
        raise VlmcompressError(no_classes)
    if task == "retrieval" and not eval_set.captions:
        raise VlmcompressError(no_captions.format("retrieval"))
    if task != "auto":
        return [task]
    tasks = (["zero_shot"] if eval_set.class_names is not None else []) + (["retrieval"] if eval_set.captions else [])
    if not tasks:
        raise VlmcompressError(f"the evaluation set {name} has neither a ClassLabel label column (zero-shot) nor "
                               f"captions (retrieval); columns: {cols}: name them with --eval-label-column / "
                               "--eval-caption-column")
    return tasks


def zero_shot_metrics(image_emb: torch.Tensor, class_emb: torch.Tensor, labels) -> dict:
    """Top-1/top-5 accuracy and mean per-class recall (the mean over classes present of the share of their images
    classified right) of cosine-similarity classification."""
    labels = torch.as_tensor(np.asarray(labels))
    logits = image_emb @ class_emb.t()
    classes = class_emb.shape[0]
    top = logits.topk(min(5, classes), dim=1).indices
    top1 = top[:, 0] == labels
    # top-5 of 5 classes or fewer is right by construction: not measured (None), as CLIP_benchmark leaves it out
    top5 = (top == labels[:, None]).any(dim=1).float().mean().item() if classes > 5 else None
    recalls = [top1[labels == c].float().mean().item() for c in labels.unique().tolist()]
    return {"zero_shot_accuracy": top1.float().mean().item(), "zero_shot_top5_accuracy": top5,
            "zero_shot_mean_per_class_recall": float(np.mean(recalls)), "zero_shot_classes": int(class_emb.shape[0])}


def retrieval_metrics(image_emb: torch.Tensor, text_emb: torch.Tensor, text_image: list, ks=RECALL_KS) -> dict:
    """Recall@k both ways with ground truth by image: ``text_image[j]`` is the image of caption ``j``."""
    text_image = torch.as_tensor(text_image)
    sim = image_emb @ text_emb.t()  # images x texts
    out = {}
    n_images, n_texts = sim.shape
    positives = torch.zeros(n_images, n_texts, dtype=torch.bool)
    positives[text_image, torch.arange(n_texts)] = True
    for k in ks:  # recall@k over k or fewer candidates finds every positive by construction: not measured (None)
        top_texts = sim.topk(min(k, n_texts), dim=1).indices  # per image
        out[f"recall_at_{k}_i2t"] = positives.gather(1, top_texts).any(dim=1).float().mean().item() if k < n_texts else None
        top_images = sim.t().topk(min(k, n_images), dim=1).indices  # per text
        out[f"recall_at_{k}_t2i"] = ((top_images == text_image[:, None]).any(dim=1).float().mean().item()
                                     if k < n_images else None)
    out["retrieval_images"], out["retrieval_texts"] = int(n_images), int(n_texts)
    return out


def caption_metrics(predictions: list, references: list) -> dict:
    """Corpus BLEU-4 and mean ROUGE-L of ``predictions`` against every reference of each image."""
    bleu = load_metric("bleu").compute(predictions=predictions, references=references)
    rouge = load_metric("rouge").compute(predictions=predictions, references=references)
    return {"bleu_4": float(bleu["bleu"]), "rouge_l": float(rouge["rougeL"])}
