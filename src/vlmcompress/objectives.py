"""Losses shared by the teacher recipe, importance scoring and the methods built on them: the families' own
contrastive/sigmoid losses, and the output KLs of distillation (the similarity matrix's, the decoder's tokens')."""

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


def similarity_logits(image_embeds, text_embeds, logit_scale):
    """logit_scale.exp() * cos(image, text): the matrix CLIP's softmax runs over (rows: images)."""
    image_embeds = F.normalize(image_embeds.float(), dim=-1)
    text_embeds = F.normalize(text_embeds.float(), dim=-1)
    return logit_scale.float().exp().clamp(max=100) * image_embeds @ text_embeds.t()


def _kl_rows(student_logits, teacher_logits, temperature):
    t_logp = F.log_softmax(teacher_logits / temperature, dim=-1)
    s_logp = F.log_softmax(student_logits / temperature, dim=-1)
    # KL(teacher || student) = sum p_t (log p_t - log p_s), averaged over rows
    return (t_logp.exp() * (t_logp - s_logp)).sum(dim=-1).mean()


def similarity_kl_loss(student_logits, teacher_logits, temperature: float = 1.0):
    """KL(teacher || student) over image->text rows and text->image rows, averaged, scaled by T^2."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"similarity matrices differ in shape: student {tuple(student_logits.shape)}, "
                         f"teacher {tuple(teacher_logits.shape)}")
    teacher_logits = teacher_logits.detach().float()
    student_logits = student_logits.float()
    i2t = _kl_rows(student_logits, teacher_logits, temperature)
    t2i = _kl_rows(student_logits.t(), teacher_logits.t(), temperature)
    return (i2t + t2i) / 2 * temperature ** 2


def token_kl_loss(student_logits, teacher_logits, temperature: float = 1.0, mask=None):
    """Token-level KL(teacher || student) on (B, T, V) decoder logits, padding excluded, times T^2."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"decoder logits differ in shape: student {tuple(student_logits.shape)}, "
                         f"teacher {tuple(teacher_logits.shape)} (student and teacher need one vocabulary)")
    t_logp = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    s_logp = F.log_softmax(student_logits.float() / temperature, dim=-1)
    per_token = (t_logp.exp() * (t_logp - s_logp)).sum(dim=-1)
    if mask is None:
        loss = per_token.mean()
    else:
        mask = mask.to(per_token.dtype)
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1)
    return loss * temperature ** 2
