import json
import os
import re
import subprocess
import sys

import pytest


def run_cli(*args, cwd=None):
    """The command, run in this process (``cli_in_process``); ``test_the_console_script_runs_as_a_process`` covers the
    real ``python -m vlmcompress``."""
    from conftest import cli_in_process

    return cli_in_process(*args, cwd=cwd)


def test_the_console_script_runs_as_a_process(tmp_path):
    env = dict(os.environ, VLMCOMPRESS_NO_PROGRESS="1", OMP_WAIT_POLICY="PASSIVE")
    r = subprocess.run([sys.executable, "-m", "vlmcompress", "evaluate", str(tmp_path / "nope")], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "does not exist" in r.stderr


def test_evaluate_prints_table_and_writes_json(tiny_clip_dir, tmp_path):
    out = tmp_path / "metrics.json"
    r = run_cli("evaluate", str(tiny_clip_dir), "--eval-dataset", "vlmcompress/digits-test", "--max-eval-samples", "150",
                "--latency-repeats", "5", "--latency-batch-size", "4", "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert "zero-shot acc (held-out)" in r.stdout and "recall@5 text->image" in r.stdout
    assert "1 test image(s) per number, 100 in all" in r.stdout  # the cap keeps every number
    data = json.loads(out.read_text())
    assert data["eval_images"] == 100 and data["latency_batch_size"] == 4 and data["params"] > 0


def _assert_one_line_error(r, needle):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_missing_model_path(tmp_path):
    _assert_one_line_error(run_cli("evaluate", str(tmp_path / "nope")), "does not exist")


def test_folder_without_config(tmp_path):
    _assert_one_line_error(run_cli("evaluate", str(tmp_path)), "config.json")


def test_not_clip_like(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)).save_pretrained(tmp_path)
    _assert_one_line_error(run_cli("evaluate", str(tmp_path)), "not a supported image-text model: expected CLIP, SigLIP or BLIP")


def test_dataset_without_named_columns(tiny_clip_dir, tmp_path):
    import datasets

    datasets.Dataset.from_dict({"picture": ["x.png"], "caption": ["x"]}).save_to_disk(tmp_path / "ds")
    out = tmp_path / "m.json"
    r = run_cli("evaluate", str(tiny_clip_dir), "--dataset", str(tmp_path / "ds"), "--output", str(out))
    _assert_one_line_error(r, "no image column")
    r = run_cli("evaluate", str(tiny_clip_dir), "--dataset", str(tmp_path / "ds"), "--image-column", "img")
    _assert_one_line_error(r, "has no column 'img'")
    assert not out.exists()


def test_empty_dataset(tiny_clip_dir, tmp_path):
    import datasets

    datasets.Dataset.from_dict({"image": [], "text": [], "label": []}).save_to_disk(tmp_path / "ds")
    _assert_one_line_error(run_cli("evaluate", str(tiny_clip_dir), "--dataset", str(tmp_path / "ds")), "empty")


def test_debug_shows_traceback(tmp_path):
    r = run_cli("--debug", "evaluate", str(tmp_path / "nope"))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_help_explains():
    r = run_cli("evaluate", "--help")
    assert r.returncode == 0 and "embedded teacher" in r.stdout


def test_an_onnx_folder_given_to_a_command_that_changes_weights_is_one_line(tmp_path):
    """An exported folder (onnx_config.json beside the graphs) cannot be pruned, quantized, exported again or distilled
    from: one line naming the fix, not an AttributeError from the ONNX Runtime wrapper."""
    from vlmcompress.errors import VlmcompressError
    from vlmcompress.loading import load_checkpoint
    from vlmcompress.modeling.onnx_runtime import ONNX_CONFIG

    onnx = tmp_path / "exported"
    onnx.mkdir()
    (onnx / ONNX_CONFIG).write_text("{}")
    (onnx / "config.json").write_text(json.dumps({"model_type": "clip"}))  # an export keeps the model's config
    for command in (["prune", "--head-ratio", "0.25", "--importance", "magnitude"], ["export"]):
        r = run_cli(command[0], str(onnx), *command[1:], "--no-eval", "-o", str(tmp_path / f"out-{command[0]}"))
        _assert_one_line_error(r, "holds ONNX graphs (vlmcompress export)")
        assert not (tmp_path / f"out-{command[0]}").exists()
    for purpose in ("quantization", "distillation (--teacher)"):
        with pytest.raises(VlmcompressError, match=f"which {re.escape(purpose)} cannot change: give the PyTorch"):
            load_checkpoint(str(onnx), torch_for=purpose)


def test_latency_rounds_default_is_written_once():
    """Every entry point that times a model side by side defaults to report.LATENCY_ROUNDS (the recipe pipeline
    used 3 while the commands used 5)."""
    import inspect

    from vlmcompress.checkpoint import finish_checkpoint
    from vlmcompress.cli import build_parser
    from vlmcompress.export import export_onnx
    from vlmcompress.report import LATENCY_ROUNDS
    from vlmcompress.workflows.compress import Pipeline
    from vlmcompress.workflows.distill import DataArguments
    from vlmcompress.workflows.recipe import recipe_from_dict

    parser = build_parser()
    for command in (["prune"], ["quantize", "--bits", "8"], ["export"]):
        assert parser.parse_args([*command, "-o", "x"]).latency_rounds == LATENCY_ROUNDS, command
    assert DataArguments().latency_rounds == LATENCY_ROUNDS
    for function in (export_onnx, finish_checkpoint):
        assert inspect.signature(function).parameters["latency_rounds"].default == LATENCY_ROUNDS
    recipe = recipe_from_dict({"output_dir": "x", "stages": [{"quantize": {"bits": 8}}]})
    pipeline = Pipeline(recipe, inputs_only=True, log=lambda text: None)
    assert pipeline._latency({"latency_batch_size": 32})["latency_rounds"] == LATENCY_ROUNDS


def test_every_command_reads_snake_case_option_names_too():
    """distill and recipes spell options in snake_case: the other commands read that spelling as well, for their own
    options only, with values and unknown names left alone."""
    from vlmcompress.cli import build_parser
    from vlmcompress.cli._args import _kebab_case

    parser = build_parser()
    argv = _kebab_case(parser, ["prune", "--head_ratio", "0.5", "--max_eval_samples=10", "--calibration-samples", "32",
                                "--head_plan", "--a_b", "-o", "x_y"])
    assert argv == ["prune", "--head-ratio", "0.5", "--max-eval-samples=10", "--calibration-samples", "32",
                    "--head-plan", "--a_b", "-o", "x_y"]
    args = parser.parse_args(_kebab_case(parser, ["quantize", "--bits", "8", "--latency_rounds", "2", "-o", "x"]))
    assert args.latency_rounds == 2
    assert _kebab_case(parser, ["evaluate", "--head_ratio", "0.5"]) == ["evaluate", "--head_ratio", "0.5"]  # not evaluate's
    r = run_cli("prune", "--not_an_option", "1", "-o", "x")
    assert r.returncode != 0 and "--not_an_option" in r.stderr


def test_every_option_defaults_to_its_configs_default():
    """An option a command, a recipe's argument dataclass and a method config share has one default: the config's.
    Deliberate differences are listed here (and nowhere else), each with its reason."""

    from vlmcompress.cli import build_parser, pruning_config, quantization_config
    from vlmcompress.cli._args import defaults_of as defaults
    from vlmcompress.distillation.store import write_store
    from vlmcompress.evaluation import evaluate_model
    from vlmcompress.pruning import importance
    from vlmcompress.pruning.config import IMPORTANCE_NAMES, PruningConfig
    from vlmcompress.quantization import QuantizationConfig
    from vlmcompress.workflows.distill import DataArguments, StudentArguments
    from vlmcompress.workflows.quantize import QuantizeArguments

    parser = build_parser()
    args = parser.parse_args(["prune", "--head-ratio", "0.25", "-o", "x"])
    assert pruning_config(args).effective() == PruningConfig(head_ratio=0.25).effective()
    for bits in (4, 8):
        args = parser.parse_args(["quantize", "--bits", str(bits), "-o", "x"])
        assert quantization_config(args).effective() == QuantizationConfig(bits=bits).effective()

    def same(command: dict, declared: dict, names=None) -> None:  # each option both declare has the declared default
        names = set(command) & set(declared) if names is None else names
        assert names and {n: command[n] for n in names} == {n: declared[n] for n in names}

    assert set(IMPORTANCE_NAMES) == set(importance.IMPORTANCE)  # the torch-free list names every registered criterion
    prune_cli = vars(parser.parse_args(["prune", "-o", "x"]))
    same(prune_cli, defaults(PruningConfig), {"importance", "head_ratio", "head_scope", "mlp_ratio", "mlp_scope",
                                              "hidden_ratio", "layer_strategy", "keep_every", "calibration_samples",
                                              "seed", "towers", "head_sites"})
    same(vars(parser.parse_args(["quantize", "--bits", "8", "-o", "x"])), defaults(QuantizationConfig),
         {"quant_type", "double_quant", "compute_dtype", "dtype", "towers", "device"})
    same(vars(parser.parse_args(["cache-teacher", "--data", "d", "-o", "x"])), defaults(write_store),
         {"dtype", "batch_size", "image_column", "caption_column"})
    same(vars(parser.parse_args(["evaluate"])), defaults(evaluate_model),
         {"batch_size", "latency_batch_size", "latency_repeats"})

    config, recipe = defaults(QuantizationConfig), defaults(QuantizeArguments)
    differ = {k for k in set(config) & set(recipe) if config[k] != recipe[k] and k != "towers"}  # towers: a string
    assert differ == {"bits"}, differ  # recipes/quantize_clip.py is the QLoRA (4-bit) recipe; the library's is 8
    student, pruning = defaults(StudentArguments), defaults(PruningConfig)
    assert student["importance"] == pruning["importance"] and student["head_scope"] == pruning["head_scope"]
    data = defaults(DataArguments)
    evaluate = vars(parser.parse_args(["evaluate"]))
    prune = vars(parser.parse_args(["prune", "-o", "x"]))
    for name in ("eval_split", "eval_task", "templates", "on_bad_sample", "max_eval_samples"):
        assert evaluate[name] == prune[name] == data[name], name
    from vlmcompress import report  # where the evaluation set's defaults are declared, and the library's entry points
    from vlmcompress.evaluation import load_eval_set

    assert (data["eval_split"], data["eval_task"], data["templates"], data["on_bad_sample"]) == (
        report.EVAL_SPLIT, report.EVAL_TASKS[0], report.TEMPLATES, report.ON_BAD_SAMPLE[0])
    assert defaults(evaluate_model)["task"] == report.EVAL_TASKS[0]
    assert (defaults(load_eval_set)["split"], defaults(load_eval_set)["on_bad_sample"]) == (
        report.EVAL_SPLIT, report.ON_BAD_SAMPLE[0])
    from vlmcompress.data.sources import CAPTION_COLUMN, IMAGE_COLUMN, LABEL_COLUMN

    columns = (IMAGE_COLUMN, CAPTION_COLUMN, LABEL_COLUMN)  # the data set's columns, for training and calibration
    assert (prune["image_column"], prune["text_column"], prune["label_column"]) == columns
    assert (data["image_column"], data["caption_column"], data["label_column"]) == columns
    from vlmcompress.pruning.config import CALIBRATION_SAMPLES, describe_calibration_samples

    # the importances' sample counts are the declared ones, and prune --help says them
    assert {n: c.default_samples for n, c in importance.IMPORTANCE.items() if getattr(c, "needs_data", False)} \
        == CALIBRATION_SAMPLES
    help_text = " ".join(parser._subparsers._group_actions[0].choices["prune"].format_help().split())
    assert describe_calibration_samples() in help_text
    for name in ("latency_batch_size", "latency_rounds"):
        assert prune[name] == data[name], name
    assert evaluate["latency_batch_size"] == data["latency_batch_size"] == recipe["latency_batch_size"]


def test_a_missing_model_folder_fails_before_the_command_imports_torch(tmp_path):
    """A typo in the model path is one line in a second, not after ten seconds of imports: checked before torch loads
    (after the output folder's check: that one comes first, test_the_output_folder_is_checked_before_any_work)."""
    script = """
import json, sys
from vlmcompress.cli import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes, "torch": "torch" in sys.modules}))
"""
    missing, out = tmp_path / "no-such-model", tmp_path / "out"
    commands = [["evaluate", missing], ["prune", missing, "-o", out], ["quantize", missing, "--bits", "8", "-o", out],
                ["export", missing, "-o", out], ["cache-teacher", missing, "--data", tmp_path, "-o", out]]
    r = subprocess.run([sys.executable, "-c", script, json.dumps([[str(a) for a in c] for c in commands])],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result == {"codes": [1] * len(commands), "torch": False}, (result, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == len(commands) and all(f"model folder {missing} does not exist" in line for line in lines)
    assert not out.exists()
