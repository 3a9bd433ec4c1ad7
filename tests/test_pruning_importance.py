import pytest
import torch

from conftest import tiny_clip
from vlmcompress.adapters import get_adapter
from vlmcompress.errors import VlmcompressError
from vlmcompress.pruning.importance import (
    AblationImportance,
    FisherImportance,
    GateHooks,
    SampleGateHooks,
    MagnitudeImportance,
    RandomImportance,
    TaylorImportance,
    calibration_batches,
    load_scores,
    save_scores,
    select_heads,
    select_layers,
    select_neurons,
)


@pytest.fixture(scope="module")
def batches(processor):
    return calibration_batches(processor, num_samples=32, batch_size=16)


def _silence_head(model, tower, layer, head):
    attn = get_adapter(model).attention(get_adapter(model).layers(tower)[layer])
    with torch.no_grad():
        attn.out.weight[:, head * attn.head_dim:(head + 1) * attn.head_dim] = 0


def _make_identity(model, tower, layer):
    adapter = get_adapter(model)
    block = adapter.layers(tower)[layer]
    with torch.no_grad():
        for lin in (adapter.attention(block).out, adapter.mlp(block).down):
            lin.weight.zero_()
            lin.bias.zero_()


def test_calibration_batches_come_from_training_split(processor, batches):
    from vlmcompress.embedded import digits

    assert sum(len(b["labels"]) for b in batches) == 32
    labels = torch.cat([b["labels"] for b in batches]).tolist()
    assert set(labels) <= set(digits.SEEN_NUMBERS)
    assert batches[0]["pixel_values"].shape[1:] == (3, 56, 56)


def test_magnitude_scores_rank_a_zeroed_head_lowest(processor):
    model = tiny_clip(processor)
    attn = get_adapter(model).attention(get_adapter(model).layers("vision")[1])
    with torch.no_grad():
        for lin in (attn.linear("q"), attn.linear("k"), attn.linear("v")):
            lin.weight[2 * attn.head_dim:3 * attn.head_dim] = 0
    _silence_head(model, "vision", 1, 2)
    scores = MagnitudeImportance()(model)
    assert len(scores["heads"]["text"][0]) == 4 and len(scores["neurons"]["vision"][0]) == 128
    assert scores["heads"]["vision"][1][2] == 0.0
    assert select_heads(scores, 0.125, towers=["vision"]) == {"vision": {1: [2]}}


def test_taylor_scores_a_silent_head_zero_and_leaves_no_trace(processor, batches):
    model = tiny_clip(processor)
    _silence_head(model, "text", 0, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = TaylorImportance()(model, batches)
    assert scores["heads"]["text"][0][1] == 0.0
    assert all(s > 0 for i, s in enumerate(scores["heads"]["text"][0]) if i != 1)
    assert all(s >= 0 for s in scores["neurons"]["vision"][1])
    adapter = get_adapter(model)
    for tower in ("vision", "text"):
        for layer in adapter.layers(tower):
            assert not adapter.attention(layer).out._forward_pre_hooks
            assert not adapter.mlp(layer).down._forward_pre_hooks
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())


