"""Modeling code for structurally pruned CLIP/SigLIP/BLIP checkpoints written by vlmcompress.

This file is self-contained (torch + transformers only) and is copied next to every pruned checkpoint whose
shapes the stock classes cannot describe (heads pruned, or MLP widths that differ per layer), so that

    AutoModel.from_pretrained(path, trust_remote_code=True)

rebuilds it exactly without vlmcompress installed. The shapes come from keys in each tower's sub-config:

    layer_num_heads:          [heads kept in layer 0, layer 1, ...]   (head_dim is unchanged)
    layer_intermediate_sizes: [MLP neurons kept in layer 0, layer 1, ...]

The stock CLIP/SigLIP and BLIP-text forwards already run with fewer heads (they reshape with
``view(..., -1, head_dim)``) and with any MLP width, so only ``__init__`` changes: it shrinks the Linears before
the weights are loaded. BLIP's vision attention reshapes its fused qkv with ``embed_dim // num_heads``; a pruned
layer uses ``VlmcompressBlipAttention``, the same module with a forward that reads ``head_dim``.
"""

import torch
from torch import nn
from transformers import (
    BlipForConditionalGeneration,
    BlipForImageTextRetrieval,
    BlipForQuestionAnswering,
    BlipModel,
    BlipVisionModel,
    CLIPModel,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPVisionModel,
    CLIPVisionModelWithProjection,
    SiglipModel,
    SiglipTextModel,
    SiglipVisionModel,
)
from transformers.models.blip.modeling_blip import BlipAttention


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


def _resize_bert_attention(attention, heads):
    attn = attention.self
    width = int(heads) * attn.attention_head_size
    attn.query = _resize_linear(attn.query, out_features=width)
    attn.key = _resize_linear(attn.key, out_features=width)
    attn.value = _resize_linear(attn.value, out_features=width)
    attention.output.dense = _resize_linear(attention.output.dense, in_features=width)
    attn.num_attention_heads = int(heads)
    attn.all_head_size = width


def _resize_bert_layer(layer, heads, size, cross_heads=None):
    """A BLIP text (BERT-style) layer: self-attention heads, cross-attention heads and MLP width."""
    if heads is not None:
        _resize_bert_attention(layer.attention, heads)
    if cross_heads is not None:
        _resize_bert_attention(layer.crossattention, cross_heads)
    if size is not None:
        layer.intermediate.dense = _resize_linear(layer.intermediate.dense, out_features=int(size))
        layer.output.dense = _resize_linear(layer.output.dense, in_features=int(size))


def _resize_blip_vision_layer(layer, heads, size, cross_heads=None):
    if heads is not None:
        attn = layer.self_attn
        width = int(heads) * attn.head_dim
        attn.qkv = _resize_linear(attn.qkv, out_features=3 * width)
        attn.projection = _resize_linear(attn.projection, in_features=width)
        attn.num_heads = int(heads)
        attn.__class__ = VlmcompressBlipAttention
    if size is not None:
        layer.mlp.fc1 = _resize_linear(layer.mlp.fc1, out_features=int(size))
        layer.mlp.fc2 = _resize_linear(layer.mlp.fc2, in_features=int(size))


def shrink_blip(model):
    """Shrink every BLIP tower: vision (fused qkv), text encoder and text decoder (BERT-style)."""
    towers = [(model.vision_model if hasattr(model, "vision_model") else model, _resize_blip_vision_layer)]
    for name in ("text_encoder", "text_model", "text_decoder"):
        tower = getattr(model, name, None)
        if tower is not None:
            towers.append((getattr(tower, "bert", tower), _resize_bert_layer))
    for tower, resize in towers:
        config = tower.config
        heads = getattr(config, "layer_num_heads", None)
        sizes = getattr(config, "layer_intermediate_sizes", None)
        cross = getattr(config, "layer_num_cross_heads", None)
        encoder = tower.encoder
        for i, layer in enumerate(encoder.layers if hasattr(encoder, "layers") else encoder.layer):
            resize(layer, None if heads is None else heads[i], None if sizes is None else sizes[i],
                   None if cross is None else cross[i])


class VlmcompressBlipAttention(BlipAttention):
    """BLIP's vision attention for a layer with fewer heads: the fused qkv is split by ``head_dim`` (the stock
    forward uses ``embed_dim // num_heads``, which is only right while no head is removed)."""

    def forward(self, hidden_states, **kwargs):
        bsz, tgt_len, _ = hidden_states.size()
        mixed_qkv = self.qkv(hidden_states).reshape(bsz, tgt_len, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query_states, key_states, value_states = mixed_qkv[0], mixed_qkv[1], mixed_qkv[2]
        attention_scores = torch.matmul(query_states, key_states.transpose(-1, -2)) * self.scale
        attention_probs = self.dropout(nn.functional.softmax(attention_scores, dim=-1))
        context = torch.matmul(attention_probs, value_states).permute(0, 2, 1, 3)
        context = context.reshape(bsz, tgt_len, self.num_heads * self.head_dim)
        return self.projection(context), attention_probs


class ShrunkBlipMixin:
    """Runs the stock ``__init__``, then shrinks the BLIP towers; put first among the bases."""

    def __init__(self, config):
        super().__init__(config)
        shrink_blip(self)


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


class VlmcompressBlipForImageTextRetrieval(ShrunkBlipMixin, BlipForImageTextRetrieval):
    """A BlipForImageTextRetrieval whose layers may have different numbers of heads and MLP neurons."""


class VlmcompressBlipForConditionalGeneration(ShrunkBlipMixin, BlipForConditionalGeneration):
    """A BlipForConditionalGeneration whose layers may have different numbers of heads and MLP neurons."""


class VlmcompressBlipForQuestionAnswering(ShrunkBlipMixin, BlipForQuestionAnswering):
    pass


class VlmcompressBlipModel(ShrunkBlipMixin, BlipModel):
    pass


class VlmcompressBlipVisionModel(ShrunkBlipMixin, BlipVisionModel):
    pass
