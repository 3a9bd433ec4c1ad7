"""Modeling code for structurally pruned CLIP/SigLIP checkpoints written by vlmcompress.

This file is self-contained (torch + transformers only) and is copied next to every pruned checkpoint whose
shapes the stock classes cannot describe (heads pruned, or MLP widths that differ per layer), so that

    AutoModel.from_pretrained(path, trust_remote_code=True)

rebuilds it exactly without vlmcompress installed. The shapes come from keys in each tower's sub-config:

    layer_num_heads:          [heads kept in layer 0, layer 1, ...]   (head_dim is unchanged)
    layer_intermediate_sizes: [MLP neurons kept in layer 0, layer 1, ...]

The stock forward already runs with fewer heads (it reshapes with ``view(..., -1, head_dim)``) and with any MLP
width, so only ``__init__`` changes: it shrinks the Linears before the weights are loaded.
"""

from torch import nn
from transformers import (
    CLIPModel,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPVisionModel,
    CLIPVisionModelWithProjection,
    SiglipModel,
    SiglipTextModel,
    SiglipVisionModel,
)


def _resize_linear(linear, in_features=None, out_features=None):
    in_features = linear.in_features if in_features is None else in_features
    out_features = linear.out_features if out_features is None else out_features
    if (in_features, out_features) == (linear.in_features, linear.out_features):
        return linear
    new = nn.Linear(in_features, out_features, bias=linear.bias is not None,
                    device=linear.weight.device, dtype=linear.weight.dtype)
    return new


def shrink_tower(tower, config):
    """Give a tower's encoder layers the per-layer widths its config records."""
    heads = getattr(config, "layer_num_heads", None)
    sizes = getattr(config, "layer_intermediate_sizes", None)
    layers = tower.encoder.layers
    for i, layer in enumerate(layers):
        if heads is not None:
            attn = layer.self_attn
            width = int(heads[i]) * attn.head_dim
            attn.q_proj = _resize_linear(attn.q_proj, out_features=width)
            attn.k_proj = _resize_linear(attn.k_proj, out_features=width)
            attn.v_proj = _resize_linear(attn.v_proj, out_features=width)
            attn.out_proj = _resize_linear(attn.out_proj, in_features=width)
            attn.num_heads = int(heads[i])
        if sizes is not None:
            mlp = layer.mlp
            mlp.fc1 = _resize_linear(mlp.fc1, out_features=int(sizes[i]))
            mlp.fc2 = _resize_linear(mlp.fc2, in_features=int(sizes[i]))


def shrink_towers(model):
    """Shrink every transformer tower the model holds (two-tower models, or a single tower class)."""
    towers = [getattr(model, name) for name in ("vision_model", "text_model") if getattr(model, name, None) is not None]
    for tower in towers or [model]:
        shrink_tower(tower, tower.config)


class ShrunkTowersMixin:
    """Runs the stock ``__init__``, then shrinks the towers; put first among the bases."""

    def __init__(self, config):
        super().__init__(config)
        shrink_towers(self)


class VlmcompressCLIPModel(ShrunkTowersMixin, CLIPModel):
    """A CLIPModel whose layers may have different numbers of heads and MLP neurons."""


class VlmcompressCLIPVisionModel(ShrunkTowersMixin, CLIPVisionModel):
    pass


class VlmcompressCLIPVisionModelWithProjection(ShrunkTowersMixin, CLIPVisionModelWithProjection):
    pass


class VlmcompressCLIPTextModel(ShrunkTowersMixin, CLIPTextModel):
    pass


class VlmcompressCLIPTextModelWithProjection(ShrunkTowersMixin, CLIPTextModelWithProjection):
    pass


class VlmcompressSiglipModel(ShrunkTowersMixin, SiglipModel):
    """A SiglipModel whose layers may have different numbers of heads and MLP neurons."""


class VlmcompressSiglipVisionModel(ShrunkTowersMixin, SiglipVisionModel):
    pass


class VlmcompressSiglipTextModel(ShrunkTowersMixin, SiglipTextModel):
    pass
