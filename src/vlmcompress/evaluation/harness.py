"""Evaluation harness for CLIP, SigLIP and BLIP: zero-shot accuracy, recall@k or caption accuracy, size, memory, latency.

Works on full-precision, pruned and bitsandbytes-quantized models alike: it only talks to the model
through its adapter and measures what the loaded model really is.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..adapters import get_adapter
from ..embedded import digits
from ..errors import VlmcompressError
from ..report import (EVAL_BATCH_SIZE, EVAL_TASKS, LATENCY_BATCH_SIZE, LATENCY_REPEATS, empty_metrics,
                      weights_size_bytes)
from ..utils import progress
from .eval_sets import EMBEDDED, NO_EVAL, EvalSet, eval_set_from_dataset
from .protocols import caption_metrics, check_task, retrieval_metrics, zero_shot_metrics
from .templates import load_templates, templates_name

RETRIEVAL_PER_CLASS = 10
NOT_MEASURED_NOTE = ("accuracy not measured: no evaluation set was named (pass --eval-dataset: a datasets folder or "
                     "name, an image folder, or a CSV/JSON of image paths and captions; vlmcompress/digits-test is the "
                     "embedded benchmark)")


def check_dataset(dataset, image_column="image", text_column="text", label_column="label"):
    """One-line errors for what the harness cannot use."""
    if dataset is None or len(dataset) == 0:
        raise VlmcompressError("the evaluation data set is empty: expected rows with an image, a caption and a label")
    missing = [c for c in (image_column, text_column, label_column) if c not in dataset.column_names]
    if missing:
        raise VlmcompressError(
            f"the evaluation data set has no column {', '.join(repr(c) for c in missing)} "
            f"(it has {', '.join(dataset.column_names)}); name them with --image-column/--text-column/--label-column"
        )


def _batches(n, batch_size):
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


@torch.inference_mode()
def encode_images(adapter, processor, images, batch_size=EVAL_BATCH_SIZE, desc="images"):
    device, dtype = adapter.device(), adapter.input_dtype()
    out = []
    for sl in progress(list(_batches(len(images), batch_size)), desc=f"encoding {desc}", leave=False):
        pixel_values = processor(images=images[sl], return_tensors="pt")["pixel_values"]
        emb = adapter.image_embeddings(pixel_values.to(device=device, dtype=dtype))
        out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu())
    return torch.cat(out)


@torch.inference_mode()
def encode_texts(adapter, tokenizer, texts, batch_size=512):
    device = adapter.device()
    out = []
    for sl in _batches(len(texts), batch_size):
        enc = tokenizer(list(texts[sl]), truncation=True, return_tensors="pt", **adapter.text_padding)
        mask = enc["attention_mask"].to(device) if "attention_mask" in enc else None
        emb = adapter.text_embeddings(enc["input_ids"].to(device), mask)
        out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu())
    return torch.cat(out)


def class_embeddings(adapter, tokenizer, class_prompts):
    """Prompt ensembling: mean of each class's normalized prompt embeddings, renormalized."""
    flat = [p for prompts in class_prompts for p in prompts]
    counts = [len(p) for p in class_prompts]
    emb = encode_texts(adapter, tokenizer, flat)
    chunks = torch.split(emb, counts)
    return torch.nn.functional.normalize(torch.stack([c.mean(0) for c in chunks]), dim=-1)


def recall_at_k(similarity: torch.Tensor, query_labels, target_labels, k: int) -> float | None:
    """Share of queries whose top-k targets contain one with the query's label (None with k or fewer targets: every
    query would find its positive by construction)."""
    if k >= similarity.shape[1]:
        return None
    top = similarity.topk(k, dim=1).indices
    target_labels = torch.as_tensor(target_labels)
    query_labels = torch.as_tensor(query_labels)
    hit = (target_labels[top] == query_labels[:, None]).any(dim=1)
    return hit.float().mean().item()


def _tokenizer_of(processor):
    return getattr(processor, "tokenizer", processor)


