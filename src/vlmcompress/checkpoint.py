"""The one way a checkpoint is finished: every command, recipe and benchmark that writes a model calls
``finish_checkpoint``.

    check_output_dir(out, overwrite=...)          # first, before any work: a bad path fails at once
    ... prune / quantize / distill ...
    report = finish_checkpoint(model, processor, out, base_model=..., steps=steps, before=before,
                               evaluate=lambda m, folder: evaluate_model(m, processor, model_path=folder))

In order, inside a temp folder that replaces ``out`` whole at the end (or vanishes on failure): weights, config and
processor (``save``: ``modeling.save_compressed`` unless a method needs its own, e.g. quantization's layout
check), the method configs (``configs``: each ``.save(folder)``), anything else the caller writes (``write_extra``),
the evaluation of the saved model (``evaluate``), the latency ratio against the base model measured side by side
(``latency_base``), ``compression_report.json`` and the model card with its plots. A card that fails to render
costs a warning, never the checkpoint (``vlmcompress card DIR`` renders it again).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from .io import atomic_output_dir
from .report import LATENCY_ROUNDS, new_report, write_report


def _save_default(model, processor, folder) -> dict:
    from .modeling import save_compressed

    return save_compressed(model, processor, folder)


def write_card_or_warn(folder, report=None) -> bool:
    """Render the card; on failure print one warning line and go on (the checkpoint itself is whole)."""
    from .cards import write_card

    try:
        write_card(folder, report)
        return True
    except Exception as exc:  # noqa: BLE001 - reported, and `vlmcompress card DIR` can render it again
        print(f"warning: model card not written ({type(exc).__name__}: {exc}); run `vlmcompress card DIR` to retry",
              file=sys.stderr)
        return False


def finish_checkpoint(model, processor, output_dir, *, base_model, steps, model_family: str | None = None,
                      before: dict | None = None, evaluate: Callable | None = None, configs=(),
                      save: Callable | None = None, write_extra: Callable | None = None,
                      latency_base=None, latency_batch_size: int = 32, latency_rounds: int = LATENCY_ROUNDS,
                      overwrite: bool = False, overwrite_flag: str = "--overwrite", model_name: str | None = None,
                      report_extra: dict | None = None, card: bool = True) -> dict:
    """Write ``model`` as a finished, self-describing checkpoint in ``output_dir``; return its report.

    ``evaluate(model, folder)`` measures the saved model (METRICS); ``None`` records ``after`` as not measured.
    ``latency_base`` (the model before compression, still in memory) adds ``after["latency_vs_base"]``: the
    latency ratio of the two measured in interleaved rounds in this process, with its spread.
    ``write_extra(folder)`` writes files of the caller's own (an adapter, Trainer checkpoints) before the evaluation.
    ``overwrite`` and the folder rule are ``io.check_output_dir``'s.
    """
    from .adapters import get_adapter

    family = model_family or get_adapter(model).family
    with atomic_output_dir(output_dir, overwrite=overwrite, flag=overwrite_flag) as tmp:
        loading = (save or _save_default)(model, processor, tmp)
        for config in configs:
            if config is not None:
                config.save(tmp)
        if write_extra is not None:
            write_extra(tmp)
        after = evaluate(model, tmp) if evaluate is not None else None
        if after is not None and latency_base is not None and after.get("latency_ms") is not None:
            from .evaluation.harness import latency_comparison

            after["latency_vs_base"] = latency_comparison(latency_base, model, processor,
                                                          batch_size=latency_batch_size, rounds=latency_rounds)
        report = new_report(base_model=None if base_model is None else str(base_model), model_family=family,
                            steps=steps, before=before, after=after, model_name=model_name)
        report["loading"] = loading
        if any(c is not None for c in configs):
            report["effective_settings"] = {c.kind: c.effective() for c in configs if c is not None}
        report.update(report_extra or {})
        write_report(report, tmp)
        if card:
            write_card_or_warn(tmp, report)
    return report


def load_hint(loading: dict) -> str:
    """How a folder written by ``save_compressed`` loads, from what it recorded."""
    kind = loading.get("kind")
    if kind == "remote_code":
        return "AutoModel.from_pretrained(path, trust_remote_code=True) or vlmcompress.load_model(path)"
    if kind == "bitsandbytes":
        return (f"{loading.get('class')}.from_pretrained(path) with bitsandbytes installed (quantization_config is in "
                "config.json)")
    return f"{loading.get('class')}.from_pretrained(path), no remote code"


__all__ = ["finish_checkpoint", "write_card_or_warn", "load_hint"]
