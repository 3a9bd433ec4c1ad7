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


def _tower_names(adapter, plan, names=None):
    towers = names if names is not None else adapter.towers()
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


def _slice_heads(attn, keep):
    columns = attn.head_columns(keep)
    sliced = {role: _slice_linear(linear, attn.head_rows(role, keep), 0) for role, linear in attn.inputs()}
    sliced["out"] = _slice_linear(attn.out, columns, 1)
    for role, linear in sliced.items():
        attn.replace(role, linear)
    if attn.set_num_heads is not None:
        attn.set_num_heads(len(keep))


def _slice_neurons(mlp, keep):
    index = torch.tensor(keep)
    mlp.replace_up([_slice_linear(up, index, 0) for up in mlp.up])
    mlp.replace_down(_slice_linear(mlp.down, index, 1))


# what differs between pruning heads and pruning MLP neurons; the walk over the plan is shared
_HEADS = dict(
    what="heads", method="head_pruning", report_key="removed_heads",
    sites=lambda adapter: adapter.head_sites(), config=lambda adapter, site: adapter.head_config(site),
    parts=lambda adapter, site, layer: adapter.head_parts(site, layer), count=lambda attn: attn.num_heads,
    slice=_slice_heads,
    sizes=structure.heads_per_layer, kept=structure.kept_heads,
    size_key="layer_num_heads", kept_key="vlmcompress_kept_heads", empty_hint=" or drop the layer",
)
_NEURONS = dict(
    what="MLP neurons", method="mlp_pruning", report_key="removed_neurons",
    sites=lambda adapter: {t: t for t in adapter.towers()}, config=lambda adapter, tower: adapter.tower_config(tower),
    parts=lambda adapter, tower, layer: adapter.mlp(layer), count=lambda mlp: mlp.num_neurons, slice=_slice_neurons,
    sizes=structure.neurons_per_layer, kept=lambda cfg: structure.kept_neurons(cfg) or
    [list(range(n)) for n in structure.neurons_per_layer(cfg)],
    size_key="layer_intermediate_sizes", kept_key="vlmcompress_kept_neurons", empty_hint="",
)


def _prune_units(model, plan: dict, unit: dict) -> dict:
    _check_quantized(model)
    adapter = get_adapter(model)
    sites = unit["sites"](adapter)
    _tower_names(adapter, plan, sites)
    # validate the whole plan first, so a bad plan changes nothing
    checked = []
    for tower, layers_plan in plan.items():
        layers = adapter.layers(sites[tower])
        for layer, remove in layers_plan.items():
            i = _layer_index(tower, layer, len(layers))
            remove = sorted({int(j) for j in remove})
            if not remove:
                continue
            parts = unit["parts"](adapter, tower, layers[i])
            n = unit["count"](parts)
            bad = [j for j in remove if not 0 <= j < n]
            if bad:
                raise VlmcompressError(f"{tower} layer {i} has {unit['what']} 0..{n - 1}, not {bad[:5]}")
            if len(remove) == n:
                raise VlmcompressError(
                    f"the plan removes all {n} {unit['what']} of {tower} layer {i}: keep at least one{unit['empty_hint']}"
                )
            checked.append((tower, i, parts, remove))
    removed_report: dict = {}
    configs = {}
    for tower, i, parts, remove in checked:
        if tower not in configs:
            cfg = unit["config"](adapter, tower)
            configs[tower] = (cfg, unit["sizes"](cfg), unit["kept"](cfg), structure.kept_layers(cfg))
        cfg, sizes, kept_ids, orig_layers = configs[tower]
        drop = set(remove)
        keep = [j for j in range(unit["count"](parts)) if j not in drop]
        unit["slice"](parts, keep)
        sizes[i] = len(keep)
        removed_report.setdefault(tower, {})[str(orig_layers[i])] = [kept_ids[i][j] for j in remove]
        kept_ids[i] = [kept_ids[i][j] for j in keep]
    for tower, (cfg, sizes, kept_ids, _) in configs.items():
        setattr(cfg, unit["size_key"], sizes)
        setattr(cfg, unit["kept_key"], kept_ids)
        structure.normalize(cfg, adapter.stock_mlp_resize_ok)
    _describe_shapes(model)
    return {"method": unit["method"], unit["report_key"]: removed_report}


