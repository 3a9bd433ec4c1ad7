"""Measuring models: accuracy, retrieval, size, memory and latency."""

from .harness import evaluate_model, check_dataset

__all__ = ["evaluate_model", "check_dataset"]