def test_ablation_scores_a_silent_head_zero_an_active_one_positive_and_leaves_no_trace(processor, batches):
    model = tiny_clip(processor)
    _silence_head(model, "vision", 1, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = AblationImportance()(model, batches)
    heads = scores["heads"]
    assert set(heads) == {"vision", "text"} and len(heads["vision"][1]) == 4
    assert heads["vision"][1][3] == pytest.approx(0.0, abs=1e-6)  # gating a silent head changes no output
    assert all(s > 1e-6 for i, s in enumerate(heads["vision"][1]) if i != 3)
    assert all(s > 1e-6 for layer in heads["text"].values() for s in layer)
    # neurons: Taylor's scores on the same batches
    assert scores["neurons"] == TaylorImportance()(model, batches)["neurons"]
    adapter = get_adapter(model)
    for tower in ("vision", "text"):
        for layer in adapter.layers(tower):
            assert not adapter.attention(layer).out._forward_pre_hooks
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(VlmcompressError, match="calibration"):
        AblationImportance()(model, None)


def test_fisher_scores_a_silent_head_zero_and_leaves_no_trace(processor, batches):
    model = tiny_clip(processor)
    _silence_head(model, "vision", 0, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = FisherImportance()(model, batches)
    assert scores["heads"]["vision"][0][2] == 0.0
    assert all(s > 0 for layer in scores["heads"]["text"].values() for s in layer)
    assert all(len(v) == 4 for layers in scores["heads"].values() for v in layers.values())
    assert all(s >= 0 for layer in scores["neurons"]["vision"].values() for s in layer)
    adapter = get_adapter(model)
    for _, _, layer in adapter.layer_units():
        assert not adapter.attention(layer).out._forward_pre_hooks and not adapter.mlp(layer).down._forward_pre_hooks
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(VlmcompressError, match="calibration"):
        FisherImportance()(model, None)


def test_per_sample_gates_split_the_batch_gradient_and_fisher_squares_them(processor, batches):
    """Each sample's gate gradient sums to the shared gate's gradient (what Taylor reads), and the Fisher score is the
    mean over samples of their squares: a per-sample second moment, not the batch gradient squared."""
    model = tiny_clip(processor)
    adapter = get_adapter(model)
    for p in model.parameters():
        p.requires_grad_(False)
    batch = batches[0]
    shared = GateHooks(model)
    key = ("text", 1)
    (grad_shared,) = torch.autograd.grad(adapter.training_loss(**batch), [shared.head_gates[key]])
    shared.remove()
    size = len(batch["input_ids"])
    per = SampleGateHooks(model, size)
    (grad_per,) = torch.autograd.grad(adapter.training_loss(**batch), [per.per_sample(per.head_gates[key])])
    per.remove()
    assert grad_per.shape == (size, 4)
    assert torch.allclose(grad_per.sum(0), grad_shared, atol=1e-6)
    for p in model.parameters():
        p.requires_grad_(True)
    fisher = FisherImportance()(model, [batch])["heads"]["text"][1]
    assert fisher == pytest.approx((grad_per.pow(2).sum(0) / size).tolist(), rel=1e-5)
    assert fisher != pytest.approx((grad_shared.pow(2) / size).tolist(), rel=1e-3)


def test_fisher_prunes_through_the_config_with_its_own_sample_count(processor):
    from vlmcompress.pruning.config import IMPORTANCE_NAMES, PruningConfig, prune_model

    assert "fisher" in IMPORTANCE_NAMES
    model = tiny_clip(processor)
    steps = prune_model(model, PruningConfig(head_ratio=0.25, head_scope="per_layer", mlp_ratio=0.25,
                                             importance="fisher", calibration_batch_size=64), processor)
    assert [s["importance"] for s in steps] == ["fisher", "fisher"]
    assert all(get_adapter(model).attention(layer).num_heads == 3 for _, _, layer in get_adapter(model).layer_units())


def test_ablation_is_the_default_and_uses_its_own_sample_count(processor):
    from vlmcompress.pruning.config import PruningConfig, prune_model

    config = PruningConfig(head_ratio=0.25, head_scope="per_layer", calibration_batch_size=64)
    assert config.importance == "ablation" and config.calibration_samples is None
    model = tiny_clip(processor)
    steps = prune_model(model, config, processor)
    assert [s["importance"] for s in steps] == ["ablation"]
    assert steps[0]["calibration_samples"] == AblationImportance.default_samples == 512
    assert all(get_adapter(model).attention(layer).num_heads == 3 for _, _, layer in get_adapter(model).layer_units())


def test_ablation_default_samples_shrink_where_heads_are_many_and_say_so(processor, monkeypatch, caplog):
    from vlmcompress.pruning.config import PruningConfig, prune_model
    from vlmcompress.pruning.importance import default_samples

    model = tiny_clip(processor)
    heads = sum(a.num_heads for _, _, a in get_adapter(model).head_units())
    assert default_samples("ablation", model, 64) == 512  # a small model keeps the full count
    # as if the model had 8x the heads the budget allows at 512 samples: heads x samples stays within the budget
    monkeypatch.setattr(AblationImportance, "head_sample_budget", heads * 64)
    assert default_samples("ablation", model, 64) == 64 and default_samples("ablation", model, 32) == 64
    assert default_samples("ablation", model, 64, score_heads=False) == 512  # neurons only: no pass per head
    assert default_samples("fisher", model, 64) == FisherImportance.default_samples
    monkeypatch.setattr(AblationImportance, "head_sample_budget", 1)
    assert default_samples("ablation", model, 64) == 64  # at least one batch
    monkeypatch.setattr(AblationImportance, "head_sample_budget", heads * 64)
    with caplog.at_level("WARNING"):
        steps = prune_model(model, PruningConfig(head_ratio=0.25, head_scope="per_layer", calibration_batch_size=64),
                            processor)
    assert steps[0]["calibration_samples"] == 64
    assert f"{heads} heads, so their scores use 64 calibration samples, not 512" in caplog.text
    assert "--calibration-samples 512" in caplog.text
    caplog.clear()
    steps = prune_model(tiny_clip(processor), PruningConfig(head_ratio=0.25, head_scope="per_layer",
                                                            calibration_samples=128, calibration_batch_size=64),
                        processor)
    assert steps[0]["calibration_samples"] == 128 and "calibration samples" not in caplog.text  # asked: not capped


def test_taylor_needs_data(processor):
    with pytest.raises(VlmcompressError, match="calibration"):
        TaylorImportance()(tiny_clip(processor), None)


def test_selection_never_empties_a_layer_and_respects_ratio(processor):
    model = tiny_clip(processor, layers=3)
    scores = RandomImportance(seed=1)(model)
    # three heads of vision layer 0 look useless next to the fourth (scores are normalized per layer)
    scores["heads"]["vision"][0] = [1e-9, 2e-9, 3e-9, 1.0]
    plan = select_heads(scores, 0.5, scope="global")
    for tower in ("vision", "text"):
        assert sum(len(h) for h in plan[tower].values()) == 6
        assert all(len(h) < 4 for h in plan[tower].values())
    assert plan["vision"][0] == [0, 1, 2]
    scores["heads"]["vision"][0] = [1e-9, 2e-9, 3e-9, 4e-9]
    assert len(select_heads(scores, 0.9, scope="global")["vision"][0]) == 3  # never all four
    per_layer = select_heads(scores, 0.5, scope="per_layer")
    assert all(len(h) == 2 for t in per_layer.values() for h in t.values())
    neurons = select_neurons(scores, 0.25)
    assert all(len(n) == 32 for t in neurons.values() for n in t.values())
    with pytest.raises(VlmcompressError, match="fraction"):
        select_heads(scores, 1.0)


def test_scores_round_trip(processor, tmp_path):
    scores = RandomImportance(seed=2)(tiny_clip(processor))
    save_scores(scores, tmp_path / "scores.json")
    assert load_scores(tmp_path / "scores.json") == scores


def test_layer_strategies(processor, batches):
    model = tiny_clip(processor, layers=4)
    assert select_layers(model, "every_k", keep_every=2) == {"vision": [1, 3], "text": [1, 3]}
    _make_identity(model, "vision", 2)
    _make_identity(model, "text", 1)
    plan = select_layers(model, "block_influence", num_remove={"vision": 1, "text": 1}, batches=batches)
    assert plan == {"vision": [2], "text": [1]}
    with pytest.raises(VlmcompressError, match="keep at least one"):
        select_layers(model, "block_influence", num_remove={"vision": 4}, batches=batches)


def _count_calls(modules):
    calls = {id(m): 0 for m in modules}
    handles = [m.register_forward_pre_hook(lambda mod, args, key=id(m): calls.__setitem__(key, calls[key] + 1))
               for m in modules]
    return calls, handles


@pytest.mark.parametrize("family", ["clip", "blip_retrieval", "blip_captioner"])
def test_ablation_replays_what_a_head_cannot_change_and_scores_the_same(family, processor, blip_processor, batches):
    """Ablation's passes replay the layers before the gated head and every tower that does not read its tower: the
    scores equal whole-model passes' to float rounding, and the skipped modules really are skipped."""
    from conftest import tiny_blip

    if family == "clip":
        model, data = tiny_clip(processor), batches
    else:
        model = tiny_blip("BlipForConditionalGeneration" if family == "blip_captioner" else "BlipForImageTextRetrieval")
        data = calibration_batches(blip_processor, num_samples=8, batch_size=4)
    adapter = get_adapter(model)
    replayed = AblationImportance(replay=True)._head_scores(model, data)
    whole = AblationImportance(replay=False)._head_scores(model, data)
    assert replayed.keys() == whole.keys()
    for site in whole:
        for i in whole[site]:
            assert replayed[site][i] == pytest.approx(whole[site][i], rel=1e-4, abs=1e-7), (site, i)
    # (counted on a Linear inside: a replayed module is still called, its forward is what is skipped) the first
    # vision layer runs in the reference pass and for its own heads' passes only; a two-tower model's text tower runs
    # only for text heads, a text tower that reads the image (BLIP's, with cross-attention) for every head
    first = adapter.attention(adapter.layers("vision")[0]).out
    text_name = "text_decoder" if family == "blip_captioner" else "text"
    text = adapter.attention(adapter.layers(text_name)[-1]).out
    calls, handles = _count_calls([first, text])
    try:
        AblationImportance()._head_scores(model, data)
    finally:
        for h in handles:
            h.remove()
    heads = {site: sum(len(v) for v in layers.values()) for site, layers in whole.items()}
    first_heads = len(whole["vision"][0])
    assert calls[id(first)] == len(data) * (1 + first_heads)
    text_heads = sum(n for site, n in heads.items() if site.startswith(text_name))
    # BLIP's text towers have cross-attention to the image: they read it (replayed only when nothing reads the gate)
    expected_text = sum(heads.values()) if family.startswith("blip") else text_heads
    assert calls[id(text)] == len(data) * (1 + expected_text)
    assert not any("forward" in vars(m) for m in model.modules()), "no replayed forward is left on a module"
