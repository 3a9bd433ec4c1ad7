"""Physical removal of attention heads, MLP neurons and whole layers.

Plans are in the model's *current* numbering (what ``model`` has now); the returned report step is in the base
model's *original* numbering, read from the tracking keys in each tower's config (``modeling.structure``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..adapters import get_adapter
from ..errors import VlmcompressError
from ..modeling import structure


def _slice_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping ``index`` along dim 0 (output rows) or dim 1 (input columns)."""
    w = linear.weight.detach().index_select(dim, index.to(linear.weight.device)).clone()
    out_f, in_f = w.shape
    new = nn.Linear(in_f, out_f, bias=linear.bias is not None, device=w.device, dtype=w.dtype)
    new.weight.data.copy_(w)
    if linear.bias is not None:
        b = linear.bias.detach()
        new.bias.data.copy_(b.index_select(0, index.to(b.device)) if dim == 0 else b)
    new.weight.requires_grad_(linear.weight.requires_grad)
    if new.bias is not None and linear.bias is not None:
        new.bias.requires_grad_(linear.bias.requires_grad)
    return new


def _check_quantized(model):
    if getattr(model.config, "quantization_config", None) is not None or getattr(model, "is_quantized", False):
        raise VlmcompressError("prune the full-precision model first, then quantize: this model is already quantized")


def _tower_names(adapter, plan):
    towers = adapter.towers()
    for tower in plan:
        if tower not in towers:
            raise VlmcompressError(f"unknown tower {tower!r}: this {adapter.family} model has {', '.join(towers)}")
    return towers


def _layer_index(tower, layer, n_layers):
    try:
        i = int(layer)
    except (TypeError, ValueError):
        raise VlmcompressError(f"{tower} layer {layer!r} is not a layer number") from None
    if not 0 <= i < n_layers:
        raise VlmcompressError(f"{tower} has layers 0..{n_layers - 1}, not {i}")
    return i


def prune_heads(model, plan: dict) -> dict:
    """Remove attention heads: ``plan = {tower: {layer: [head, ...]}}``. Returns the report step.

    Removing every head of a layer is an error (drop the layer with ``prune_layers`` instead).
    """
    _check_quantized(model)
    adapter = get_adapter(model)
    _tower_names(adapter, plan)
    removed_report: dict = {}
    for tower, layers_plan in plan.items():
        cfg = adapter.tower_config(tower)
        layers = adapter.layers(tower)
        heads = structure.heads_per_layer(cfg)
        kept_ids = structure.kept_heads(cfg)
        orig_layers = structure.kept_layers(cfg)
        for layer, remove in layers_plan.items():
            i = _layer_index(tower, layer, len(layers))
            remove = sorted({int(h) for h in remove})
            if not remove:
                continue
            attn = adapter.attention(layers[i])
            n = attn.num_heads
            bad = [h for h in remove if not 0 <= h < n]
            if bad:
                raise VlmcompressError(f"{tower} layer {i} has heads 0..{n - 1}, not {bad}")
            keep = [h for h in range(n) if h not in remove]
            if not keep:
                raise VlmcompressError(
                    f"the plan removes all {n} heads of {tower} layer {i}: keep at least one or drop the layer"
                )
            d = attn.head_dim
            index = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])
            attn.module.q_proj = _slice_linear(attn.q, index, 0)
            attn.module.k_proj = _slice_linear(attn.k, index, 0)
            attn.module.v_proj = _slice_linear(attn.v, index, 0)
            attn.module.out_proj = _slice_linear(attn.out, index, 1)
            if hasattr(attn.module, "num_heads"):
                attn.module.num_heads = len(keep)
            heads[i] = len(keep)
            removed_report.setdefault(tower, {})[str(orig_layers[i])] = [kept_ids[i][h] for h in remove]
            kept_ids[i] = [kept_ids[i][h] for h in keep]
        cfg.layer_num_heads = heads
        cfg.vlmcompress_kept_heads = kept_ids
        structure.normalize(cfg, adapter.stock_mlp_resize_ok)
    return {"method": "head_pruning", "removed_heads": removed_report}


