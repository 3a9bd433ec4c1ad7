import pytest
import torch

from conftest import tiny_clip
from vlmcompress.errors import VlmcompressError
from vlmcompress.evaluation import evaluate_model
from vlmcompress.evaluation.harness import recall_at_k
from vlmcompress.report import METRIC_TYPES, validate_report, new_report


def test_recall_at_k_counts_label_hits():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.7, 0.1], [0.0, 0.5, 0.4]])
    labels = [0, 1, 2]
    assert recall_at_k(sim, labels, labels, 1) == pytest.approx(1 / 3)
    assert recall_at_k(sim, labels, labels, 2) == pytest.approx(1.0)
    # a same-label target counts as a hit (captions of one number are interchangeable)
    assert recall_at_k(sim, [0, 0, 2], [0, 0, 2], 1) == pytest.approx(2 / 3)


def test_evaluate_tiny_clip_on_embedded_data(processor):
    model = tiny_clip(processor)
    m = evaluate_model(model, processor, images_per_number=2, latency_repeats=5, latency_batch_size=4)
    for key in METRIC_TYPES:
        assert key in m
    assert m["eval_images"] == 200 and m["zero_shot_classes"] == 100
    assert m["params"] == sum(p.numel() for p in model.parameters())
    assert m["size_bytes"] > 4 * m["params"] * 0.95
    assert m["memory_bytes"] >= 4 * m["params"]
    assert 0 <= m["zero_shot_accuracy"] <= 1 and 0 <= m["zero_shot_accuracy_heldout"] <= 1
    assert m["latency_ms"] > 0 and m["latency_batch_size"] == 4 and m["latency_dtype"] == "float32"
    assert m["recall_at_5_i2t"] >= m["recall_at_1_i2t"]
    validate_report(new_report(base_model=None, model_family="clip", steps=[], before=None, after=m))


def test_zero_shot_accuracy_is_exact_for_an_oracle(processor, monkeypatch):
    """Patch the adapter's encoders into an oracle that knows each label: accuracy must be 1, recall 1."""
    from vlmcompress.adapters.clip import ClipAdapter
    from vlmcompress.embedded import digits

    model = tiny_clip(processor)
    ds = digits.load_digits_dataset("test", images_per_number=1)
    labels = torch.tensor(ds["label"])
    state = {"i": 0}

    def image_embeddings(self, pixel_values):
        n = pixel_values.shape[0]
        out = torch.nn.functional.one_hot(labels[state["i"]:state["i"] + n], 128).float()
        state["i"] += n
        return out

    def text_embeddings(self, input_ids, attention_mask=None):
        # the first digit tokens after the template identify the number: decode the text instead
        texts = processor.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        nums = []
        for t in texts:
            ds_ = [c for c in t if c.isdigit()]
            if len(ds_) >= 2:
                nums.append(int(ds_[0]) * 10 + int(ds_[1]))
            else:
                words = [w for w in t.split() if w in digits.NUMBER_WORDS]
                nums.append(digits.NUMBER_WORDS.index(words[0]) * 10 + digits.NUMBER_WORDS.index(words[1]))
        return torch.nn.functional.one_hot(torch.tensor(nums), 128).float()

    monkeypatch.setattr(ClipAdapter, "image_embeddings", image_embeddings)
    monkeypatch.setattr(ClipAdapter, "text_embeddings", text_embeddings)
    m = evaluate_model(model, processor, ds, class_prompts=digits.class_prompts(),
                       heldout_labels=digits.HELDOUT_NUMBERS, latency_repeats=0, measure_size=False)
    assert m["zero_shot_accuracy"] == 1.0 and m["zero_shot_accuracy_heldout"] == 1.0
    assert m["recall_at_1_i2t"] == 1.0 and m["recall_at_1_t2i"] == 1.0


def test_user_dataset_without_heldout_labels(processor):
    import datasets
    from vlmcompress.embedded import digits

    model = tiny_clip(processor)
    ds = digits.load_digits_dataset("test", images_per_number=1, numbers=range(10))
    ds = ds.cast_column("label", datasets.ClassLabel(names=[f"{i:02d}" for i in range(10)]))
    m = evaluate_model(model, processor, ds, latency_repeats=0, measure_size=False)
    assert m["zero_shot_classes"] == 10
    assert m["zero_shot_accuracy"] is not None and m["zero_shot_accuracy_heldout"] is None
    assert m["size_bytes"] is None


def test_bad_datasets_are_one_line_errors(processor):
    import datasets
    import numpy as np
    from PIL import Image

    model = tiny_clip(processor)
    image = Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8))
    empty = datasets.Dataset.from_dict({"image": [], "text": [], "label": []})
    with pytest.raises(VlmcompressError, match="empty"):
        evaluate_model(model, processor, empty)
    with pytest.raises(VlmcompressError, match="has no column 'text'"):
        evaluate_model(model, processor, datasets.Dataset.from_dict({"image": [image], "caption": ["a"]}),
                       text_column="text")
    with pytest.raises(VlmcompressError, match="no image column"):
        evaluate_model(model, processor, datasets.Dataset.from_dict({"caption": ["a"], "label": [0]}))
    unscorable = datasets.Dataset.from_dict({"image": [image], "label": [0]})  # a plain int label: no class names
    with pytest.raises(VlmcompressError, match="neither a ClassLabel label column .* nor captions"):
        evaluate_model(model, processor, unscorable)
    with pytest.raises(VlmcompressError, match="no datasets.ClassLabel label column"):
        evaluate_model(model, processor, unscorable, task="zero_shot")
    with pytest.raises(VlmcompressError, match="no captions for retrieval"):
        evaluate_model(model, processor, unscorable, task="retrieval")


