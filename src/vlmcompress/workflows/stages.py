"""One runner per one-shot stage, shared by the commands (``vlmcompress prune`` / ``quantize``) and the recipe
pipeline (``vlmcompress compress``): from a loaded model to a finished, self-describing checkpoint.

What differs between the two callers stays with them: where the model comes from (a user's path, or the previous
stage's folder), how ``before`` is known (measured, or read from the previous stage's report), what is printed.
The sequence itself (compress, then ``finish_checkpoint`` with the side-by-side latency against the uncompressed
model) is written once, here. Distillation has its own runner (``workflows.distill.run_distillation``) and export
its own (``export.export_onnx``); both callers use those too.
"""

from __future__ import annotations

import copy
from typing import Callable

from ..report import LATENCY_BATCH_SIZE, LATENCY_ROUNDS


def prune_stage(model, processor, output_dir, config, *, base_model: str, calibration=None, scores=None,
                on_scores: Callable | None = None, before: dict | None = None, evaluate: Callable | None = None,
                latency_rounds: int = LATENCY_ROUNDS, latency_batch_size: int = LATENCY_BATCH_SIZE, overwrite: bool = False,
                step_extra: dict | None = None, report_extra: dict | None = None, card: bool = True) -> dict:
    """Prune ``model`` in place with ``config`` (PruningConfig) and write it to ``output_dir``; return its report.

    ``evaluate(model, folder)`` measures the result (None: not measured), and then the pruned and the unpruned model
    are timed side by side. ``step_extra`` goes into the first pruning step (a planner's record). ``card=False``:
    no README.md (a pipeline writes the last stage's card once, with its recipe)."""
    from ..checkpoint import finish_checkpoint
    from ..pruning.config import prune_model

    base = copy.deepcopy(model) if evaluate is not None else None  # the latency ratio is measured side by side
    steps = prune_model(model, config, processor, dataset=calibration, scores=scores, on_scores=on_scores)
    if step_extra and steps:
        steps[0].update(step_extra)
    return finish_checkpoint(model, processor, output_dir, base_model=base_model, steps=steps, before=before,
                             evaluate=evaluate, configs=[config], latency_base=base, latency_rounds=latency_rounds,
                             latency_batch_size=latency_batch_size, overwrite=overwrite, report_extra=report_extra,
                             card=card)


def quantize_stage(model, processor, output_dir, config, *, base_model: str, before: dict | None = None,
                   evaluate: Callable | None = None, latency_rounds: int = LATENCY_ROUNDS,
                   latency_batch_size: int = LATENCY_BATCH_SIZE, overwrite: bool = False, report_extra: dict | None = None,
                   card: bool = True) -> dict:
    """Quantize ``model`` with ``config`` (QuantizationConfig) and write it to ``output_dir``; return its report.
    The full-precision model is kept for the side-by-side latency when ``evaluate`` is given. The caller has checked
    that ``model`` is not quantized already (``ensure_not_quantized``), before any evaluation."""
    from ..checkpoint import finish_checkpoint
    from ..quantization import quantization_step, quantize, save_quantized

    quantized = quantize(model, config)
    return finish_checkpoint(quantized, processor, output_dir, base_model=base_model,
                             steps=[quantization_step(quantized)], before=before, evaluate=evaluate,
                             save=lambda m, p, folder: save_quantized(m, p, folder, config), configs=[config],
                             latency_base=model if evaluate is not None else None, latency_rounds=latency_rounds,
                             latency_batch_size=latency_batch_size, overwrite=overwrite, report_extra=report_extra,
                             card=card)
