"""DistillationTrainer inside a real transformers.Trainer on tiny CLIPs."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import CLIPModel, TrainingArguments

from conftest import tiny_blip, tiny_clip
from vlmcompress.embedded import digits
from vlmcompress.data.collate import ImageTextCollator
from vlmcompress.distillation import DistillationConfig, DistillationTrainer
from vlmcompress.distillation.cache import cache_teacher_outputs
from vlmcompress.errors import VlmcompressError


@pytest.fixture(scope="module")
def train_rows():
    return digits.load_digits_dataset("train", images_per_number=2)  # 180 rows


def _args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "run"), per_device_train_batch_size=16, max_steps=12, learning_rate=5e-3,
                report_to=[], save_strategy="no", remove_unused_columns=False, use_cpu=True, disable_tqdm=True,
                logging_steps=3, seed=0, dataloader_drop_last=True)
    base.update(kw)
    return TrainingArguments(**base)


def _narrow_student(processor):
    return tiny_clip(processor, layers=1, hidden=16, heads=2, seed=1)  # projection 16 like the teacher


def test_all_losses_train_the_student_only_and_save_it_alone(processor, train_rows, tmp_path):
    teacher = tiny_clip(processor)
    student = _narrow_student(processor)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    cfg = DistillationConfig(logit_weight=1.0, embedding_weight=1.0, hidden_weight=1.0, contrastive_weight=0.5,
                             temperature=2.0)
    trainer = DistillationTrainer(model=student, args=_args(tmp_path), train_dataset=train_rows,
                                  data_collator=ImageTextCollator(processor), teacher=teacher,
                                  distillation_config=cfg)
    # widths differ (16 vs 32): hidden states go through learned projections, one per tower
    assert set(trainer.distill_projections.keys()) == {"hidden_vision", "hidden_text"}
    proj_before = {k: v.clone() for k, v in trainer.distill_projections.state_dict().items()}
    trainer.train()

    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 4
    for entry in logged:
        assert {"loss_logit", "loss_embedding", "loss_hidden", "loss_contrastive"} <= set(entry)
        total = entry["loss_logit"] + entry["loss_embedding"] + entry["loss_hidden"] + 0.5 * entry["loss_contrastive"]
        assert entry["loss"] == pytest.approx(total, rel=0.02)
    assert logged[-1]["loss"] < logged[0]["loss"]
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_before.items())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert any(not torch.equal(v, student.state_dict()[k]) for k, v in student_before.items())
    assert any(not torch.equal(v, trainer.distill_projections.state_dict()[k]) for k, v in proj_before.items())

    trainer.save_model(str(tmp_path / "student"))
    saved = load_file(str(tmp_path / "student" / "model.safetensors"))
    assert set(saved) == set(student.state_dict())  # no teacher, no projections
    reloaded = CLIPModel.from_pretrained(tmp_path / "student").eval()
    student.eval()
    batch = ImageTextCollator(processor)([train_rows[i] for i in range(4)])
    batch.pop("labels")
    with torch.no_grad():
        a, b = student(**batch).logits_per_image, reloaded(**batch).logits_per_image
    assert torch.allclose(a, b, atol=1e-6)


def test_layer_map_validation_and_default_from_inherited_layers(processor, train_rows, tmp_path):
    from vlmcompress.pruning.structural import prune_layers

    teacher = tiny_clip(processor, layers=4)
    student = tiny_clip(processor, layers=4)
    prune_layers(student, {"vision": [1, 3], "text": [0, 1]})
    trainer = DistillationTrainer(model=student, args=_args(tmp_path), train_dataset=train_rows,
                                  data_collator=ImageTextCollator(processor), teacher=teacher,
                                  distillation_config=DistillationConfig(hidden_weight=1.0))
    # each kept layer learns from the teacher layer it was copied from (1-based layer outputs)
    assert trainer.layer_maps == {"vision": {1: 1, 3: 2}, "text": {3: 1, 4: 2}}
    assert len(trainer.distill_projections) == 0
    with pytest.raises(VlmcompressError, match="do not exist"):
        DistillationTrainer(model=student, args=_args(tmp_path), train_dataset=train_rows,
                            data_collator=ImageTextCollator(processor), teacher=teacher,
                            distillation_config=DistillationConfig(hidden_weight=1.0, layer_map='{"vision": {"9": 1}}'))
    with pytest.raises(VlmcompressError, match="every loss weight is 0"):
        DistillationConfig(logit_weight=0, embedding_weight=0, contrastive_weight=0).validate()


def _final_weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_resume_from_checkpoint_equals_an_unbroken_run(processor, train_rows, tmp_path):
    cfg = DistillationConfig(hidden_weight=1.0)  # narrow student: the projections must resume too

    def run(out, resume=None):
        torch.manual_seed(0)
        trainer = DistillationTrainer(model=_narrow_student(processor),
                                      args=_args(tmp_path, output_dir=str(out), save_strategy="steps", save_steps=4,
                                                 max_steps=8),
                                      train_dataset=train_rows, data_collator=ImageTextCollator(processor),
                                      teacher=tiny_clip(processor), distillation_config=cfg)
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    unbroken = run(tmp_path / "a")
    assert (tmp_path / "a" / "checkpoint-4" / "distill_projections.pt").is_file()
    resumed = run(tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint-4"))
    a, b = _final_weights(unbroken), _final_weights(resumed)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    pa, pb = unbroken.distill_projections.state_dict(), resumed.distill_projections.state_dict()
    assert max((pa[k] - pb[k]).abs().max().item() for k in pa) < 1e-5


def test_temperature_anneals_linearly_from_the_first_step_to_the_last(processor, train_rows, tmp_path, monkeypatch):
    from vlmcompress.distillation import trainer as trainer_module

    cfg = DistillationConfig(embedding_weight=0.0, temperature=3.0, temperature_end=1.0)
    assert [cfg.temperature_at(s, 5) for s in range(5)] == pytest.approx([3.0, 2.5, 2.0, 1.5, 1.0])
    assert cfg.temperature_at(9, 5) == 1.0 and cfg.temperature_at(3, None) == 3.0  # no known length: fixed
    assert DistillationConfig().temperature_at(4, 5) == 1.0  # the default anneals 3 -> 1
    assert DistillationConfig(temperature_end=None).temperature_at(4, 5) == 3.0  # no end: fixed
    with pytest.raises(VlmcompressError, match="temperature_end 0"):
        DistillationConfig(temperature_end=0.0)

    used = []  # the temperature each optimizer step's similarity KL ran at (the real loss still runs)
    real = trainer_module.similarity_kl_loss
    monkeypatch.setattr(trainer_module, "similarity_kl_loss", lambda s, t, temperature: used.append(temperature) or real(s, t, temperature))
    trainer = DistillationTrainer(model=_narrow_student(processor), args=_args(tmp_path, max_steps=5),
                                  train_dataset=train_rows, data_collator=ImageTextCollator(processor),
                                  teacher=tiny_clip(processor), distillation_config=cfg)
    trainer.train()
    assert used == pytest.approx([3.0, 2.5, 2.0, 1.5, 1.0])


def test_cached_teacher_outputs_give_the_same_loss(processor, train_rows, tmp_path):
    teacher = tiny_clip(processor)
    rows = train_rows.select(range(32))
    cached = cache_teacher_outputs(teacher, processor, rows, cache_dir=tmp_path / "cache")
    assert {"teacher_image_embeds", "teacher_text_embeds"} <= set(cached.column_names)
    files = list((tmp_path / "cache").glob("*.arrow"))
    assert len(files) == 1
    again = cache_teacher_outputs(teacher, processor, rows, cache_dir=tmp_path / "cache")
    assert again.cache_files[0]["filename"] == str(files[0])  # read back, not recomputed
    other = tiny_clip(processor, seed=5)  # another teacher never reads this cache
    cache_teacher_outputs(other, processor, rows, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.arrow"))) == 2

    student = _narrow_student(processor)
    cfg = DistillationConfig(embedding_weight=1.0, logit_weight=1.0)
    trainer = DistillationTrainer(model=student, args=_args(tmp_path), train_dataset=cached,
                                  data_collator=ImageTextCollator(processor), teacher=teacher, distillation_config=cfg)
    collate = ImageTextCollator(processor)
    with_cache = collate([cached[i] for i in range(16)])
    without = {k: v for k, v in with_cache.items() if not k.startswith("teacher_")}
    assert "teacher_image_embeds" in with_cache
    with torch.no_grad():
        t1, _ = trainer.distillation_terms(student, with_cache)
        t2, _ = trainer.distillation_terms(student, without)
    for name in t1:
        assert t1[name].item() == pytest.approx(t2[name].item(), rel=1e-4, abs=1e-6)
    trainer.distillation_config.hidden_weight = 1.0
    with pytest.raises(VlmcompressError, match="hidden-state loss"):
        trainer.distillation_terms(student, with_cache)


def test_with_pruning_callback_and_peft_student(processor, train_rows, tmp_path):
    from peft import LoraConfig, get_peft_model

    from vlmcompress.loading import load_checkpoint
    from vlmcompress.pruning.callback import PruningCallback

    teacher = tiny_clip(processor)
    pruning = PruningCallback(head_ratio=0.5, start_step=2, end_step=8, update_every=2)
    trainer = DistillationTrainer(model=tiny_clip(processor, seed=3), args=_args(tmp_path), train_dataset=train_rows,
                                  data_collator=ImageTextCollator(processor), teacher=teacher, callbacks=[pruning],
                                  processing_class=processor)
    trainer.train()
    trainer.save_model(str(tmp_path / "pruned"))
    model, _, _ = load_checkpoint(str(tmp_path / "pruned"))
    assert sum(model.config.vision_config.layer_num_heads) == 4  # half of 2 layers x 4 heads

    lora = get_peft_model(tiny_clip(processor, seed=4), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    trainer = DistillationTrainer(model=lora, args=_args(tmp_path, max_steps=4), train_dataset=train_rows,
                                  data_collator=ImageTextCollator(processor), teacher=teacher)
    before = {n: p.clone() for n, p in lora.named_parameters() if p.requires_grad}
    trainer.train()
    after = dict(lora.named_parameters())
    assert before and all("lora_" in n for n in before)
    assert any(not torch.equal(v, after[n]) for n, v in before.items())
    trainer.save_model(str(tmp_path / "lora"))
    assert (tmp_path / "lora" / "adapter_model.safetensors").is_file()


def test_teacher_in_bfloat16(processor, train_rows, tmp_path):
    teacher = tiny_clip(processor)
    trainer = DistillationTrainer(model=_narrow_student(processor), args=_args(tmp_path), train_dataset=train_rows,
                                  data_collator=ImageTextCollator(processor), teacher=teacher,
                                  distillation_config=DistillationConfig(teacher_dtype="bfloat16", hidden_weight=1.0,
                                                                         embedding_weight=1.0))
    assert next(trainer.teacher.parameters()).dtype == torch.bfloat16
    batch = ImageTextCollator(processor)([train_rows[i] for i in range(8)])
    terms, _ = trainer.distillation_terms(trainer.model, batch)
    assert set(terms) == {"logit", "embedding", "hidden", "contrastive"}
    assert all(torch.isfinite(v) for v in terms.values())
    with pytest.raises(VlmcompressError, match="teacher_dtype"):
        DistillationConfig(teacher_dtype="int8").validate()


def _inherited_blip_trainer(cls_name, dropped_layers, cfg, blip_processor, train_rows, args):
    """A DistillationTrainer whose student is a tiny BLIP teacher with ``dropped_layers`` removed (peaked text init,
    so the token and ITM distributions are far from uniform)."""
    import copy

    from vlmcompress.pruning import prune_layers

    teacher = tiny_blip(cls_name, text_init=0.3)
    student = copy.deepcopy(teacher)
    prune_layers(student, dropped_layers)
    return DistillationTrainer(model=student, args=args, train_dataset=train_rows,
                               data_collator=ImageTextCollator(blip_processor), teacher=teacher,
                               distillation_config=cfg)


def test_captioner_distills_token_kl_hidden_states_and_its_own_loss(blip_processor, train_rows, tmp_path):
    cfg = DistillationConfig(logit_weight=0, embedding_weight=0, contrastive_weight=0, token_weight=1.0,
                             token_temperature=2.0, hidden_weight=1.0, caption_weight=0.5)
    trainer = _inherited_blip_trainer("BlipForConditionalGeneration", {"vision": [1], "text_decoder": [1]}, cfg,
                                      blip_processor, train_rows, _args(tmp_path, max_steps=6, logging_steps=2))
    student = trainer.model
    # the inherited layers learn from the teacher layers they came from; the decoder is a tower of its own
    assert trainer.layer_maps == {"vision": {1: 1}, "text_decoder": {1: 1}}
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 3
    for entry in logged:
        assert entry["loss_token"] > 0 and entry["loss_hidden"] > 0 and entry["loss_caption"] > 0
        total = entry["loss_token"] + entry["loss_hidden"] + 0.5 * entry["loss_caption"]
        assert entry["loss"] == pytest.approx(total, rel=0.02)
    trainer.save_model(str(tmp_path / "student"))
    saved = load_file(str(tmp_path / "student" / "model.safetensors"))
    assert set(saved) <= set(student.state_dict()) and len(saved) > 0


def test_terms_that_do_not_fit_the_task_or_family_are_one_error(processor, blip_processor, train_rows, tmp_path):
    captioner = tiny_blip("BlipForConditionalGeneration")
    with pytest.raises(VlmcompressError, match="logit_weight, contrastive_weight do not apply to a captioner"):
        DistillationTrainer(model=captioner, args=_args(tmp_path), train_dataset=train_rows, teacher=captioner,
                            distillation_config=DistillationConfig())
    with pytest.raises(VlmcompressError, match="token_weight do not apply to a two-tower"):
        DistillationTrainer(model=tiny_clip(processor), args=_args(tmp_path), train_dataset=train_rows,
                            teacher=tiny_clip(processor), distillation_config=DistillationConfig(token_weight=1.0))
    with pytest.raises(VlmcompressError, match="same model family and task"):
        DistillationTrainer(model=tiny_clip(processor), args=_args(tmp_path), train_dataset=train_rows,
                            teacher=tiny_blip("BlipForImageTextRetrieval"), distillation_config=DistillationConfig())


def test_blip_retrieval_distills_itc_itm_and_hidden_states(blip_processor, train_rows, tmp_path):
    cfg = DistillationConfig(logit_weight=1.0, embedding_weight=1.0, hidden_weight=1.0, itm_weight=1.0,
                             contrastive_weight=0.0)
    trainer = _inherited_blip_trainer("BlipForImageTextRetrieval", {"vision": [0], "text": [0]}, cfg,
                                      blip_processor, train_rows, _args(tmp_path, max_steps=4, logging_steps=2))
    assert trainer.layer_maps == {"vision": {2: 1}, "text": {2: 1}}
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    for entry in logged:
        assert all(entry[f"loss_{t}"] > 0 for t in ("logit", "embedding", "hidden", "itm"))
        total = sum(entry[f"loss_{t}"] for t in ("logit", "embedding", "hidden", "itm"))
        assert entry["loss"] == pytest.approx(total, rel=0.02)
    with pytest.raises(VlmcompressError, match="needs an image-text matching head"):
        DistillationTrainer(model=tiny_blip("BlipModel"), args=_args(tmp_path), train_dataset=train_rows,
                            teacher=tiny_blip("BlipModel"), distillation_config=DistillationConfig(itm_weight=1.0))


def test_blip_retrieval_student_trains_with_its_own_contrastive_term(blip_processor, train_rows, tmp_path):
    """BlipAdapter had no pair_loss: contrastive_weight > 0 failed at the first step."""
    cfg = DistillationConfig(logit_weight=1.0, embedding_weight=0.0, contrastive_weight=0.5)
    trainer = _inherited_blip_trainer("BlipForImageTextRetrieval", {"vision": [0]}, cfg, blip_processor, train_rows,
                                      _args(tmp_path, max_steps=2, logging_steps=1))
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert logged and all(e["loss_contrastive"] > 0 for e in logged)
    for entry in logged:
        assert entry["loss"] == pytest.approx(entry["loss_logit"] + 0.5 * entry["loss_contrastive"], rel=0.02)
    with pytest.raises(VlmcompressError, match="no image-text embedding loss"):
        from vlmcompress.adapters import get_adapter

        get_adapter(tiny_blip("BlipForConditionalGeneration")).pair_loss(None, None)


def test_unpaired_texts_pull_the_students_text_embeddings_of_classes_without_images(processor, train_rows, tmp_path):
    """The text term: the teacher embeds the unpaired texts once; the student's text embeddings of them move towards
    the teacher's, held-out numbers (no training image, no training caption) included."""
    from vlmcompress.distillation.losses import embedding_loss
    from vlmcompress.workflows.distill import read_unpaired_texts, unpaired_texts

    texts = read_unpaired_texts("embedded")
    assert len(texts) == 100 * len(digits.ZERO_SHOT_TEMPLATES)
    heldout = [t for t in texts if digits.number_in_caption(t) in digits.HELDOUT_NUMBERS]
    assert heldout and not set(heldout) & set(train_rows["text"])
    teacher, student = tiny_clip(processor, seed=0), tiny_clip(processor, seed=1)
    enc = processor.tokenizer(heldout, padding=True, return_tensors="pt")

    def distance():
        with torch.no_grad():
            return embedding_loss(student.get_text_features(**enc).pooler_output,
                                  teacher.get_text_features(**enc).pooler_output).item()

    before = distance()
    cfg = DistillationConfig(logit_weight=0.0, embedding_weight=0.0, text_weight=1.0, text_batch_size=32)
    trainer = DistillationTrainer(model=student, args=_args(tmp_path, max_steps=30), train_dataset=train_rows,
                                  data_collator=ImageTextCollator(processor), teacher=teacher, distillation_config=cfg,
                                  unpaired_texts=unpaired_texts(texts, processor, {"padding": True}))
    assert trainer.unpaired_texts["teacher_embeds"].shape[0] == len(texts)
    trainer.train()
    assert all("loss_text" in e for e in trainer.state.log_history if "loss" in e)
    assert distance() < 0.5 * before
    with pytest.raises(VlmcompressError, match="needs unpaired texts"):
        DistillationTrainer(model=tiny_clip(processor), args=_args(tmp_path), train_dataset=train_rows,
                            data_collator=ImageTextCollator(processor), teacher=teacher, distillation_config=cfg)
    for source, message in ((None, "needs --text_dataset"), (str(tmp_path / "nope.txt"), "does not exist")):
        with pytest.raises(VlmcompressError, match=message):
            read_unpaired_texts(source)
    (tmp_path / "labels.txt").write_text("a photo of a cat\n\n  a photo of a dog  \n")
    assert read_unpaired_texts(str(tmp_path / "labels.txt")) == ["a photo of a cat", "a photo of a dog"]