def test_not_clip_like_model_is_rejected(processor):
    from transformers import BertConfig, BertModel

    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    with pytest.raises(VlmcompressError, match="not a supported image-text model"):
        evaluate_model(model, processor, latency_repeats=0)


def test_evaluates_a_bitsandbytes_8bit_model(tiny_clip_dir):
    """The harness measures a really quantized model (bitsandbytes CPU backend) and sees it smaller."""
    from transformers import BitsAndBytesConfig, CLIPModel, CLIPProcessor

    proc = CLIPProcessor.from_pretrained(tiny_clip_dir)
    fp32 = CLIPModel.from_pretrained(tiny_clip_dir)
    q8 = CLIPModel.from_pretrained(tiny_clip_dir, quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="cpu")
    kw = dict(images_per_number=1, latency_repeats=0)
    m32 = evaluate_model(fp32, proc, model_path=tiny_clip_dir, **kw)
    m8 = evaluate_model(q8, proc, **kw)
    assert m8["memory_bytes"] < m32["memory_bytes"]
    assert m8["size_bytes"] < m32["size_bytes"]
    assert m8["params"] == m32["params"]


def test_load_model_reloads_a_saved_4bit_checkpoint(tiny_clip_dir, tmp_path):
    """A bitsandbytes folder (quantization_config in config.json) loads through vlmcompress and evaluates."""
    from transformers import BitsAndBytesConfig, CLIPModel, CLIPProcessor

    from vlmcompress.loading import load_checkpoint

    q4 = CLIPModel.from_pretrained(tiny_clip_dir, device_map="cpu",
                                   quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"))
    q4.save_pretrained(tmp_path / "q4")
    CLIPProcessor.from_pretrained(tiny_clip_dir).save_pretrained(tmp_path / "q4")
    model, processor, path = load_checkpoint(str(tmp_path / "q4"))
    assert type(model.vision_model.encoder.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    m = evaluate_model(model, processor, images_per_number=1, latency_repeats=5, latency_batch_size=4, model_path=path)
    assert m["latency_ms"] > 0 and m["size_bytes"] > 0


def test_captioner_is_measured_by_its_captions(blip_processor):
    from conftest import tiny_blip
    from vlmcompress.embedded.digits import number_in_caption
    from vlmcompress.report import format_metrics_table

    assert [number_in_caption(c) for c in ("a photo of the number 47", "the digits four and seven",
                                           "a four followed by a seven", "handwritten 07", "a picture", "47 48")] == [
        47, 47, 47, 7, None, None]
    metrics = evaluate_model(tiny_blip("BlipForConditionalGeneration"), blip_processor, images_per_number=1,
                             latency_repeats=1, measure_size=False)
    assert 0 <= metrics["caption_accuracy"] <= 1 and 0 <= metrics["caption_accuracy_heldout"] <= 1
    assert metrics["zero_shot_accuracy"] is None and metrics["latency_ms"] > 0
    assert len(metrics["caption_examples"]) == 5 and all(isinstance(c, str) for c in metrics["caption_examples"])
    table = format_metrics_table({"captioner": metrics})
    assert "caption accuracy (held-out)" in table and "zero-shot" not in table


def test_max_eval_samples_cuts_the_embedded_benchmark_per_number(capsys):
    """A sample cap on the embedded benchmark (vlmcompress/digits-test) keeps every number and cuts the images per
    number, with one note, in distill, the other commands and recipes alike; other sets draw their seeded subset."""
    from vlmcompress.evaluation import EMBEDDED, NO_EVAL, embedded_images_per_number
    from vlmcompress.workflows.compress import Pipeline
    from vlmcompress.workflows.recipe import recipe_from_dict

    assert embedded_images_per_number(EMBEDDED, None, 500) == 5
    assert "--max-eval-samples 500 on the embedded benchmark (100 numbers): 5 test image(s) per number, 500 in all" \
        in capsys.readouterr().out
    assert embedded_images_per_number(EMBEDDED, 100, 50, "--max_eval_samples") == 1  # one each, at least
    assert "--max_eval_samples 50" in capsys.readouterr().out
    assert embedded_images_per_number(EMBEDDED, 3, 500) == 3  # no cut needed
    assert embedded_images_per_number(EMBEDDED, None, 50_000) is None and embedded_images_per_number(EMBEDDED, 7, None) == 7
    assert embedded_images_per_number(NO_EVAL, 100, 500) == 100 and capsys.readouterr().out == ""
    recipe = recipe_from_dict({"output_dir": "x", "data": {"max_eval_samples": 300},
                               "stages": [{"quantize": {"bits": 8}}]})
    kwargs = Pipeline(recipe, inputs_only=True, log=lambda text: None).eval_kwargs(None)  # None: the embedded teacher
    assert kwargs["dataset"] == EMBEDDED and kwargs["images_per_number"] == 3
    assert "data.max_eval_samples 300" in capsys.readouterr().out
