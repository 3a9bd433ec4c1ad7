"""Losses shared by the teacher recipe, importance scoring and the methods built on them."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(image_embeds, text_embeds, logit_scale, labels=None):
    """Symmetric CLIP InfoNCE. With ``labels``, every same-label pair in the batch is a positive (soft targets),
    which is right when a batch holds several images of one class; without, the diagonal is the target."""
    image_embeds = F.normalize(image_embeds, dim=-1)
    text_embeds = F.normalize(text_embeds, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * image_embeds @ text_embeds.t()
    if labels is None:
        targets = torch.eye(logits.shape[0], device=logits.device, dtype=logits.dtype)
    else:
        same = (labels[:, None] == labels[None, :]).to(logits.dtype)
        targets = same / same.sum(dim=1, keepdim=True)
    loss_i2t = torch.sum(-targets * F.log_softmax(logits, dim=1), dim=1).mean()
    loss_t2i = torch.sum(-targets * F.log_softmax(logits.t(), dim=1), dim=1).mean()
    return (loss_i2t + loss_t2i) / 2


def sigmoid_loss(image_embeds, text_embeds, logit_scale, logit_bias, labels=None):
    """SigLIP's pairwise sigmoid loss; with ``labels`` every same-label pair is a positive."""
    image_embeds = F.normalize(image_embeds, dim=-1)
    text_embeds = F.normalize(text_embeds, dim=-1)
    logits = image_embeds @ text_embeds.t() * logit_scale.exp() + logit_bias
    if labels is None:
        sign = 2 * torch.eye(logits.shape[0], device=logits.device, dtype=logits.dtype) - 1
    else:
        sign = 2 * (labels[:, None] == labels[None, :]).to(logits.dtype) - 1
    return -F.logsigmoid(sign * logits).sum() / logits.shape[0]
