"""ONNX export of CLIP / SigLIP / BLIP checkpoints, and ONNX Runtime dynamic int8 for CPUs.

optimum's exporter pins transformers<4.58, so the export is ours: ``torch.onnx.export`` (TorchScript-based,
``dynamo=False``, opset 17) of small wrapper modules that call the family's adapter, so every shape vlmcompress writes
(stock, per-layer pruned through remote code, distilled) exports through the same code.

Two-tower models (CLIP, SigLIP, BLIP retrieval) become two graphs an application can run apart, as production
search does: ``image_encoder.onnx`` (``pixel_values`` -> ``image_embeds``) and ``text_encoder.onnx`` (``input_ids``,
``attention_mask`` -> ``text_embeds``), with dynamic batch (and sequence) axes. A BLIP captioner becomes
``vision_encoder.onnx`` (``pixel_values`` -> ``encoder_hidden_states``) and ``text_decoder.onnx`` (``input_ids``,
``attention_mask``, ``encoder_hidden_states`` -> ``logits``), exported without a KV cache: greedy captioning
(``runtime.greedy_captions``) recomputes the prefix each step, which is exact and, for captions of a few tokens,
cheap. ``int8=True`` applies ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, activations quantized at
run time) to every graph.

The folder also holds the processor, the model's ``config.json`` (without weights: it names the family and the
processor's settings) and ``onnx_config.json`` (which graph is which); ``load_checkpoint`` opens it as an
``OnnxModel``, so ``vlmcompress evaluate`` measures the deployed artefact with the same harness as everything else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..adapters import get_adapter
from ..errors import VlmcompressError
from ..modeling.onnx_runtime import ONNX_CONFIG, OnnxModel, require_onnx

OPSET = 17
TWO_TOWER_GRAPHS = {"image": "image_encoder.onnx", "text": "text_encoder.onnx"}
CAPTION_GRAPHS = {"vision": "vision_encoder.onnx", "decoder": "text_decoder.onnx"}


class _ImageTower(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.adapter = get_adapter(model)

    def forward(self, pixel_values):
        return self.adapter.image_embeddings(pixel_values)


class _TextTower(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.adapter = get_adapter(model)

    def forward(self, input_ids, attention_mask):
        return self.adapter.text_embeddings(input_ids, attention_mask)


class _VisionEncoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model.vision_model(pixel_values=pixel_values).last_hidden_state


class _TextDecoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, encoder_hidden_states):
        return self.model.text_decoder(input_ids=input_ids, attention_mask=attention_mask,
                                       encoder_hidden_states=encoder_hidden_states, use_cache=False,
                                       return_dict=True).logits


def sample_inputs(model, processor, batch: int = 3):
    """Deterministic inputs for tracing and parity: seeded pixel values and a few short captions, tokenized as the
    adapter pads them."""
    adapter = get_adapter(model)
    image_processor = getattr(processor, "image_processor", processor)
    size = getattr(image_processor, "crop_size", None) or getattr(image_processor, "size", None) or {}
    height = size.get("height") or size.get("shortest_edge") or 224
    width = size.get("width") or size.get("shortest_edge") or height
    channels = getattr(adapter.tower_config("vision"), "num_channels", 3) if "vision" in adapter.towers() else 3
    pixel_values = torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(0))
    texts = ["a photo of the number 47", "a picture of a dog on a beach", "an image"][:batch]
    tokenizer = getattr(processor, "tokenizer", processor)
    enc = tokenizer(texts, return_tensors="pt", truncation=True, **adapter.text_padding)
    mask = enc.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(enc["input_ids"])
    return pixel_values, enc["input_ids"], mask


def _export(module, args, path, input_names, output_names, dynamic_axes):
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about Python control flow on shapes (checked by parity)
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)


def _int8(path: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # its "consider pre-processing" note
    tmp = path.with_suffix(".int8.onnx")
    quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8)
    os.replace(tmp, path)


def _check_exportable(model):
    if getattr(model.config, "quantization_config", None) is not None:
        raise VlmcompressError("a bitsandbytes-quantized model cannot be exported to ONNX: export the full-precision "
                               "(or pruned/distilled) checkpoint and pass --int8 for ONNX Runtime's own int8")
    adapter = get_adapter(model)
    if not adapter.is_captioner and not hasattr(model, "logit_scale") and not adapter.has_itm \
            and not hasattr(model, "get_image_features"):
        raise VlmcompressError(f"{type(model).__name__} is one tower: ONNX export takes the two-tower model (e.g. "
                               "CLIPModel, SiglipModel, BlipForImageTextRetrieval) or a BLIP captioner")


def export_graphs(model, processor, folder, *, int8: bool = False) -> dict:
    """Write the ONNX graphs of ``model`` into ``folder`` and check them against PyTorch; return the report step."""
    require_onnx()
    _check_exportable(model)
    import onnxruntime

    model = model.eval().float()
    adapter = get_adapter(model)
    folder = Path(folder)
    pixel_values, input_ids, mask = sample_inputs(model, processor)
    batch = {0: "batch"}
    if adapter.is_captioner:
        task, graphs = "caption", dict(CAPTION_GRAPHS)
        with torch.no_grad():
            states = _VisionEncoder(model)(pixel_values)
        ids, _ = adapter.caption_inputs(input_ids, mask)
        _export(_VisionEncoder(model), (pixel_values,), folder / graphs["vision"], ["pixel_values"],
                ["encoder_hidden_states"], {"pixel_values": batch, "encoder_hidden_states": batch})
        _export(_TextDecoder(model), (ids, mask, states), folder / graphs["decoder"],
                ["input_ids", "attention_mask", "encoder_hidden_states"], ["logits"],
                {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                 "encoder_hidden_states": batch, "logits": {0: "batch", 1: "sequence"}})
    else:
        task, graphs = "image_text", dict(TWO_TOWER_GRAPHS)
        _export(_ImageTower(model), (pixel_values,), folder / graphs["image"], ["pixel_values"], ["image_embeds"],
                {"pixel_values": batch, "image_embeds": batch})
        _export(_TextTower(model), (input_ids, mask), folder / graphs["text"], ["input_ids", "attention_mask"],
                ["text_embeds"], {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                                  "text_embeds": batch})
    if int8:
        for name in graphs.values():
            _int8(folder / name)
    logit_scale = None
    if task == "image_text":
        logit_scale = float(adapter.logit_scale().detach().float().exp())
    config = {"format": "onnx", "opset": OPSET, "task": task, "graphs": graphs, "int8": int8,
              "family": adapter.family, "model_class": type(model).__name__.removeprefix("Vlmcompress"),
              "logit_scale": logit_scale, "kv_cache": False if task == "caption" else None,
              "onnxruntime": onnxruntime.__version__, "torch": torch.__version__}
    (folder / ONNX_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    model.config.to_json_file(str(folder / "config.json"))
    if processor is not None:
        processor.save_pretrained(folder)
    parity = check_parity(model, folder, pixel_values, input_ids, mask)
    return {"method": "onnx_export", "runtime": f"onnxruntime {onnxruntime.__version__}", "opset": OPSET,
            "task": task, "int8": int8, "kv_cache": config["kv_cache"],
            "graphs": {role: {"file": name, "bytes": (folder / name).stat().st_size} for role, name in graphs.items()},
            "parity": parity}


def _cosine(a, b) -> float:
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)).min())


@torch.no_grad()
def check_parity(model, folder, pixel_values, input_ids, mask) -> dict:
    """Max absolute difference and minimum cosine of the ONNX Runtime outputs against PyTorch's, per graph, on inputs
    of another batch size than the traced one (so the dynamic axes are exercised too)."""
    onnx_model = OnnxModel(folder)
    adapter = get_adapter(model)
    pixel_values = torch.cat([pixel_values, pixel_values.flip(0)])[:5]
    input_ids, mask = torch.cat([input_ids, input_ids.flip(0)])[:5], torch.cat([mask, mask.flip(0)])[:5]
    out = {}
    if onnx_model.task == "caption":
        ref_states = _VisionEncoder(model)(pixel_values).numpy()
        states = onnx_model.encode_images(pixel_values.numpy())
        ids, _ = adapter.caption_inputs(input_ids, mask)
        ref_logits = _TextDecoder(model)(ids, mask, torch.from_numpy(ref_states)).numpy()
        logits = onnx_model.decode(ids.numpy(), mask.numpy(), ref_states)
        pairs = {"vision": (states, ref_states), "decoder": (logits, ref_logits)}
    else:
        pairs = {"image": (onnx_model.get_image_features(pixel_values=pixel_values).numpy(),
                           adapter.image_embeddings(pixel_values).numpy()),
                 "text": (onnx_model.get_text_features(input_ids=input_ids, attention_mask=mask).numpy(),
                          adapter.text_embeddings(input_ids, mask).numpy())}
    for role, (got, ref) in pairs.items():
        out[role] = {"max_abs_diff": float(np.abs(got - ref).max()), "min_cosine": _cosine(got, ref),
                     "samples": int(got.shape[0])}
    return out


__all__ = ["export_graphs", "sample_inputs", "check_parity", "require_onnx", "ONNX_CONFIG"]
