"""Model cards rendered from compression_report.json: metadata, numbers, plots, snippets, odd and old reports."""

import json

import pytest
from huggingface_hub import ModelCard

from vlmcompress.cards import GENERATED_MARKER, write_card
from vlmcompress.report import empty_metrics, new_report, write_report
from vlmcompress.embedded.clip_teacher import TEACHER_PATH

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def metrics(**values):
    m = empty_metrics()
    m.update(values)
    return m


BEFORE = metrics(params=1727233, size_bytes=6925100, memory_bytes=6909460, latency_ms=35.271, latency_batch_size=32,
                 zero_shot_accuracy=0.943312, zero_shot_accuracy_heldout=0.8151, recall_at_1_i2t=0.923,
                 recall_at_1_t2i=1.0, recall_at_5_i2t=0.925, recall_at_5_t2i=1.0, latency_threads=2,
                 latency_dtype="float32", latency_device="cpu", latency_repeats=7, eval_dataset="vlmcompress/digits-test",
                 eval_images=2000, zero_shot_classes=100, retrieval_pairs=1000)
AFTER = dict(BEFORE, params=1413601, size_bytes=5668524, memory_bytes=5651000, latency_ms=30.125,
             zero_shot_accuracy=0.810637, zero_shot_accuracy_heldout=0.455, recall_at_1_i2t=0.771, recall_at_5_t2i=0.97)
PRUNE_STEPS = [
    {"method": "layer_pruning", "removed_layers": {"text": [3]}, "strategy": "explicit"},
    {"method": "head_pruning", "removed_heads": {"vision": {"0": [0], "1": [0, 3]}, "text": {"0": [1]}},
     "importance": "taylor", "ratio": 0.25, "scope": "global"},
    {"method": "mlp_pruning", "removed_neurons": {"vision": {"0": list(range(64)), "2": list(range(32))}},
     "importance": "magnitude", "ratio": 0.1, "scope": "per_layer"},
]


