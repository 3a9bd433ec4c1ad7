"""Each distillation loss on hand-made tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from vlmcompress.distillation.losses import (embedding_loss, hidden_state_loss, similarity_kl_loss, similarity_logits,
                                             token_kl_loss, uniform_layer_map)


def test_similarity_kl_matches_a_hand_computed_value_and_scales_with_t_squared():
    student = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 3.0]])

    def kl(s_rows, t_rows, T):
        total = 0.0
        for s, t in zip(s_rows, t_rows):
            p = F.softmax(t / T, dim=0)
            q = F.softmax(s / T, dim=0)
            total += float((p * (p.log() - q.log())).sum())
        return total / len(s_rows)

    for T in (1.0, 2.0):
        expected = (kl(student, teacher, T) + kl(student.t(), teacher.t(), T)) / 2 * T * T
        assert similarity_kl_loss(student, teacher, T).item() == pytest.approx(expected, rel=1e-5)
    assert similarity_kl_loss(teacher, teacher, 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_similarity_kl_trains_the_student_only():
    s = torch.randn(4, 4, requires_grad=True)
    t = torch.randn(4, 4, requires_grad=True)
    similarity_kl_loss(s, t, 2.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None
    with pytest.raises(ValueError, match="shape"):
        similarity_kl_loss(torch.zeros(4, 4), torch.zeros(3, 3))


def test_similarity_logits_are_scaled_cosines():
    img, txt = torch.randn(3, 5), torch.randn(4, 5)
    logits = similarity_logits(img * 7, txt, torch.tensor(math.log(10.0)))
    assert torch.allclose(logits, 10 * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t(), atol=1e-5)


def test_embedding_loss_compares_directions_and_projects_widths():
    t = torch.randn(6, 8)
    assert embedding_loss(3 * t, t).item() == pytest.approx(0.0, abs=1e-6)  # length does not matter
    s = torch.randn(6, 8)
    cos = F.cosine_similarity(s, t, dim=-1)
    assert embedding_loss(s, t, kind="mse").item() == pytest.approx((2 - 2 * cos).mean().item(), rel=1e-5)
    assert embedding_loss(s, t, kind="cosine").item() == pytest.approx((1 - cos).mean().item(), rel=1e-5)
    narrow = torch.randn(6, 4)
    with pytest.raises(ValueError, match="projection"):
        embedding_loss(narrow, t)
    proj = torch.nn.Linear(4, 8)
    embedding_loss(narrow, t, projection=proj).backward()
    assert proj.weight.grad is not None


def test_hidden_state_loss_ignores_padding():
    s, t = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    base = hidden_state_loss(s, t, mask=mask)
    s2 = s.clone()
    s2[0, 3:] += 100  # changes only padded positions
    assert hidden_state_loss(s2, t, mask=mask).item() == pytest.approx(base.item(), rel=1e-6)
    assert hidden_state_loss(s2, t).item() > base.item()
    expected = ((s - t) ** 2).mean(-1)[mask.bool()].mean()
    assert base.item() == pytest.approx(expected.item(), rel=1e-5)
    assert hidden_state_loss(t, t, kind="cosine").item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="mse"):
        hidden_state_loss(s, t, kind="l1")


def test_token_kl_masks_padding_and_is_zero_for_equal_logits():
    t = torch.randn(2, 3, 7)
    assert token_kl_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(2, 3, 7)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    s2 = s.clone()
    s2[0, 2] += 5
    assert token_kl_loss(s2, t, 2.0, mask).item() == pytest.approx(token_kl_loss(s, t, 2.0, mask).item(), rel=1e-6)


def test_uniform_layer_map():
    assert uniform_layer_map(4, 2) == {2: 1, 4: 2}
    assert uniform_layer_map(12, 4) == {3: 1, 6: 2, 9: 3, 12: 4}
    assert uniform_layer_map(2, 2) == {1: 1, 2: 2}
