"""Deployment: ONNX export of every checkpoint vlmcompress writes, ONNX Runtime int8 for CPUs.

    from vlmcompress import export_onnx
    report = export_onnx("outputs/heads25", "outputs/heads25-onnx", int8=True)

The folder holds the graphs, the processor, ``onnx_config.json``, ``compression_report.json`` (with an
``onnx_export`` step: opset, graphs, bytes, parity against PyTorch) and a card that shows how to run it with
onnxruntime; ``vlmcompress evaluate FOLDER`` measures it through ONNX Runtime.
"""

from __future__ import annotations

from ..report import LATENCY_BATCH_SIZE, LATENCY_ROUNDS


def export_onnx(model_or_path=None, output_dir=None, *, processor=None, int8: bool = False, evaluate: bool = True,
                images_per_number: int | None = None, latency_batch_size: int = LATENCY_BATCH_SIZE, latency_rounds: int = LATENCY_ROUNDS,
                overwrite: bool = False, overwrite_flag: str = "--overwrite", eval_dataset=None,
                eval_kwargs: dict | None = None, card: bool = True) -> dict:
    """Export a checkpoint (a folder, a Hub id, None for the embedded teacher, or a model with ``processor``) to
    ``output_dir``; with ``evaluate`` the PyTorch model and the exported graphs are measured by the same harness, and
    their latency ratio side by side. Returns the folder's report.

    Accuracy is measured on ``eval_dataset`` (an ``EvalSet``, or a name ``load_eval_set`` opens); without one on the
    embedded benchmark for an embedded model, otherwise not at all. ``eval_kwargs`` (``evaluate_model``'s keyword
    arguments, as the CLI builds them) replaces these options. ``card=False`` writes no README.md (a pipeline writes
    its last stage's card once, with the recipe)."""
    from ..checkpoint import finish_checkpoint
    from ..evaluation import evaluate_model
    from ..evaluation.harness import latency_comparison
    from ..io import check_output_dir
    from ..loading import load_checkpoint
    from ..modeling.onnx_runtime import OnnxModel, require_onnx
    from .onnx import export_graphs

    require_onnx()
    check_output_dir(output_dir, overwrite=overwrite, flag=overwrite_flag)
    if processor is None or model_or_path is None or isinstance(model_or_path, (str, bytes)) or hasattr(model_or_path, "__fspath__"):
        model, processor, path = load_checkpoint(None if model_or_path is None else str(model_or_path),
                                                 torch_for="export")
    else:
        model, path = model_or_path, getattr(model_or_path, "name_or_path", None) or None
    if eval_kwargs is not None:
        kw = dict(eval_kwargs)
        latency_batch_size = kw.get("latency_batch_size", latency_batch_size)
    else:
        from ..evaluation import resolve_eval_set

        dataset = eval_dataset if not isinstance(eval_dataset, (str, type(None))) else resolve_eval_set(eval_dataset, path)
        kw = dict(dataset=dataset, images_per_number=images_per_number, latency_batch_size=latency_batch_size)
    before = evaluate_model(model, processor, model_path=path, **kw) if evaluate else None
    steps: list = []

    def save(m, p, folder):
        steps.append(export_graphs(m, p, folder, int8=int8))
        return {"kind": "onnx", "class": type(m).__name__.removeprefix("Vlmcompress")}

    def measure(m, folder):
        exported = OnnxModel(folder)
        after = evaluate_model(exported, processor, model_path=folder, **kw)
        if after.get("latency_ms") is not None:
            after["latency_vs_base"] = latency_comparison(m, exported, processor, batch_size=latency_batch_size,
                                                          rounds=latency_rounds)
        after["runtime"] = "onnxruntime"
        return after

    return finish_checkpoint(model, processor, output_dir, base_model=path, steps=steps, before=before, save=save,
                             evaluate=measure if evaluate else None, overwrite=overwrite, overwrite_flag=overwrite_flag,
                             card=card)


__all__ = ["export_onnx"]
