"""What every model-family adapter provides."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AttentionParts:
    """One self-attention block: per-head slices are rows of q/k/v and columns of out."""

    module: nn.Module
    q: nn.Linear
    k: nn.Linear
    v: nn.Linear
    out: nn.Linear
    head_dim: int
    #: attribute name of each role on ``module`` (the adapter knows them; pruning only knows roles)
    names: dict

    @property
    def num_heads(self) -> int:
        return self.q.out_features // self.head_dim

    def replace(self, role: str, linear: nn.Linear) -> None:
        setattr(self.module, self.names[role], linear)
        setattr(self, role, linear)


@dataclass
class MlpParts:
    """One MLP: neurons are rows of every ``up`` Linear and columns of ``down``."""

    module: nn.Module
    up: list
    down: nn.Linear
    up_names: list
    down_name: str

    @property
    def num_neurons(self) -> int:
        return self.down.in_features

    def replace_up(self, linears) -> None:
        for name, linear in zip(self.up_names, linears):
            setattr(self.module, name, linear)
        self.up = list(linears)

    def replace_down(self, linear: nn.Linear) -> None:
        setattr(self.module, self.down_name, linear)
        self.down = linear


@dataclass
class TowerFeatures:
    """What one forward of a two-tower model gives distillation: projected embeddings, the learned temperature,
    and (when asked) every tower's hidden states (index 0 is the embedding output, i is layer i's output)."""

    image_embeds: torch.Tensor
    text_embeds: torch.Tensor
    logit_scale: torch.Tensor
    hidden_states: dict
    text_mask: torch.Tensor | None = None


def _pooled(output):
    """v5 get_*_features return a ModelOutput whose pooler_output is the projected embedding; older ones a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        pooled = output[0] if isinstance(output, (tuple, list)) else output["pooler_output"]
    return pooled


class ModelAdapter:
    """Wraps one model instance; methods take plain tensors so evaluation and losses stay family-agnostic."""

    family: str = ""
    model_types: tuple[str, ...] = ()
    #: keyword arguments for the tokenizer when encoding captions/prompts
    text_padding: dict = {"padding": True}
    #: whether a uniformly pruned MLP can be described by the stock config's intermediate_size
    stock_mlp_resize_ok: bool = True
    #: modules (names from the model root) that quantization keeps in full precision by default: heads every
    #: embedding passes through, whose error no later layer can average out. bitsandbytes replaces only
    #: ``nn.Linear``, so patch/position embeddings (Conv2d/Embedding) and ``logit_scale`` stay full precision anyway.
    quantization_keep: tuple[str, ...] = ()

    def __init__(self, model):
        self.model = model

    @classmethod
    def matches_config(cls, config) -> bool:
        return getattr(config, "model_type", None) in cls.model_types

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def towers(self) -> dict:
        raise NotImplementedError

    def features(self, model, pixel_values, input_ids, attention_mask=None, output_hidden_states=False) -> TowerFeatures:
        """One forward call of ``model`` (this adapter's model itself, or it wrapped by DDP or peft, so gradient
        synchronisation sees the call) returning :class:`TowerFeatures`."""
        raise NotImplementedError

    def tower_config(self, tower: str):
        raise NotImplementedError

    def layers(self, tower: str):
        raise NotImplementedError

    def set_layers(self, tower: str, layers) -> None:
        raise NotImplementedError

    def attention(self, layer) -> AttentionParts:
        raise NotImplementedError

    def mlp(self, layer) -> MlpParts:
        raise NotImplementedError

    def module_name(self, module: nn.Module) -> str:
        """Dotted name of ``module`` inside the model ("" for the model itself)."""
        for name, candidate in self.model.named_modules():
            if candidate is module:
                return name
        raise ValueError(f"{type(module).__name__} is not part of this model")

    def quantization_skip_modules(self, towers) -> list[str]:
        """Module names to keep in full precision when only ``towers`` are quantized: the family's defaults that this
        model has, plus every tower not asked for."""
        present = {name for name, _ in self.model.named_modules()}
        skip = [name for name in self.quantization_keep if name in present]
        skip += [self.module_name(module) for tower, module in self.towers().items() if tower not in towers]
        return skip

    def input_dtype(self) -> torch.dtype:
        """dtype pixel values should be cast to (the dtype of the first floating-point parameter)."""
        for p in self.model.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    def device(self) -> torch.device:
        return next(self.model.parameters()).device
