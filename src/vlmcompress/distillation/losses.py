"""Distillation losses: each a small function of tensors, family-agnostic.

- ``similarity_kl_loss``: logit distillation on the image-text similarity matrix, both directions,
  KL(teacher || student) of the softmaxes at temperature T, times T^2 (TinyCLIP's affinity mimicking).
- ``hidden_state_loss``: MSE or cosine between mapped hidden states, through an optional learned projection.
- ``embedding_loss``: feature distillation of the final (projected) embeddings (CLIP-KD's FD).
- ``token_kl_loss``: token-level KL on decoder logits (captioning students), padding masked out.
The student's own contrastive loss lives in ``vlmcompress.losses`` and is reached through the adapter.
"""

from __future__ import annotations

import torch.nn.functional as F

# the output KLs live with the other shared objectives (importance scoring measures with them too)
from ..objectives import similarity_kl_loss, similarity_logits, token_kl_loss  # noqa: F401


def _match(student, teacher, projection, kind):
    if projection is not None:
        student = projection(student)
    if student.shape[-1] != teacher.shape[-1]:
        raise ValueError(f"student width {student.shape[-1]} != teacher width {teacher.shape[-1]}: "
                         "a learned projection is needed")
    if kind not in ("mse", "cosine"):
        raise ValueError(f"loss kind must be 'mse' or 'cosine', got {kind!r}")
    return student.float(), teacher.detach().float()


def hidden_state_loss(student_hidden, teacher_hidden, projection=None, kind: str = "mse", mask=None):
    """Distance between one student hidden state (B, T, Ds) and its mapped teacher state (B, T, Dt).

    ``mse``: mean squared error per element; ``cosine``: mean of 1 - cos per token. ``mask`` (B, T) excludes
    padding tokens. ``projection`` maps student width to teacher width when they differ.
    """
    student, teacher = _match(student_hidden, teacher_hidden, projection, kind)
    if kind == "mse":
        per_token = (student - teacher).pow(2).mean(dim=-1)
    else:
        per_token = 1 - F.cosine_similarity(student, teacher, dim=-1)
    if mask is None:
        return per_token.mean()
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def embedding_loss(student_embeds, teacher_embeds, projection=None, kind: str = "mse"):
    """Feature distillation of final embeddings (B, D), compared after L2 normalisation (CLIP compares
    directions only): ``mse`` is the mean squared distance ||s - t||^2 = 2 - 2 cos, ``cosine`` is 1 - cos."""
    student, teacher = _match(student_embeds, teacher_embeds, projection, kind)
    student, teacher = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
    if kind == "mse":
        return (student - teacher).pow(2).sum(dim=-1).mean()
    return (1 - (student * teacher).sum(dim=-1)).mean()


def uniform_layer_map(teacher_layers: int, student_layers: int) -> dict:
    """Teacher layer -> student layer, 1-based over layer outputs (0 is the embedding output), evenly spread:
    student layer j learns from teacher layer round(j * Nt / Ns); the last layers always meet."""
    if student_layers < 1 or teacher_layers < 1:
        raise ValueError("both models need at least one layer")
    return {round(j * teacher_layers / student_layers): j for j in range(1, student_layers + 1)}
