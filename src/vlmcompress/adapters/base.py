"""What every model-family adapter provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..errors import VlmcompressError


def get_path(module: nn.Module, path: str):
    """``module.a.b`` for ``path = "a.b"``."""
    for part in path.split("."):
        module = getattr(module, part)
    return module


def set_path(module: nn.Module, path: str, value) -> None:
    parent, _, last = path.rpartition(".")
    setattr(get_path(module, parent) if parent else module, last, value)


@dataclass
class AttentionParts:
    """One attention block. Head ``h`` owns, in every input Linear, ``blocks`` runs of ``head_dim`` rows (one run
    for separate q/k/v Linears; three for a fused qkv Linear, whose rows are all q heads, then all k, then all v),
    and columns ``h*head_dim:(h+1)*head_dim`` of the output Linear."""

    module: nn.Module
    head_dim: int
    #: role -> dotted attribute path from ``module``; every role but "out" is an input Linear
    names: dict
    #: input role -> head blocks stacked in its rows (1 for q/k/v, 3 for a fused qkv)
    blocks: dict
    #: called with the new head count after slicing, to update whatever the forward reads it from
    set_num_heads: Callable | None = None

    def linear(self, role: str) -> nn.Linear:
        return get_path(self.module, self.names[role])

    @property
    def out(self) -> nn.Linear:
        return self.linear("out")

    @property
    def num_heads(self) -> int:
        return self.out.in_features // self.head_dim

    def inputs(self) -> list:
        """(role, Linear) of every input projection."""
        return [(role, self.linear(role)) for role in self.blocks]

    def linears(self) -> list:
        return [lin for _, lin in self.inputs()] + [self.out]

    def head_rows(self, role: str, heads) -> torch.Tensor:
        """Rows of input Linear ``role`` that belong to ``heads``, in the order the forward reads them."""
        n, d = self.num_heads, self.head_dim
        index = torch.arange(self.blocks[role] * n * d).view(self.blocks[role], n, d)
        return index[:, list(heads)].reshape(-1)

    def head_columns(self, heads) -> torch.Tensor:
        return torch.arange(self.num_heads * self.head_dim).view(self.num_heads, self.head_dim)[list(heads)].reshape(-1)

    def per_head(self, role: str, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` (shaped like ``role``'s weight) over everything but the head it belongs to."""
        n, d = self.num_heads, self.head_dim
        if role == "out":
            return tensor.reshape(tensor.shape[0], n, d).sum(dim=(0, 2))
        return tensor.reshape(self.blocks[role], n, d, -1).sum(dim=(0, 2, 3))

    def row_mask(self, role: str, head_mask: torch.Tensor) -> torch.Tensor:
        """A per-head vector expanded to ``role``'s rows (input Linears) or columns ("out")."""
        expanded = head_mask.repeat_interleave(self.head_dim)
        return expanded if role == "out" else expanded.repeat(self.blocks[role])

    def head_sums(self, of) -> torch.Tensor:
        """Per head, the sum of ``of(linear)`` (a tensor shaped like that Linear's weight) over every input Linear's
        rows and the output Linear's columns the head owns."""
        total = sum(self.per_head(role, of(lin)) for role, lin in self.inputs())
        return total + self.per_head("out", of(self.out))

    def replace(self, role: str, linear: nn.Linear) -> None:
        set_path(self.module, self.names[role], linear)


@dataclass
class MlpParts:
    """One MLP: neurons are rows of every ``up`` Linear and columns of ``down`` (paths are dotted from ``module``)."""

    module: nn.Module
    up_names: list
    down_name: str

    @property
    def up(self) -> list:
        return [get_path(self.module, name) for name in self.up_names]

    @property
    def down(self) -> nn.Linear:
        return get_path(self.module, self.down_name)

    @property
    def num_neurons(self) -> int:
        return self.down.in_features

    def neuron_sums(self, of) -> torch.Tensor:
        """Per neuron, the sum of ``of(linear)`` (shaped like that Linear's weight) over its rows of every ``up``
        Linear and its column of ``down``."""
        return sum(of(up).sum(dim=1) for up in self.up) + of(self.down).sum(dim=0)

    def replace_up(self, linears) -> None:
        for name, linear in zip(self.up_names, linears):
            set_path(self.module, name, linear)

    def replace_down(self, linear: nn.Linear) -> None:
        set_path(self.module, self.down_name, linear)


@dataclass
class TowerFeatures:
    """What one forward gives distillation: projected embeddings and the learned temperature (two-tower models),
    next-token logits, their mask and the model's own loss (captioners), and (when asked) every tower's hidden
    states (index 0 is the embedding output, i is layer i's output)."""

    image_embeds: torch.Tensor | None
    text_embeds: torch.Tensor | None
    logit_scale: torch.Tensor | None
    hidden_states: dict
    text_mask: torch.Tensor | None = None
    #: (B, T-1, V) logits that predict tokens 1..T-1, and the (B, T-1) mask of real (non-padding) targets
    token_logits: torch.Tensor | None = None
    token_mask: torch.Tensor | None = None
    #: the model's own training loss on this batch (a captioner's next-token cross-entropy)
    own_loss: torch.Tensor | None = None
    #: (B, pairs, 2) image-text matching logits (BLIP retrieval), when asked for
    itm_logits: torch.Tensor | None = None


