"""Report step kinds are registered like families: the report, the cards and the citations look a step's method up
in ``vlmcompress.steps`` and name none themselves; a kind registered from outside works everywhere."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vlmcompress import steps as steps_mod
from vlmcompress.cards import write_card
from vlmcompress.cards.citations import citations_for
from vlmcompress.report import ReportError, empty_metrics, new_report, validate_report
from vlmcompress.steps import Citation, StepKind, register_step_kind, step_kind, step_kinds

SRC = Path(__file__).resolve().parents[1] / "src" / "vlmcompress"


@pytest.fixture
def sharing_kind():
    """A toy method registered for one test and removed after it (nothing leaks into later tests)."""
    def check(step, where, problems):
        if not isinstance(step.get("groups"), int) or step["groups"] < 1:
            problems.append(f"{where}.groups must be a positive integer")

    kind = register_step_kind(StepKind(
        "weight_sharing", "Weight sharing", hub_relation="finetune", validate=check,
        describe=lambda step, fmt: ([f"weights shared in {fmt.plural(step['groups'], 'group')}"], {"groups"}),
        citations=lambda step: [Citation("sharing2099", "sharing weights", "@misc{sharing2099, title = {Sharing}}")]))
    yield kind
    steps_mod.STEP_KINDS.pop("weight_sharing")


def report_with(step):
    return new_report(base_model="openai/clip-vit-base-patch32", model_family="clip", steps=[step],
                      before=empty_metrics(), after=empty_metrics())


def test_every_step_the_library_writes_has_a_kind():
    written = set()
    for path in SRC.rglob("*.py"):
        written |= set(re.findall(r'"method": "([a-z_]+)"', path.read_text()))
    built = {m for m in written if not m.startswith("student_from_")}  # a distilled student's origin, not a step
    assert built <= set(step_kinds()), sorted(built - set(step_kinds()))
    assert {"head_pruning", "mlp_pruning", "layer_pruning", "quantization", "qlora", "distillation",
            "onnx_export"} <= set(step_kinds())


def _compared_or_keyed_strings(tree) -> set:
    """String constants a module compares against or uses as dict keys (an if-chain or a table by method)."""
    found = set()
    for node in ast.walk(tree):
        parts = [*node.comparators, node.left] if isinstance(node, ast.Compare) else \
            list(node.keys) if isinstance(node, ast.Dict) else []
        for part in parts:
            for leaf in ast.walk(part) if part is not None else ():
                if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                    found.add(leaf.value)
    return found


def test_report_cards_and_citations_name_no_method():
    for relative in ("report.py", "cards/render.py", "cards/citations.py"):
        named = sorted(_compared_or_keyed_strings(ast.parse((SRC / relative).read_text())) & set(step_kinds()))
        assert not named, f"{relative} branches on step kinds {named}: declare them in the method's steps module"


def test_a_registered_kind_is_validated_described_and_cited(sharing_kind, tmp_path):
    with pytest.raises(ReportError, match=r"steps\[0\]\.groups must be a positive integer"):
        validate_report(report_with({"method": "weight_sharing", "groups": 0}))
    report = validate_report(report_with({"method": "weight_sharing", "groups": 3, "seed": 7}))
    assert [c["key"] for c in citations_for(report)] == ["clip", "sharing2099"]
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "clip", "architectures": ["CLIPModel"],
                                                    "vision_config": {}, "text_config": {}}))
    (folder / "compression_report.json").write_text(json.dumps(report))
    body = write_card(folder).read_text()
    assert "### 1. Weight sharing" in body and "weights shared in 3 groups" in body
    assert "| seed | 7 |" in body and "| groups |" not in body  # described keys leave the step's table
    assert "base_model_relation: finetune" in body and "@misc{sharing2099" in body


def test_built_in_kinds_keep_their_checks():
    with pytest.raises(ReportError, match=r"removed_heads has unknown tower 'audio'"):
        validate_report(report_with({"method": "head_pruning", "removed_heads": {"audio": {"0": [1]}}}))
    with pytest.raises(ReportError, match=r"removed_layers must map tower names"):
        validate_report(report_with({"method": "layer_pruning", "removed_layers": [1, 2]}))
    assert step_kind("quantization").hub_relation == "quantized" and step_kind("head_pruning").hub_relation is None


def test_step_kinds_load_without_torch():
    code = ("import sys; from vlmcompress.steps import step_kinds; kinds = step_kinds(); "
            "assert 'distillation' in kinds; print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
