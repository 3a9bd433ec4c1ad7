"""``vlmcompress quantize``: checkpoint, report and one-line errors that leave nothing behind."""

import json
import sys

import pytest
import torch

from conftest import tiny_clip
from vlmcompress.report import read_report

pytest.importorskip("bitsandbytes")


@pytest.fixture(scope="module")
def clip64_dir(tmp_path_factory, processor):
    path = tmp_path_factory.mktemp("clip64-cli")
    tiny_clip(processor, hidden=64).save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _main(capsys, *argv):
    from vlmcompress.cli import main

    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_quantize_cli_writes_checkpoint_report_and_config(clip64_dir, tmp_path, capsys):
    out = tmp_path / "nf4"
    rc, stdout, err = _main(capsys, "quantize", str(clip64_dir), "--bits", "4", "--double-quant", "-o", str(out),
                            "--images-per-number", "1", "--latency-batch-size", "4", "--latency-rounds", "1")
    assert rc == 0, err
    report = read_report(out)
    (step,) = report["steps"]
    assert step["method"] == "quantization" and step["bits"] == 4 and step["quant_type"] == "nf4"
    assert step["double_quant"] is True and step["compute_dtype"] == "float32" and step["towers"] == ["vision", "text"]
    assert step["skipped_modules"] == ["visual_projection", "text_projection"] and step["quantized_linears"] == 24
    assert report["after"]["size_bytes"] < report["before"]["size_bytes"]
    assert report["after"]["memory_bytes"] < report["before"]["memory_bytes"]
    assert report["after"]["params"] == report["before"]["params"]
    assert report["loading"] == {"kind": "bitsandbytes", "class": "CLIPModel"}
    assert json.loads((out / "config.json").read_text())["quantization_config"]["load_in_4bit"] is True
    assert json.loads((out / "quantization_config.json").read_text())["double_quant"] is True
    card = (out / "README.md").read_text()  # the generated card: bitsandbytes loading snippet, 4-bit tags
    assert "BitsAndBytesConfig" in card or "bitsandbytes" in card
    assert "before" in stdout and "CLIPModel.from_pretrained(path)" in stdout


def _assert_one_line_error(rc, err, needle):
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1 and len(lines) == 1 and needle in lines[0], err


def test_quantize_cli_bad_input_leaves_nothing(clip64_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "never"
    base = ["quantize", str(clip64_dir), "-o", str(out), "--no-eval"]
    rc, _, err = _main(capsys, *base, "--bits", "3")  # a parse-time error: one line, argparse's exit status 2
    assert rc == 2 and err.strip().splitlines() == [
        "vlmcompress quantize: error: argument --bits: invalid choice: 3 (choose from 4, 8); see --help"], err
    _assert_one_line_error(*_main(capsys, *base, "--bits", "8", "--quant-type", "fp4")[::2], "4-bit only")
    _assert_one_line_error(*_main(capsys, *base, "--bits", "4", "--skip", "fc9")[::2], "'fc9' matches no Linear")
    _assert_one_line_error(*_main(capsys, *base, "--bits", "4", "--towers", "vision,audio")[::2], "--towers")
    if not torch.cuda.is_available():
        _assert_one_line_error(*_main(capsys, *base, "--bits", "8", "--device", "cuda")[::2], "no CUDA device")
    quantized = tmp_path / "q8"
    assert _main(capsys, "quantize", str(clip64_dir), "--bits", "8", "-o", str(quantized), "--no-eval")[0] == 0
    _assert_one_line_error(*_main(capsys, "quantize", str(quantized), "--bits", "4", "-o", str(out), "--no-eval")[::2],
                           "already quantized")
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    _assert_one_line_error(*_main(capsys, *base, "--bits", "8")[::2], "pip install 'bitsandbytes>=0.49'")
    assert not out.exists() and not list(tmp_path.glob(".never*"))