def _describe_shapes(model) -> None:
    """Give a model whose new shapes the stock class cannot rebuild the vlmcompress class that can, at once, so every
    later ``save_pretrained`` (``Trainer.save_model`` of a pruned student included) writes a folder that
    ``AutoModel``/pipelines load with ``trust_remote_code``, not only ``save_compressed``. The class only differs in
    ``__init__``: nothing changes at run time. A class vlmcompress has no remote class for stays as it is
    (``save_compressed`` names the problem when it is saved)."""
    from ..modeling import make_self_describing

    try:
        make_self_describing(model)
    except ValueError:
        pass


def prune_heads(model, plan: dict) -> dict:
    """Remove attention heads: ``plan = {tower: {layer: [head, ...]}}``. Returns the report step.

    Removing every head of a layer is an error (drop the layer with ``prune_layers`` instead).
    """
    return _prune_units(model, plan, _HEADS)


def prune_mlp(model, plan: dict) -> dict:
    """Remove MLP neurons: ``plan = {tower: {layer: [neuron, ...]}}``. Returns the report step."""
    return _prune_units(model, plan, _NEURONS)


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
            **{key: getattr(cfg, key, None) for key in structure.EXTRA_PER_LAYER_KEYS},
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


def _refresh_shape_attributes(module: nn.Module) -> None:
    """Make a module's size attributes agree with its sliced parameters (forward passes read some of them)."""
    if isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.LayerNorm):
        module.normalized_shape = (module.weight.shape[0],)
    elif isinstance(module, nn.Embedding):
        module.embedding_dim = module.weight.shape[1]
    elif isinstance(module, nn.Conv2d):
        module.out_channels = module.weight.shape[0]


def prune_hidden(model, plan: dict) -> dict:
    """Slice each tower's hidden width (its residual stream): ``plan = {tower: [dimension, ...]}`` to remove.

    The TinyCLIP/DistilBERT way to a narrow student that inherits its weights: every tensor on the residual stream
    (embeddings, LayerNorms, attention and MLP inputs and outputs, the projection out of the tower) keeps the same
    dimensions. ``head_dim`` is kept, so every layer of the tower must already have the same number of heads, whose
    total width equals the new width (``PruningConfig.hidden_ratio`` removes them first); the result is the stock
    class's shape and loads with it.
    """
    _check_quantized(model)
    adapter = get_adapter(model)
    _tower_names(adapter, plan)
    checked = []
    for tower, remove in plan.items():
        cfg = adapter.tower_config(tower)
        width = int(cfg.hidden_size)
        remove = sorted({int(d) for d in remove})
        if not remove:
            continue
        bad = [d for d in remove if not 0 <= d < width]
        if bad:
            raise VlmcompressError(f"the {tower} tower's hidden width is {width} (dimensions 0..{width - 1}), not {bad[:5]}")
        dropped = set(remove)
        keep = [d for d in range(width) if d not in dropped]
        if not keep:
            raise VlmcompressError(f"the plan removes the {tower} tower's whole hidden width: keep at least one head's")
        attn = [adapter.attention(layer) for layer in adapter.layers(tower)]
        heads, head_dim = sorted({a.num_heads for a in attn}), attn[0].head_dim
        if len(heads) != 1 or heads[0] * head_dim != len(keep):
            raise VlmcompressError(
                f"the {tower} tower would be {len(keep)} wide with {'/'.join(map(str, heads))} heads of {head_dim} per "
                f"layer: a sliced width keeps head_dim, so first keep {len(keep) / head_dim:g} heads in every layer "
                "(PruningConfig.hidden_ratio removes heads and width together)")
        checked.append((tower, cfg, keep, remove, heads[0], adapter.hidden_parts(tower)))
    report, widths = {}, {}
    for tower, cfg, keep, remove, heads, parts in checked:
        index = torch.tensor(keep)
        touched = {}
        for module, name, axis in parts:
            old = getattr(module, name)
            new = old.detach().index_select(axis, index.to(old.device)).clone()
            setattr(module, name, nn.Parameter(new, requires_grad=old.requires_grad))
            touched[id(module)] = module
        for module in touched.values():
            _refresh_shape_attributes(module)
        original = getattr(cfg, "vlmcompress_kept_hidden", None) or list(range(int(cfg.hidden_size)))
        report[tower] = [original[d] for d in remove]
        cfg.vlmcompress_kept_hidden = [original[d] for d in keep]
        adapter.set_hidden_size(tower, len(keep), heads)
        structure.normalize(cfg, adapter.stock_mlp_resize_ok)
        widths[tower] = len(keep)
    _describe_shapes(model)
    return {"method": "hidden_pruning", "removed_hidden": report, "hidden_size": widths}