def _pooled(output):
    """v5 get_*_features return a ModelOutput whose pooler_output is the projected embedding; older ones a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        pooled = output[0] if isinstance(output, (tuple, list)) else output["pooler_output"]
    return pooled


class ModelAdapter:
    """Wraps one model instance; methods take plain tensors so evaluation and losses stay family-agnostic.

    Everything the method packages, the harness and the cards need to know about a family is declared here and
    answered by the family's adapter; nothing outside ``adapters/`` keeps a table of families. A new family is one
    module with a subclass (see ``docs/adding_a_family.md``) listed in ``adapters.ADAPTERS`` or passed to
    ``adapters.register_adapter``.
    """

    family: str = ""
    model_types: tuple[str, ...] = ()
    #: the family's name for people ("CLIP") and the Hub pipeline tag of its checkpoints
    display_name: str = ""
    pipeline_tag: str = "zero-shot-image-classification"
    #: (what it is, BibTeX) of the family's paper, cited by every card of the family
    citation: tuple[str, str] | None = None
    #: every tower name a model of this family can have (a given model may have fewer: ``towers()``)
    tower_names: tuple[str, ...] = ()
    #: every attention-head site name (a tower's self-attention, plus any second attention such as BLIP's
    #: cross-attention); default: the towers
    head_site_names: tuple[str, ...] = ()
    #: name of the class in ``modeling_vlmcompress`` that rebuilds per-layer shapes when a config records no
    #: ``architectures`` (None: such checkpoints need their class named)
    default_remote_class: str | None = None
    #: keyword arguments for the tokenizer when encoding captions/prompts
    text_padding: dict = {"padding": True}
    #: whether a uniformly pruned MLP can be described by the stock config's intermediate_size
    stock_mlp_resize_ok: bool = True
    #: modules (names from the model root) that quantization keeps in full precision by default: heads every
    #: embedding passes through, whose error no later layer can average out. bitsandbytes replaces only
    #: ``nn.Linear``, so patch/position embeddings (Conv2d/Embedding) and ``logit_scale`` stay full precision anyway.
    quantization_keep: tuple[str, ...] = ()

    #: tower name -> the model's Linear from that tower into the shared embedding space (attribute from the root)
    tower_projections: dict = {}

    def __init__(self, model):
        self.model = model

    def tower_modules(self, tower: str) -> list:
        """The modules only ``tower`` runs: the tower and its projection into the embedding space (what freezing a
        tower freezes)."""
        towers = self.towers()
        if tower not in towers:
            raise VlmcompressError(f"unknown tower {tower!r}: this {self.family} model has {', '.join(towers)}")
        projection = getattr(self.model, self.tower_projections[tower], None) if tower in self.tower_projections else None
        return [towers[tower]] + ([projection] if projection is not None else [])

    @classmethod
    def matches_config(cls, config) -> bool:
        return getattr(config, "model_type", None) in cls.model_types

    @classmethod
    def sites(cls) -> tuple[str, ...]:
        """Every head-site name of the family."""
        return cls.head_site_names or cls.tower_names

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    #: whether the model is measured by its captions (``generate_captions``) instead of image-text embeddings
    is_captioner: bool = False
    #: whether ``features(..., with_itm=True)`` gives image-text matching logits
    has_itm: bool = False

    @property
    def task_auto_classes(self) -> tuple[str, ...]:
        """The transformers task auto classes (beside ``AutoModel``) that a checkpoint with remote code registers in
        its ``auto_map``, so ``pipeline(pipeline_tag, model=folder, trust_remote_code=True)`` loads our class."""
        return ("AutoModelForZeroShotImageClassification",)

    def latency_forward(self, pixel_values, input_ids, attention_mask=None) -> None:
        """The forward that latency figures time: both towers' embeddings (captioners: image + teacher-forced text)."""
        self.image_embeddings(pixel_values)
        self.text_embeddings(input_ids, attention_mask)

    def generate_captions(self, pixel_values, max_new_tokens: int = 12):
        raise VlmcompressError(f"{type(self.model).__name__} does not generate captions")

    def training_loss(self, pixel_values, input_ids, attention_mask=None, labels=None) -> torch.Tensor:
        """The model's own training objective on a batch (importance scoring and QLoRA train with it)."""
        raise NotImplementedError(f"{type(self).__name__} does not define training_loss")

    def pair_loss(self, image_embeds, text_embeds, labels=None) -> torch.Tensor:
        """The family's image-text loss on embeddings (the distillation ``contrastive`` term); with ``labels`` every
        same-label pair is a positive."""
        raise VlmcompressError(f"{type(self.model).__name__} has no image-text embedding loss: set contrastive_weight "
                               "to 0")

    def caption_inputs(self, input_ids, attention_mask=None):
        """Decoder inputs and labels for a captioner's teacher-forced loss."""
        raise VlmcompressError(f"{type(self.model).__name__} is not a captioner: it has no caption inputs")

    def logit_scale(self) -> torch.Tensor:
        """log of the image-text similarity scale (CLIP's learned ``logit_scale``)."""
        return self.model.logit_scale

    @staticmethod
    def usage(class_name: str) -> str:
        """What a model card's snippet shows for this class: "zero_shot", "itc" (image-text scores) or "caption"."""
        return "zero_shot"

    def towers(self) -> dict:
        raise NotImplementedError

    def features(self, model, pixel_values, input_ids, attention_mask=None, output_hidden_states=False) -> TowerFeatures:
        """One forward call of ``model`` (this adapter's model itself, or it wrapped by DDP or peft, so gradient
        synchronisation sees the call) returning :class:`TowerFeatures`."""
        raise NotImplementedError

    def tower_config(self, tower: str):
        raise NotImplementedError

    def tower_reads(self, tower: str) -> tuple[str, ...]:
        """The towers whose outputs ``tower`` reads (a text decoder's cross-attention reads the image tower); a tower
        that reads none is left unchanged by anything done to the others (ablation importance replays it)."""
        return ()

    def layers(self, tower: str):
        raise NotImplementedError

    def set_layers(self, tower: str, layers) -> None:
        raise NotImplementedError

    def attention(self, layer) -> AttentionParts:
        raise NotImplementedError

    def mlp(self, layer) -> MlpParts:
        raise NotImplementedError

    # --- the hidden width (residual stream) of a tower, for slicing it (TinyCLIP/DistilBERT-style narrow students)
    def hidden_parts(self, tower: str) -> list:
        """(module, parameter name, axis) of every tensor of ``tower`` with an axis on its residual stream (the
        embeddings, every LayerNorm, the attention's inputs and output, the MLP's, and the projection out of the tower).
        Families that do not declare them cannot have their width sliced."""
        from ..errors import VlmcompressError

        raise VlmcompressError(f"slicing the hidden width is not implemented for {self.display_name or self.family} "
                               "models: remove heads, MLP neurons or layers instead (head_ratio, mlp_ratio, keep_every)")

    def set_hidden_size(self, tower: str, hidden_size: int, num_heads: int) -> None:
        """Record a tower's new width and head count in its config (and any module attribute that copies them)."""
        raise NotImplementedError

    # --- attention-head sites: every tower's self-attention, plus any second attention per layer (BLIP's
    # cross-attention, as "<tower>_cross") that head pruning treats as a tower of its own
    def head_sites(self) -> dict:
        """Head site name -> the tower whose layers hold it."""
        return {tower: tower for tower in self.towers()}

    def head_parts(self, site: str, layer) -> AttentionParts:
        return self.attention(layer)

    def head_config(self, site: str):
        """The config object whose per-layer head keys describe ``site``."""
        return self.tower_config(site)

    # --- walks over the structure, shared by every method ----------------------------------------------------
    def layer_units(self, towers=None):
        """(tower, layer index, layer) for every layer of ``towers`` (default: all)."""
        for tower in self.towers():
            if towers is None or tower in towers:
                for i, layer in enumerate(self.layers(tower)):
                    yield tower, i, layer

    def mlp_units(self, towers=None):
        """(tower, layer index, MlpParts) for every layer of ``towers`` (default: all)."""
        for tower, i, layer in self.layer_units(towers):
            yield tower, i, self.mlp(layer)

    def head_units(self, sites=None):
        """(head site, layer index, AttentionParts) for every layer of ``sites`` (default: all head sites)."""
        for site, tower in self.head_sites().items():
            if sites is None or site in sites:
                for i, layer in enumerate(self.layers(tower)):
                    yield site, i, self.head_parts(site, layer)

    def module_name(self, module: nn.Module) -> str:
        """Dotted name of ``module`` inside the model ("" for the model itself)."""
        for name, candidate in self.model.named_modules():
            if candidate is module:
                return name
        raise ValueError(f"{type(module).__name__} is not part of this model")

    def quantization_skip_modules(self, towers, family_defaults: bool = True) -> list[str]:
        """Module names to keep in full precision when only ``towers`` are quantized: the family's defaults that this
        model has (unless ``family_defaults`` is False), plus every tower not asked for."""
        present = {name for name, _ in self.model.named_modules()}
        skip = [name for name in self.quantization_keep if name in present] if family_defaults else []
        skip += [self.module_name(module) for tower, module in self.towers().items() if tower not in towers]
        return skip

    def input_dtype(self) -> torch.dtype:
        """dtype pixel values should be cast to (the dtype of the first floating-point parameter)."""
        if not isinstance(self.model, nn.Module) and isinstance(getattr(self.model, "dtype", None), torch.dtype):
            return self.model.dtype  # a model object that is not a torch module (ONNX Runtime)
        for p in self.model.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    def device(self) -> torch.device:
        if not isinstance(self.model, nn.Module) and isinstance(getattr(self.model, "device", None), torch.device):
            return self.model.device
        return next(self.model.parameters()).device
