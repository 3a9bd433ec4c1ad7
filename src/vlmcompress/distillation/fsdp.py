"""The student of a ``DistillationTrainer`` under accelerate's FSDP plugin (FSDP2, ``fully_shard``).

accelerate 1.16's ``fsdp2_prepare_model`` asks two things of a model that CLIP-like students do not give:

- ``fully_shard`` refuses 0-dim parameters ("fully_shard doesn't support scalar parameters"): CLIP's ``logit_scale``
  (and BLIP's) is one. ``make_shardable`` makes every such parameter shape ``(1,)`` before the Trainer shards the
  student (the forward broadcasts it the same way) and ``restore_scalars`` turns it back in any state dict written
  out, so a saved student has the stock shapes and reloads with ``from_pretrained``.
- it carves ``model.get_input_embeddings()`` into its own FSDP unit, and ``CLIPModel.get_input_embeddings`` raises
  ``NotImplementedError`` in transformers 5: ``make_shardable`` gives such a model one that returns the text tower's
  token embedding (None if it has none, and accelerate then skips that unit).

The teacher is never shown to accelerate: it stays a plain module (eval mode, no grad, ``teacher_dtype``), one whole
copy per process, so it is neither sharded nor trained.

On CPU accelerate does not use FSDP at all: ``AcceleratorState`` switches to ``DistributedType.FSDP`` only from GPU-like
multi-device types (MULTI_GPU, MULTI_XPU, ...), never from MULTI_CPU, so a ``distributed_type: FSDP`` config or
``TrainingArguments(fsdp=...)`` with ``use_cpu=True`` trains with DDP (whole student on every process).
``fsdp_inactive_reason`` says so.
"""

from __future__ import annotations

import copy
import os
import types

from torch import nn

#: ``fully_shard`` needs at least one dimension; a scalar parameter trains as this shape while sharded
SHARDABLE_SCALAR_SHAPE = (1,)


def fsdp_version(accelerator) -> int | None:
    """2 or 1 when the accelerator really shards the model with FSDP, None otherwise."""
    from accelerate.utils import DistributedType

    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    if plugin is None or accelerator.distributed_type != DistributedType.FSDP:
        return None
    return int(getattr(plugin, "fsdp_version", 1) or 1)


def fsdp_requested(args) -> bool:
    """Whether FSDP was asked for: ``TrainingArguments(fsdp=...)`` or an accelerate config with
    ``distributed_type: FSDP`` (``accelerate launch`` sets ``ACCELERATE_USE_FSDP=true``)."""
    return bool(getattr(args, "fsdp", None)) or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def fsdp_inactive_reason(args, accelerator) -> str | None:
    """One line when FSDP was asked for but the accelerator does not shard (None when it does, or was not asked)."""
    if not fsdp_requested(args) or fsdp_version(accelerator) is not None:
        return None
    import accelerate

    kind = str(accelerator.distributed_type).split(".")[-1]
    return (f"FSDP was asked for but accelerate {accelerate.__version__} runs this job as {kind}: it turns FSDP on only "
            "for GPU-like devices (MULTI_GPU, MULTI_XPU, ...), never on CPU, so every process holds the whole student "
            "(DDP when there are several); see docs/fsdp.md")


def _token_embedding(model):
    """The text tower's token embedding (CLIP/SigLIP ``token_embedding``, BERT-style ``word_embeddings``), or None."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) and name.rsplit(".", 1)[-1] in ("token_embedding", "word_embeddings"):
            return module
    return None


def make_shardable(model: nn.Module) -> list[str]:
    """In place, before the student is sharded: every 0-dim parameter becomes shape ``(1,)`` (same value, same
    ``requires_grad``), and a ``get_input_embeddings`` that raises ``NotImplementedError`` is given one that returns
    the text token embedding. Returns the names of the reshaped parameters (for ``restore_scalars``)."""
    names = []
    for name, param in list(model.named_parameters()):
        if param.dim() == 0:
            owner_name, _, attr = name.rpartition(".")
            owner = model.get_submodule(owner_name) if owner_name else model
            setattr(owner, attr, nn.Parameter(param.detach().reshape(SHARDABLE_SCALAR_SHAPE).clone(),
                                              requires_grad=param.requires_grad))
            names.append(name)
    try:
        model.get_input_embeddings()
    except NotImplementedError:
        model.get_input_embeddings = types.MethodType(_token_embedding, model)
    return names


def restore_scalars(state_dict: dict, names) -> dict:
    """``state_dict`` with the parameters ``make_shardable`` reshaped back to 0-dim (in place; returned)."""
    for name in names:
        if name in state_dict and tuple(state_dict[name].shape) == SHARDABLE_SCALAR_SHAPE:
            state_dict[name] = state_dict[name].reshape(())
    return state_dict


def rebuild_whole(model_class, config, state_dict: dict, names) -> nn.Module:
    """A plain (unsharded) ``model_class`` from ``config`` holding the gathered full ``state_dict``."""
    student = model_class(copy.deepcopy(config))
    student.load_state_dict(restore_scalars(state_dict, names), strict=True)
    return student


__all__ = ["fsdp_inactive_reason", "fsdp_requested", "fsdp_version", "make_shardable", "rebuild_whole",
           "restore_scalars"]