def test_the_text_term_is_on_by_default_where_unpaired_texts_are_given(processor, train_rows, tmp_path):
    """Giving a label set (--text_dataset, a recipe's data.texts) turns the text term on at weight 1 unless a weight is
    set; without texts it stays off; a weight set by the user, 0 included, is kept."""
    from vlmcompress.workflows.distill import parse_arguments, unpaired_texts

    assert DistillationConfig().text_weight is None
    assert parse_arguments([])[2].text_weight == 0.0
    assert parse_arguments(["--text_dataset", "embedded"])[2].text_weight == 1.0
    assert parse_arguments(["--text_dataset", "embedded", "--text_weight", "0"])[2].text_weight == 0.0
    assert parse_arguments(["--text_dataset", "embedded", "--text_weight", "3"])[2].text_weight == 3.0
    teacher = tiny_clip(processor, seed=0)
    texts = unpaired_texts(["a photo of the number 7", "a photo of the number 88"], processor, {"padding": True})
    for given, weight in ((texts, 1.0), (None, 0.0)):
        cfg = DistillationConfig()
        trainer = DistillationTrainer(model=tiny_clip(processor, seed=1), args=_args(tmp_path), train_dataset=train_rows,
                                      data_collator=ImageTextCollator(processor), teacher=teacher,
                                      distillation_config=cfg, unpaired_texts=given)
        assert cfg.text_weight == weight and (trainer.unpaired_texts is not None) == bool(weight)
        assert ("text" in cfg.active_losses()) == bool(weight)