@torch.inference_mode()
def measure_latency(adapter, image_processor, tokenizer, images, texts, batch_size=LATENCY_BATCH_SIZE, warmup=2,
                    repeats=LATENCY_REPEATS):
    """Median wall time of a full image+text forward at ``batch_size``, after warm-up batches (captioners: the image
    and a teacher-forced caption through the decoder)."""
    n = len(images)
    idx = [i % n for i in range(batch_size)]
    pixel_values = image_processor(images=[images[i] for i in idx], return_tensors="pt")["pixel_values"]
    pixel_values = pixel_values.to(device=adapter.device(), dtype=adapter.input_dtype())
    enc = tokenizer([texts[i % len(texts)] for i in idx], truncation=True, return_tensors="pt", **adapter.text_padding)
    input_ids = enc["input_ids"].to(adapter.device())
    mask = enc["attention_mask"].to(adapter.device()) if "attention_mask" in enc else None
    cuda = adapter.device().type == "cuda"
    times = []
    for i in range(warmup + repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        adapter.latency_forward(pixel_values, input_ids, mask)
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def interleaved_latency(models: dict, processor, batch_size: int = 32, rounds: int = 5, images=None, texts=None):
    """Each model's latency over ``rounds`` rounds in which the models take turns (each turn the median of 7 timed
    batches), so load from other processes on a shared machine hits all of them alike. Returns
    ``({name: median ms}, {name: [ms per round]})``; inputs default to the embedded test images and captions."""
    if images is None or texts is None:
        ds = digits.load_digits_dataset("test", images_per_number=1)
        images, texts = ds["image"], ds["text"]
    image_processor = getattr(processor, "image_processor", processor)
    tokenizer = _tokenizer_of(processor)
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            times[name].append(measure_latency(get_adapter(model), image_processor, tokenizer, images, texts,
                                               batch_size=batch_size))
    return {name: statistics.median(t) for name, t in times.items()}, times


def latency_comparison(base, model, processor, batch_size: int = 32, rounds: int = 5) -> dict:
    """``model``'s latency relative to ``base``, measured side by side in this process (interleaved rounds): the
    median ratio and its spread over rounds, and both models' per-round figures. A ratio from one run is what a
    card can honestly show; two latencies from two runs on a shared machine are not comparable."""
    _, times = interleaved_latency({"base": base, "model": model}, processor, batch_size=batch_size, rounds=rounds)
    ratios = [m / b for m, b in zip(times["model"], times["base"])]
    return {"ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "rounds": rounds, "batch_size": batch_size, "threads": torch.get_num_threads(),
            "base_ms": [round(t, 3) for t in times["base"]], "model_ms": [round(t, 3) for t in times["model"]],
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


@torch.inference_mode()
def caption_images(adapter, processor, images, batch_size=128, max_new_tokens=12) -> list[str]:
    """Greedy captions, decoded without special tokens."""
    image_processor = getattr(processor, "image_processor", processor)
    tokenizer = _tokenizer_of(processor)
    captions = []
    for sl in progress(list(_batches(len(images), batch_size)), desc="captions", leave=False):
        pixel_values = image_processor(images=images[sl], return_tensors="pt")["pixel_values"]
        ids = adapter.generate_captions(pixel_values, max_new_tokens=max_new_tokens)
        captions += tokenizer.batch_decode(ids, skip_special_tokens=True)
    return captions


def _split_accuracy(metrics, key, correct, labels, heldout_labels):
    """``key`` over labels seen in training and ``key_heldout`` over ``heldout_labels`` (or ``key`` over all)."""
    heldout = np.isin(labels, np.asarray(list(heldout_labels or []), dtype=labels.dtype))
    if heldout_labels:
        metrics[key] = float(correct[~heldout].mean()) if (~heldout).any() else None
        metrics[f"{key}_heldout"] = float(correct[heldout].mean()) if heldout.any() else None
    else:
        metrics[key] = float(correct.mean())


def _caption_metrics(metrics, adapter, processor, images, labels, heldout_labels, batch_size):
    """Embedded data: a caption is right when it names the image's number."""
    captions = caption_images(adapter, processor, images, batch_size=batch_size)
    correct = np.asarray([digits.number_in_caption(c) == int(lab) for c, lab in zip(captions, labels)])
    _split_accuracy(metrics, "caption_accuracy", correct, labels, heldout_labels)
    metrics["caption_examples"] = captions[:5]


def size_on_disk(model, model_path=None) -> int:
    """Bytes of the weight files: of ``model_path`` when it is a local checkpoint, else of a fresh save."""
    if model_path is not None and Path(model_path).is_dir():
        try:
            return weights_size_bytes(model_path)
        except FileNotFoundError:
            pass
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return weights_size_bytes(tmp)


def count_parameters(model) -> int:
    """Logical parameter count (a 4-bit packed weight counts its unpacked elements)."""
    if hasattr(model, "num_parameters"):
        return int(model.num_parameters())
    return sum(p.numel() for p in model.parameters())


def _retrieval_metrics(metrics, adapter, image_processor, tokenizer, images, labels, texts, class_prompts,
                       heldout_labels, batch_size):
    """Zero-shot accuracy (seen/held-out) and recall@k into ``metrics``."""
    if labels.max() >= len(class_prompts) or labels.min() < 0:
        raise VlmcompressError(f"labels run from {labels.min()} to {labels.max()} but there are {len(class_prompts)} classes")

    image_emb = encode_images(adapter, image_processor, images, batch_size=batch_size)
    class_emb = class_embeddings(adapter, tokenizer, class_prompts)
    pred = (image_emb @ class_emb.t()).argmax(dim=1).numpy()
    correct = pred == labels

    _split_accuracy(metrics, "zero_shot_accuracy", correct, labels, heldout_labels)
    metrics["zero_shot_accuracy_all"] = float(correct.mean())
    metrics["zero_shot_classes"] = len(class_prompts)

    # retrieval on a class-balanced subset: up to RETRIEVAL_PER_CLASS images per label, each with its own caption;
    # a hit is a retrieved item of the same label (captions of one number are interchangeable)
    seen_count: dict = {}
    subset = []
    for i, lab in enumerate(labels.tolist()):
        if seen_count.get(lab, 0) < RETRIEVAL_PER_CLASS:
            seen_count[lab] = seen_count.get(lab, 0) + 1
            subset.append(i)
    subset_t = torch.as_tensor(subset)
    text_emb = encode_texts(adapter, tokenizer, [texts[i] for i in subset])
    sim = image_emb[subset_t] @ text_emb.t()
    sub_labels = labels[subset]
    for k in (1, 5):
        metrics[f"recall_at_{k}_i2t"] = recall_at_k(sim, sub_labels, sub_labels, k)
        metrics[f"recall_at_{k}_t2i"] = recall_at_k(sim.t(), sub_labels, sub_labels, k)
    metrics["retrieval_pairs"] = len(subset)


class _LazyImages:
    """An ``EvalSet``'s images, decoded a slice at a time (a whole COCO test split does not fit in memory decoded)."""

    def __init__(self, eval_set):
        self.eval_set = eval_set

    def __len__(self):
        return len(self.eval_set)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.eval_set.images(index)
        return self.eval_set.images(slice(index, index + 1))[0]


def synthetic_inputs(processor, n: int = 8):
    """Noise images at the processor's size and short captions: latency inputs when no evaluation set is named."""
    from PIL import Image

    image_processor = getattr(processor, "image_processor", processor)
    side = 224
    for attr in ("crop_size", "size"):
        size = getattr(image_processor, attr, None)
        if isinstance(size, int):
            side = size
            break
        found = next((getattr(size, k, None) or (size.get(k) if hasattr(size, "get") else None)
                      for k in ("height", "shortest_edge") if size is not None), None)
        if found:
            side = int(found)
            break
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(n)]
    texts = [f"a photo of a {w}." for w in ("dog", "cat", "car", "tree", "house", "bird", "boat", "chair")][:n]
    return images, texts


def _measure_user_set(metrics, adapter, processor, eval_set: EvalSet, tasks, *, templates, class_prompts,
                      heldout_labels, batch_size):
    tokenizer = _tokenizer_of(processor)
    image_processor = getattr(processor, "image_processor", processor)
    images = _LazyImages(eval_set)
    if "captioning" in tasks:
        predictions = caption_images(adapter, processor, images, batch_size=batch_size, max_new_tokens=30)
        metrics.update(caption_metrics(predictions, eval_set.captions))

        def norm(text):
            return " ".join(str(text).lower().strip(" .").split())

        exact = np.asarray([norm(p) in {norm(r) for r in refs} for p, refs in zip(predictions, eval_set.captions)])
        metrics["caption_accuracy"] = float(exact.mean())
        metrics["caption_examples"] = predictions[:5]
        return
    image_emb = encode_images(adapter, image_processor, images, batch_size=batch_size)
    if "zero_shot" in tasks:
        names = eval_set.class_names
        if class_prompts is None:
            class_prompts = [[t.replace("{}", name) for t in templates] for name in names]
        labels = np.asarray(eval_set.labels)
        if labels.max() >= len(class_prompts) or labels.min() < 0:
            raise VlmcompressError(f"labels run from {labels.min()} to {labels.max()} but there are {len(class_prompts)} "
                                   "classes")
        class_emb = class_embeddings(adapter, tokenizer, class_prompts)
        metrics.update(zero_shot_metrics(image_emb, class_emb, labels))
        metrics["zero_shot_accuracy_all"] = metrics["zero_shot_accuracy"]
        if heldout_labels:
            correct = (image_emb @ class_emb.t()).argmax(dim=1).numpy() == labels
            _split_accuracy(metrics, "zero_shot_accuracy", correct, labels, heldout_labels)
    if "retrieval" in tasks:
        flat = [c for caps in eval_set.captions for c in caps]
        owner = [i for i, caps in enumerate(eval_set.captions) for _ in caps]
        text_emb = encode_texts(adapter, tokenizer, flat)
        metrics.update(retrieval_metrics(image_emb, text_emb, owner))
        metrics["retrieval_pairs"] = len(flat)


def evaluate_model(
    model,
    processor,
    dataset=None,
    *,
    class_prompts=None,
    heldout_labels=None,
    images_per_number: int | None = None,
    model_path=None,
    image_column=None,
    text_column=None,
    label_column=None,
    templates=None,
    task: str = EVAL_TASKS[0],
    batch_size: int = EVAL_BATCH_SIZE,
    latency_batch_size: int = LATENCY_BATCH_SIZE,
    latency_repeats: int = LATENCY_REPEATS,
    measure_size: bool = True,
) -> dict:
    """Measure a model; returns a METRICS dict (see ``vlmcompress.report``).

    ``dataset`` is what accuracy is measured on:

    - ``None`` or ``"vlmcompress/digits-test"``: the embedded two-digit benchmark (``zero_shot_accuracy`` is 100-way
      accuracy on numbers seen in training, ``zero_shot_accuracy_heldout`` on the ten held-out numbers; a captioner's
      ``caption_accuracy`` counts captions that name the right number);
    - an ``EvalSet`` (``vlmcompress.evaluation.load_eval_set``) or a ``datasets.Dataset`` (its image, caption and
      label columns found by their usual names, or named by ``image_column``/``text_column``/``label_column``): the
      CLIP_benchmark protocols (``vlmcompress.evaluation.protocols``): zero-shot top-1/top-5 and mean per-class
      recall from the ``ClassLabel`` names and ``templates`` (a list, ``"default"``, ``"openai_imagenet"`` or a file;
      ``class_prompts`` gives one prompt list per label instead), recall@1/5/10 both ways by image, and for a
      captioner BLEU-4 and ROUGE-L; ``task`` picks one (default: every protocol the set supports);
    - ``"none"``: accuracy is not measured (``accuracy_note`` says so); size, memory and latency (on noise images)
      are.
    """
    adapter = get_adapter(model)
    model.eval()
    if isinstance(dataset, str) and dataset not in (EMBEDDED, NO_EVAL):
        raise VlmcompressError(f"evaluate_model takes a data set, an EvalSet, {EMBEDDED!r} or {NO_EVAL!r}; load "
                               f"{dataset!r} with vlmcompress.evaluation.load_eval_set first")
    embedded = dataset is None or (isinstance(dataset, str) and dataset == EMBEDDED)
    tokenizer = _tokenizer_of(processor)
    image_processor = getattr(processor, "image_processor", processor)
    metrics = empty_metrics()
    if embedded:
        dataset = digits.load_digits_dataset("test", images_per_number=images_per_number)
        class_prompts = digits.class_prompts()
        heldout_labels = digits.HELDOUT_NUMBERS
        images, labels, texts = dataset["image"], np.asarray(dataset["label"]), dataset["text"]
        if adapter.is_captioner:
            _caption_metrics(metrics, adapter, processor, images, labels, heldout_labels, batch_size)
        else:
            _retrieval_metrics(metrics, adapter, image_processor, tokenizer, images, labels, texts, class_prompts,
                               heldout_labels, batch_size)
        metrics["eval_images"] = int(len(labels))
        metrics["eval_dataset"] = EMBEDDED
        latency_images, latency_texts = images, texts
    elif isinstance(dataset, str):  # NO_EVAL
        latency_images, latency_texts = synthetic_inputs(processor)
        metrics["eval_dataset"] = None
        metrics["accuracy_note"] = NOT_MEASURED_NOTE
        metrics["latency_inputs"] = "synthetic"
    else:
        eval_set = dataset if isinstance(dataset, EvalSet) else eval_set_from_dataset(
            dataset, image_column=image_column, caption_column=text_column, label_column=label_column)
        tasks = check_task(eval_set, task, adapter.is_captioner)
        template_list = list(templates) if isinstance(templates, (list, tuple)) else load_templates(templates)
        _measure_user_set(metrics, adapter, processor, eval_set, tasks, templates=template_list,
                          class_prompts=class_prompts, heldout_labels=heldout_labels, batch_size=batch_size)
        metrics["eval_images"] = len(eval_set)
        metrics["eval_dataset"] = eval_set.name
        metrics["eval_split"] = eval_set.split
        metrics["eval_protocols"] = tasks
        if "zero_shot" in tasks and class_prompts is None:
            metrics["eval_templates"] = (templates_name(templates) if not isinstance(templates, (list, tuple))
                                         else f"{len(template_list)} templates")
        n = min(len(eval_set), latency_batch_size)
        latency_images = eval_set.images(slice(0, n))
        latency_texts = [caps[0] for caps in eval_set.captions[:n]] if eval_set.captions else synthetic_inputs(processor)[1]
    metrics["params"] = count_parameters(model)
    metrics["memory_bytes"] = int(model.get_memory_footprint()) if hasattr(model, "get_memory_footprint") else None
    if measure_size:
        metrics["size_bytes"] = size_on_disk(model, model_path)
    metrics["latency_ms"] = measure_latency(
        adapter, image_processor, tokenizer, latency_images, latency_texts, batch_size=latency_batch_size,
        repeats=latency_repeats
    ) if latency_repeats > 0 else None
    metrics["latency_batch_size"] = latency_batch_size if latency_repeats > 0 else None
    metrics["latency_repeats"] = latency_repeats
    metrics["latency_threads"] = torch.get_num_threads()
    metrics["latency_dtype"] = str(adapter.input_dtype()).replace("torch.", "")
    metrics["latency_device"] = str(adapter.device())
    metrics["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    return metrics