def checkpoint(folder, *, steps=PRUNE_STEPS, before=BEFORE, after=AFTER, loading=None, config=None,
               base_model=str(TEACHER_PATH), **extra):
    """A folder with a config and a report (no weights: a card needs none)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config or {
        "model_type": "clip", "architectures": ["VlmcompressCLIPModel"], "vision_config": {}, "text_config": {},
        "auto_map": {"AutoModel": "modeling_vlmcompress.VlmcompressCLIPModel"}}))
    report = new_report(base_model=base_model, model_family="clip", steps=steps, before=before, after=after)
    report["loading"] = loading or {"kind": "remote_code", "class": "VlmcompressCLIPModel"}
    report.update(extra)
    write_report(report, folder)
    return report


def render(folder, **kw):
    path = write_card(folder, **kw)
    card = ModelCard.load(path)
    return card, card.data.to_dict(), card.text


def test_pruned_card_metadata_numbers_plot_and_snippet(tmp_path):
    report = checkpoint(tmp_path / "heads")
    card, meta, body = render(tmp_path / "heads")
    assert "base_model" not in meta  # the embedded teacher is no Hub repo (and a local path never is)
    assert "base_model_relation" not in meta  # pruning alone has no Hub relation of its own
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "zero-shot-image-classification"
    for tag in ("vlmcompress", "clip", "layer-pruning", "head-pruning", "mlp-pruning", "custom_code"):
        assert tag in meta["tags"]
    assert meta["license"] == "apache-2.0" and "datasets" not in meta  # the embedded benchmark is no Hub data set
    # model-index: every measured task metric of the result, value from the report
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results["zero-shot accuracy (classes seen in training)"] == round(AFTER["zero_shot_accuracy"], 4)
    assert results["zero-shot accuracy (held-out classes)"] == round(AFTER["zero_shot_accuracy_heldout"], 4)
    assert results["recall@5 text->image"] == round(AFTER["recall_at_5_t2i"], 4) and len(results) == 6
    assert str(TEACHER_PATH) not in (tmp_path / "heads" / "README.md").read_text()
    # before/after table: the report's numbers, formatted
    assert GENERATED_MARKER in body
    row = next(line for line in body.splitlines() if line.startswith("| zero-shot acc (seen/all)"))
    assert row == "| zero-shot acc (seen/all) | 94.33% | 81.06% | -13.27 pts |"
    assert "| parameters | 1,727,233 | 1,413,601 | -18.2% |" in body
    assert "median of 7 timed image+text forwards, batch 32, 2 threads, float32, on cpu" in body
    # two latencies from two runs give no ratio; the ratio measured side by side in one run is shown with its range
    assert "| latency (median batch) | 35.27 ms | 30.12 ms |  |" in body and "from separate runs" in body
    side = {"ratio": 0.62, "ratio_min": 0.6, "ratio_max": 0.65, "rounds": 5, "batch_size": 32, "threads": 2}
    checkpoint(tmp_path / "side", after=dict(AFTER, latency_vs_base=side))
    _, _, side_body = render(tmp_path / "side")
    assert "| latency (median batch) | 35.27 ms | 30.12 ms | x0.62 (x0.60-x0.65) |" in side_body
    assert "timed in turn in 5 interleaved rounds in one process (batch 32, 2 threads)" in side_body
    # one round has no spread to judge the ratio by: the card does not show it
    checkpoint(tmp_path / "one", after=dict(AFTER, latency_vs_base=dict(side, rounds=1, ratio_min=0.62, ratio_max=0.62)))
    _, _, one_body = render(tmp_path / "one")
    row = next(line for line in one_body.splitlines() if line.startswith("| latency (median batch)"))
    assert "x0.62" not in row and "not shown (1 timing round(s); 3 or more show it)" in row
    # what was done, with its numbers
    assert "text tower: 1 layer removed (3, numbered as in the base model)" in body
    assert "vision tower: 3 heads removed in 2 layers — layer 0: 1 head (0); layer 1: 2 heads (0, 3)" in body
    assert "vision tower: 96 neurons removed in 2 layers — layer 0: 64; layer 2: 32" in body
    # plot embedded and written
    assert "![Zero-shot accuracy against weights on disk (MiB)](accuracy_vs_size.png)" in body
    assert (tmp_path / "heads" / "accuracy_vs_size.png").read_bytes().startswith(PNG_MAGIC)
    # loading: remote code; citations of the family and the methods used
    assert 'AutoModel.from_pretrained(MODEL_ID, trust_remote_code=True)' in body
    assert "@inproceedings{radford2021clip" in body and "@inproceedings{michel2019sixteen" in body
    assert report["environment"]["torch"] in body


def test_card_follows_the_report_and_is_reproducible(tmp_path):
    """Numbers are read, not typed: other report values give other card values; same report, same bytes."""
    checkpoint(tmp_path / "a", after=dict(AFTER, zero_shot_accuracy=0.123456, params=4321))
    _, _, body = render(tmp_path / "a")
    assert "| zero-shot acc (seen/all) | 94.33% | 12.35% | -81.99 pts |" in body and "| 4,321 |" in body
    first = [(tmp_path / "a" / n).read_bytes() for n in ("README.md", "accuracy_vs_size.png")]
    write_card(tmp_path / "a")
    assert [(tmp_path / "a" / n).read_bytes() for n in ("README.md", "accuracy_vs_size.png")] == first


def test_unmeasured_metrics_say_so(tmp_path):
    checkpoint(tmp_path / "m", after=dict(AFTER, latency_ms=None, recall_at_1_i2t=None))
    card, _, body = render(tmp_path / "m")
    assert "| latency (median batch) | 35.27 ms | not measured |  |" in body
    assert "Not measured for this checkpoint: latency (median batch), recall@1 image->text." in body
    assert "recall@1 image->text" not in {r.metric_name for r in card.data.eval_results}

    checkpoint(tmp_path / "none", before=None, after=None)
    card, meta, body = render(tmp_path / "none")
    assert "model-index" not in meta and card.data.eval_results is None
    assert "| parameters | not measured |" not in body  # no table at all
    assert "every metric is not measured" in body and not (tmp_path / "none" / "accuracy_vs_size.png").exists()


def test_unknown_method_and_old_format_report_still_render(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "clip", "architectures": ["CLIPModel"],
                                                    "vision_config": {}, "text_config": {}}))
    old = {"vlmcompress_version": "0.0.1", "model_family": "clip", "base_model": "openai/clip-vit-base-patch32",
           "steps": [{"method": "magic_sparsify", "sparsity": 0.5, "blocks": [1, 2], "extra": {"a": 1}}],
           "after": {"params": 1000, "zero_shot_accuracy": 0.5}}  # no format_version, environment, before
    (folder / "compression_report.json").write_text(json.dumps(old))
    card, meta, body = render(folder)
    assert meta["base_model"] == "openai/clip-vit-base-patch32"
    assert "magic-sparsify" in meta["tags"]
    assert "### 1. Magic sparsify" in body
    assert "| sparsity | 0.5 |" in body and "| blocks | 1, 2 |" in body and '| extra | {"a": 1} |' in body
    assert "| weights on disk | not measured |" in body and "| parameters | 1,000 |" in body
    assert "from transformers import CLIPModel, AutoProcessor" in body  # stock, read from the folder's config
    assert "model = CLIPModel.from_pretrained(MODEL_ID).eval()" in body
    # a report passed in directly, of an even older shape
    write_card(folder, report={"model_family": "clip", "steps": ["pruned somehow"]})
    assert "### 1. Pruned somehow" in (folder / "README.md").read_text()


TRAINING = {
    "hyperparameters": {"learning_rate": 0.0005, "max_steps": 40, "per_device_train_batch_size": 64,
                        "temperature": 3.0},
    "loss_log": [{"step": s, "loss": 2.0 / s, "loss_logit": 1.5 / s, "learning_rate": 5e-4} for s in range(1, 41)],
    "eval_log": [{"step": 20, "eval_loss": 0.2}, {"step": 40, "eval_loss": 0.1}],
    "train_runtime_s": 12.5,
    "global_step": 40,
}
QUANT_DISTILL_STEPS = [
    {"method": "distillation", "teacher": str(TEACHER_PATH), "student_init": "layers 0,2 of the teacher",
     "losses": {"logit": 1.0, "embedding": 0.5, "hidden": 0.0, "contrastive": 0.0}, "temperature": 3.0,
     "max_steps": 40, "training": TRAINING},
    {"method": "quantization", "bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": "float32",
     "towers": ["vision", "text"], "skipped_modules": ["visual_projection", "text_projection"]},
]


def test_distilled_and_quantized_steps_with_training_log(tmp_path):
    checkpoint(tmp_path / "q", steps=QUANT_DISTILL_STEPS, loading={"kind": "bitsandbytes", "class": "CLIPModel"},
               config={"model_type": "clip", "architectures": ["CLIPModel"], "vision_config": {}, "text_config": {},
                       "quantization_config": {"load_in_4bit": True}}, base_model="openai/clip-vit-base-patch32")
    card, meta, body = render(tmp_path / "q")
    assert meta["base_model"] == "openai/clip-vit-base-patch32" and meta["base_model_relation"] == "finetune"
    assert {"distillation", "quantization", "bitsandbytes", "4-bit"} <= set(meta["tags"])
    assert "teacher: vlmcompress/clip-digits-teacher" in body
    assert "loss weights: logit 1, embedding 0.5, hidden 0, contrastive 0" in body
    assert "weights stored 4-bit nf4 with double quantization (bitsandbytes), computing in float32" in body
    assert "modules kept in full precision: visual_projection, text_projection" in body
    assert "| temperature | 3 |" in body and "| per_device_train_batch_size | 64 |" in body
    assert "Trained 40 steps in 12.5 s." in body
    assert "12 of 40 logged rows" in body and "| 1 | 2 | 1.5 | 0.0005 |" in body and "| 40 | 0.05 |" in body
    assert "| 20 | 0.2 |" in body  # evaluation log
    assert "![Training loss](training_loss.png)" in body
    assert (tmp_path / "q" / "training_loss.png").read_bytes().startswith(PNG_MAGIC)
    assert 'CLIPModel.from_pretrained(MODEL_ID, device_map="auto")' in body
    for key in ("hinton2015distilling", "wu2023tinyclip", "yang2024clipkd", "dettmers2023qlora"):
        assert key in body


def test_quantized_only_relation_and_8bit_citation(tmp_path):
    checkpoint(tmp_path / "q8", steps=[{"method": "quantization", "bits": 8, "quant_type": "int8"}],
               loading={"kind": "bitsandbytes", "class": "CLIPModel"}, base_model="openai/clip-vit-base-patch32")
    _, meta, body = render(tmp_path / "q8")
    assert meta["base_model_relation"] == "quantized" and "8-bit" in meta["tags"]
    assert "dettmers2022llmint8" in body


def test_chain_of_local_checkpoints_shows_every_step(tmp_path):
    """A checkpoint made from a local vlmcompress checkpoint: base, intermediate and result in table and plot."""
    checkpoint(tmp_path / "pruned", model_name="me/pruned")
    mid = dict(AFTER, zero_shot_accuracy=0.9, size_bytes=5000000)
    checkpoint(tmp_path / "quantized", base_model=str(tmp_path / "pruned"), before=AFTER,
               steps=[{"method": "quantization", "bits": 8, "metrics": mid}],
               after=dict(AFTER, zero_shot_accuracy=0.8, size_bytes=2000000),
               loading={"kind": "bitsandbytes", "class": "CLIPModel"})
    _, meta, body = render(tmp_path / "quantized")
    assert "base_model" not in meta  # the root is the embedded teacher (no Hub id), never the local folder
    header = next(line for line in body.splitlines() if line.startswith("| metric |"))
    assert header == ("| metric | base: vlmcompress/clip-digits-teacher | me/pruned | after quantization | this model "
                      "| change |")
    assert "| zero-shot acc (seen/all) | 94.33% | 81.06% | 90.00% | 80.00% | -14.33 pts |" in body
    assert "### 1. Layer pruning (me/pruned)" in body and "### 4. Quantization (this run)" in body
    assert str(tmp_path) not in body
    # a report that repeats its base's steps shows each step once
    checkpoint(tmp_path / "quantized", base_model=str(tmp_path / "pruned"), before=AFTER,
               steps=PRUNE_STEPS + [{"method": "quantization", "bits": 8}])
    body = render(tmp_path / "quantized")[2]
    assert body.count("### ") == 4 and "### 4. Quantization (this run)" in body


def test_model_card_callback_collects_a_trainer_run(tmp_path):
    import torch
    from transformers import Trainer, TrainingArguments

    from vlmcompress.cards import ModelCardCallback

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(4, 1)

        def forward(self, x, labels):
            return {"loss": torch.nn.functional.mse_loss(self.w(x).squeeze(-1), labels)}

    torch.manual_seed(0)
    data = [{"x": torch.randn(4), "labels": torch.tensor(1.0)} for _ in range(16)]
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=4, per_device_train_batch_size=4,
                             learning_rate=1e-2, logging_steps=1, eval_strategy="steps", eval_steps=2,
                             report_to=[], use_cpu=True, save_strategy="no", hub_token="hf_SECRETtoken123",
                             disable_tqdm=True)
    callback = ModelCardCallback(hyperparameters={"temperature": 2.0})
    Trainer(model=Tiny(), args=args, train_dataset=data, eval_dataset=data[:4], callbacks=[callback]).train()
    record = callback.training_record()
    hp = record["hyperparameters"]
    assert hp["max_steps"] == 4 and hp["learning_rate"] == 1e-2 and hp["logging_steps"] == 1 and hp["temperature"] == 2.0
    assert "output_dir" not in hp and "num_train_epochs" not in hp  # paths and defaults left out
    assert "hf_SECRETtoken123" not in json.dumps(record)
    assert [r["step"] for r in record["loss_log"]] == [1, 2, 3, 4] and all("loss" in r for r in record["loss_log"])
    assert [r["step"] for r in record["eval_log"]] == [2, 4] and "eval_loss" in record["eval_log"][0]
    assert record["global_step"] == 4 and record["train_runtime_s"] > 0
    json.dumps(record)  # goes into compression_report.json as it is
    # and it renders
    checkpoint(tmp_path / "ck", steps=[{"method": "distillation", "training": record}])
    assert "| logging_steps | 1 |" in render(tmp_path / "ck")[2]


@pytest.mark.parametrize("pad", [{"model_type": "siglip", "architectures": ["SiglipModel"], "vision_config": {},
                                  "text_config": {}}])
def test_stock_siglip_snippet_pads_like_siglip(tmp_path, pad):
    checkpoint(tmp_path / "s", loading={"kind": "stock", "class": "SiglipModel"}, config=pad)
    _, _, body = render(tmp_path / "s", repo_id="me/siglip-small")
    assert 'MODEL_ID = "me/siglip-small"' in body and "padding='max_length'" in body
    assert "model = SiglipModel.from_pretrained(MODEL_ID).eval()" in body


def test_prune_writes_its_card_and_card_command_rerenders(tiny_clip_dir, tmp_path, capsys):
    from vlmcompress.cli import main

    out = tmp_path / "pruned"
    assert main(["prune", str(tiny_clip_dir), "-o", str(out), "--head-plan", '{"vision": {"0": [1]}}', "--no-eval"]) == 0
    body = (out / "README.md").read_text()
    assert GENERATED_MARKER in body and "vision tower: 1 head removed in 1 layer — layer 0: 1 head (1)" in body
    assert "\n# pruned\n" in body and 'MODEL_ID = "."' in body  # the folder itself, not the atomic temp folder's name
    from test_blip_cli import _run_snippet

    assert _run_snippet(body, out, tmp_path).strip() == "torch.Size([1, 2])"  # runs as pasted, from the folder
    assert "Nothing was measured for this checkpoint" in body and "trust_remote_code=True" in body
    assert not list(tmp_path.glob(".pruned*"))  # written inside prune's atomic folder
    (out / "README.md").unlink()
    assert main(["card", str(out), "--repo-id", "me/pruned"]) == 0
    assert 'MODEL_ID = "me/pruned"' in (out / "README.md").read_text()
    assert f"wrote {out / 'README.md'}" in capsys.readouterr().out
    assert main(["card", str(tmp_path)]) == 1  # no report: one line, non-zero
    assert "no compression_report.json" in capsys.readouterr().err


def test_every_training_log_shape_renders_its_table_and_plot(tmp_path):
    """Older recipes wrote [step, loss] pairs (quantize_clip) or dict rows at the step's top level (teacher recipes);
    the card dropped the pairs yet linked a loss plot it never drew."""
    from vlmcompress.report import ReportError, read_report

    shapes = {
        "pairs": {"method": "qlora", "r": 8, "loss_log": [[10, 2.5], [20, 1.25]]},
        "top-level rows": {"method": "train_from_scratch", "loss_log": [{"step": 10, "loss": 2.5}, {"step": 20, "loss": 1.25}]},
        "training rows": {"method": "distillation", "training": {"loss_log": [{"step": 10, "loss": 2.5}, {"step": 20, "loss": 1.25}]}},
    }
    for name, step in shapes.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        report = new_report(base_model=None, model_family="clip", steps=[step], before=None, after=AFTER)
        report["loading"] = {"kind": "stock", "class": "CLIPModel"}
        (folder / "compression_report.json").write_text(json.dumps(report))  # as an older version wrote it
        assert read_report(folder)["steps"][0]["training"]["loss_log"][1] == {"step": 20, "loss": 1.25}
        _, _, text = render(folder)
        assert "| 20 | 1.25 |" in text, name
        assert "![Training loss](training_loss.png)" in text and (folder / "training_loss.png").read_bytes()[:8] == PNG_MAGIC
    # a log with nothing to draw links no plot
    folder = tmp_path / "no-loss"
    checkpoint(folder, steps=[{"method": "distillation", "training": {"loss_log": [{"step": 1, "learning_rate": 0.1}]}}])
    _, _, text = render(folder)
    assert "training_loss.png" not in text and not (folder / "training_loss.png").exists()
    # the validator names a log in the wrong shape (writers must use the one shape)
    bad = new_report(base_model=None, model_family="clip", steps=[{"method": "qlora", "training": {"loss_log": [[1, 2.0]]}}],
                     before=None, after=None)
    with pytest.raises(ReportError, match=r"steps\[0\].training.loss_log\[0\] must be an object with a numeric 'step'"):
        write_report(bad, tmp_path / "bad")
    bad["steps"] = [{"method": "qlora", "loss_log": [{"step": 1, "loss": 2.0}]}]
    with pytest.raises(ReportError, match=r"steps\[0\].loss_log belongs in steps\[0\].training.loss_log"):
        write_report(bad, tmp_path / "bad")


def test_fisher_importance_and_the_interactive_contrastive_term_are_cited():
    from vlmcompress.cards.citations import citations_for

    report = {"model_family": "clip", "steps": [
        {"method": "head_pruning", "importance": "fisher"},
        {"method": "distillation", "losses": {"icl": 1.0}}]}
    keys = [c["key"] for c in citations_for(report)]
    assert "kwon2022" in keys and "clip_kd" in keys and "tinyclip" not in keys
    assert "kwon2022" not in [c["key"] for c in citations_for({"model_family": "clip", "steps": [
        {"method": "head_pruning", "importance": "magnitude"}]})]