def prune_mlp(model, plan: dict) -> dict:
    """Remove MLP neurons: ``plan = {tower: {layer: [neuron, ...]}}``. Returns the report step."""
    _check_quantized(model)
    adapter = get_adapter(model)
    _tower_names(adapter, plan)
    removed_report: dict = {}
    for tower, layers_plan in plan.items():
        cfg = adapter.tower_config(tower)
        layers = adapter.layers(tower)
        sizes = structure.neurons_per_layer(cfg)
        kept_ids = structure.kept_neurons(cfg) or [list(range(s)) for s in sizes]
        orig_layers = structure.kept_layers(cfg)
        for layer, remove in layers_plan.items():
            i = _layer_index(tower, layer, len(layers))
            remove = sorted({int(j) for j in remove})
            if not remove:
                continue
            mlp = adapter.mlp(layers[i])
            n = mlp.num_neurons
            bad = [j for j in remove if not 0 <= j < n]
            if bad:
                raise VlmcompressError(f"{tower} layer {i} has MLP neurons 0..{n - 1}, not {bad[:5]}")
            keep = [j for j in range(n) if j not in set(remove)]
            if not keep:
                raise VlmcompressError(f"the plan removes every MLP neuron of {tower} layer {i}: keep at least one")
            index = torch.tensor(keep)
            for name, child in mlp.module.named_children():
                if any(child is up for up in mlp.up):
                    setattr(mlp.module, name, _slice_linear(child, index, 0))
                elif child is mlp.down:
                    setattr(mlp.module, name, _slice_linear(child, index, 1))
            sizes[i] = len(keep)
            removed_report.setdefault(tower, {})[str(orig_layers[i])] = [kept_ids[i][j] for j in remove]
            kept_ids[i] = [kept_ids[i][j] for j in keep]
        cfg.layer_intermediate_sizes = sizes
        cfg.vlmcompress_kept_neurons = kept_ids
        structure.normalize(cfg, adapter.stock_mlp_resize_ok)
    return {"method": "mlp_pruning", "removed_neurons": removed_report}


def prune_layers(model, plan: dict) -> dict:
    """Drop whole layers: ``plan = {tower: [layer, ...]}``. Keys renumber on save; the stock class reloads."""
    _check_quantized(model)
    adapter = get_adapter(model)
    _tower_names(adapter, plan)
    removed_report: dict = {}
    for tower, remove in plan.items():
        cfg = adapter.tower_config(tower)
        layers = adapter.layers(tower)
        n = len(layers)
        remove = sorted({_layer_index(tower, layer, n) for layer in remove})
        if not remove:
            continue
        keep = [i for i in range(n) if i not in remove]
        if not keep:
            raise VlmcompressError(f"the plan drops all {n} layers of the {tower} tower: keep at least one")
        orig = structure.kept_layers(cfg)
        per_layer = {
            "layer_num_heads": structure.heads_per_layer(cfg),
            "layer_intermediate_sizes": structure.neurons_per_layer(cfg),
            "vlmcompress_kept_heads": structure.kept_heads(cfg),
            "vlmcompress_kept_neurons": structure.kept_neurons(cfg),
        }
        adapter.set_layers(tower, nn.ModuleList([layers[i] for i in keep]))
        cfg.num_hidden_layers = len(keep)
        for key, values in per_layer.items():
            if values is not None:
                setattr(cfg, key, [values[i] for i in keep])
        cfg.vlmcompress_kept_layers = [orig[i] for i in keep]
        removed_report[tower] = [orig[i] for i in remove]
        structure.normalize(cfg, adapter.stock_mlp_resize_ok)
    return {"method": "layer_pruning", "removed_layers": removed_report}
