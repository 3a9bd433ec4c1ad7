"""Measuring models: accuracy on the embedded benchmark or the user's data (CLIP_benchmark protocols), retrieval,
captioning metrics, size, memory and latency."""

from .eval_sets import (EMBEDDED, NO_EVAL, EvalSet, embedded_images_per_number, eval_set_from_dataset, load_eval_set,
                        resolve_eval_set)
from .harness import check_dataset, evaluate_model
from .protocols import load_metric, metric_path
from .templates import load_templates

__all__ = ["evaluate_model", "check_dataset", "load_eval_set", "resolve_eval_set", "eval_set_from_dataset", "EvalSet",
           "EMBEDDED", "NO_EVAL", "embedded_images_per_number", "load_metric", "metric_path", "load_templates"]