def test_interactive_contrastive_term_is_the_students_own_loss_when_it_equals_the_teacher(processor, train_rows,
                                                                                          tmp_path):
    """CLIP-KD's ICL contrasts the student's embeddings with the teacher's: for a student that is a copy of the teacher
    it equals the student's own contrastive loss; it trains a different student and is logged as loss_icl."""
    import copy

    teacher = tiny_clip(processor, seed=0)
    cfg = DistillationConfig(logit_weight=0.0, embedding_weight=0.0, icl_weight=1.0, contrastive_weight=1.0)
    trainer = DistillationTrainer(model=copy.deepcopy(teacher), args=_args(tmp_path), train_dataset=train_rows,
                                  data_collator=ImageTextCollator(processor), teacher=teacher, distillation_config=cfg)
    batch = ImageTextCollator(processor)([train_rows[i] for i in range(0, 180, 12)])
    with torch.no_grad():
        terms, _ = trainer.distillation_terms(trainer.model, batch)
    assert terms["icl"].item() == pytest.approx(terms["contrastive"].item(), rel=1e-5)
    student = tiny_clip(processor, seed=1)
    trainer = DistillationTrainer(model=student, args=_args(tmp_path, max_steps=6, logging_steps=3),
                                  train_dataset=train_rows, data_collator=ImageTextCollator(processor),
                                  teacher=teacher, distillation_config=DistillationConfig(
                                      logit_weight=0.0, embedding_weight=0.0, icl_weight=1.0))
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert all("loss_icl" in e for e in logged) and logged[-1]["loss_icl"] < logged[0]["loss_icl"]
