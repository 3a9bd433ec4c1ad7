"""Shapes of a structurally pruned model, as its config records them.

Every tower sub-config of a pruned model carries the keys below; they are what lets a checkpoint describe
itself and what lets reports speak in the base model's original numbering after several pruning steps:

    layer_num_heads           heads per current layer (only while they differ from num_attention_heads)
    layer_num_cross_heads     BLIP text towers: cross-attention heads per current layer (likewise)
    vlmcompress_kept_cross_heads  ... and the original indices of those heads
    layer_intermediate_sizes  MLP neurons per current layer (only while they differ from intermediate_size)
    vlmcompress_kept_layers   original index of each current layer
    vlmcompress_kept_heads    per current layer, the original indices of its heads
    vlmcompress_kept_neurons  per current layer, the original indices of its MLP neurons (only once pruned)
"""

from __future__ import annotations

SHAPE_KEYS = ("layer_num_heads", "layer_intermediate_sizes", "layer_num_cross_heads")
#: a second attention per layer (BLIP's cross-attention) keeps its heads under these keys instead
CROSS_HEAD_KEYS = {"layer_num_heads": "layer_num_cross_heads", "vlmcompress_kept_heads": "vlmcompress_kept_cross_heads"}
#: per-layer lists a layer drop must slice besides the ones with defaults (BLIP cross-attention heads)
EXTRA_PER_LAYER_KEYS = tuple(CROSS_HEAD_KEYS.values())
REMOTE_CODE_FILE = "modeling_vlmcompress.py"


def layer_count(config) -> int:
    return int(config.num_hidden_layers)


def kept_layers(config) -> list[int]:
    return list(getattr(config, "vlmcompress_kept_layers", None) or range(layer_count(config)))


def heads_per_layer(config) -> list[int]:
    return list(getattr(config, "layer_num_heads", None) or [config.num_attention_heads] * layer_count(config))


def kept_heads(config) -> list[list[int]]:
    tracked = getattr(config, "vlmcompress_kept_heads", None)
    if tracked:
        return [list(h) for h in tracked]
    return [list(range(n)) for n in heads_per_layer(config)]


def neurons_per_layer(config) -> list[int]:
    return list(getattr(config, "layer_intermediate_sizes", None) or [config.intermediate_size] * layer_count(config))


def kept_neurons(config) -> list[list[int]] | None:
    tracked = getattr(config, "vlmcompress_kept_neurons", None)
    return [list(n) for n in tracked] if tracked else None


def tower_needs_remote_code(config) -> bool:
    """True when the stock class cannot rebuild these shapes from the config."""
    return any(getattr(config, key, None) for key in SHAPE_KEYS)


def unset(config, key) -> None:
    if getattr(config, key, None) is not None:
        delattr(config, key)


def normalize(config, stock_mlp_resize_ok: bool = True) -> None:
    """Drop per-layer keys the stock config can express: equal heads everywhere, or an MLP pruned uniformly."""
    heads = heads_per_layer(config)
    if all(h == config.num_attention_heads for h in heads):
        unset(config, "layer_num_heads")
    sizes = neurons_per_layer(config)
    if sizes and all(s == sizes[0] for s in sizes):
        if sizes[0] == config.intermediate_size:
            unset(config, "layer_intermediate_sizes")
        elif stock_mlp_resize_ok:
            config.intermediate_size = sizes[0]
            unset(config, "layer_intermediate_sizes")
