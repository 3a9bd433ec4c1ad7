"""Recipe files: one YAML (or JSON) file for the whole job, prune -> distill -> quantize -> export -> card -> push.

    model: openai/clip-vit-base-patch32        # or a folder; the embedded teacher when omitted
    data: {train: ..., eval: ...}              # data sets as the commands take them
    stages:
      - prune:    {head_ratio: 0.3, mlp_ratio: 0.3, importance: taylor}
      - distill:  {max_steps: 900, logit_weight: 1, embedding_weight: 1}
      - quantize: {bits: 4, quant_type: nf4}
      - export:   {int8: true}
    output_dir: outputs/clip-small
    push: {repo_id: me/clip-small, private: true}   # optional

Stage options are exactly the public configs of each method: ``PruningConfig`` (plus ``target``: a budget the planner
turns into ratios), ``DistillationConfig`` + ``TrainingArguments`` (plus ``teacher``: ``base``, the default, or a
folder / Hub id; a first-stage distillation also takes the inherited-student options of ``StudentArguments``),
``QuantizationConfig``, and the export options (``format``, ``int8``). Everything is validated before anything runs:
one ``VlmcompressError`` line naming the stage and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VlmcompressError

STAGES = ("prune", "distill", "quantize", "export")
TOP_KEYS = ("model", "family", "data", "stages", "output_dir", "push", "target", "eval")
DATA_KEYS = ("train", "train_config", "train_split", "eval", "eval_split", "image_column", "caption_column",
             "label_column", "eval_image_column", "eval_caption_column", "eval_label_column", "eval_task", "templates",
             "max_train_samples", "max_eval_samples", "images_per_number", "train_images_per_number",
             "texts", "on_bad_sample", "streaming", "shuffle_buffer")
EVAL_KEYS = ("latency_batch_size", "latency_rounds", "skip")
PUSH_KEYS = ("repo_id", "private", "revision", "commit_message")
TARGET_KEYS = ("max_size_mib", "max_latency_ms", "batch_size", "max_params")
EXPORT_KEYS = ("format", "int8")
#: what may follow each stage (a quantized model cannot be pruned or distilled into; an export is the end)
MAY_FOLLOW = {"prune": set(STAGES), "distill": set(STAGES), "quantize": {"export"}, "export": set()}


@dataclass
class Stage:
    index: int  # 1-based
    kind: str
    options: dict
    planned: bool = False  # a prune stage whose ratios the planner chooses (the recipe's target)

    @property
    def name(self) -> str:
        return f"{self.index:02d}-{self.kind}"

    def config_hash(self, inputs: str) -> str:
        blob = json.dumps({"kind": self.kind, "options": self.options, "inputs": inputs}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Recipe:
    model: str | None
    output_dir: str
    stages: list
    family: str = "clip"
    data: dict = field(default_factory=dict)
    push: dict | None = None
    target: dict | None = None
    eval: dict = field(default_factory=dict)
    source: str | None = None  # the file's text, saved beside the final checkpoint
    path: str | None = None

    def to_dict(self) -> dict:
        out = {"model": self.model, "family": self.family, "data": self.data,
               "stages": [{s.kind: s.options} for s in self.stages], "output_dir": self.output_dir}
        for key in ("push", "target"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.eval:
            out["eval"] = self.eval
        return out

    @property
    def has_training(self) -> bool:
        return any(s.kind == "distill" for s in self.stages)


def _fail(where: str, message: str):
    raise VlmcompressError(f"recipe {where}: {message}")


def _check_keys(where, given: dict, allowed, what="key"):
    if not isinstance(given, dict):
        _fail(where, f"expected a mapping of options, got {type(given).__name__}")
    unknown = [k for k in given if k not in allowed]
    if unknown:
        _fail(where, f"unknown {what} {unknown[0]!r} (expected one of: {', '.join(sorted(allowed))})")


def _fields(*classes) -> set:
    return {f.name for cls in classes for f in dataclasses.fields(cls)}


def _fits(value, tp) -> bool:
    """Whether a YAML value fits a number or true/false field's type (``_numeric``), null included where allowed."""
    import types
    import typing

    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # float


def _numeric(tp) -> bool:
    """A number or true/false field (optionally null): the ones whose wrong values fail deep inside a stage; text,
    list and mapping fields take several shapes and are checked by their config."""
    import types
    import typing

    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    args = [a for a in args if a is not type(None)]
    return bool(args) and all(a in (int, float, bool) for a in args)


def _type_name(tp) -> str:
    import types
    import typing

    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_type_name(a) for a in typing.get_args(tp)))
    return {bool: "true or false", int: "a whole number", float: "a number", type(None): "null"}[tp]


def check_types(where: str, given: dict, *classes) -> None:
    """Each option's value against its field's declared type: one line naming the key, the value and what fits
    (``head_ratio: '0.5'`` or ``max_steps: 1e3``, which YAML reads as strings, fail here, before any work)."""
    import typing

    hints = {}
    for cls in reversed(classes):
        try:
            hints.update(typing.get_type_hints(cls))
        except Exception:  # a type this Python cannot resolve: those fields are left to the config
            continue
    for key, value in given.items():
        tp = hints.get(key)
        if tp is not None and _numeric(tp) and not _fits(value, tp):
            _fail(f"{where}.{key}", f"expected {_type_name(tp)}, got {value!r}" + (
                " (YAML read it as text: write the number plainly, without quotes, e.g. 1000 rather than 1e3)"
                if isinstance(value, str) and _is_number(value) else ""))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_target(where, target) -> dict:
    _check_keys(where, target, TARGET_KEYS, "budget")
    if not any(k in target for k in ("max_size_mib", "max_latency_ms", "max_params")):
        _fail(where, "a target needs max_size_mib, max_latency_ms (with batch_size) or max_params")
    for key, value in target.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            _fail(f"{where}.{key}", f"expected a positive number, got {value!r}")
    if "max_params" in target and target["max_params"] > 1 and not float(target["max_params"]).is_integer():
        _fail(f"{where}.max_params", "a fraction of the base model's parameters (<= 1) or a whole count")
    return dict(target)


def distill_option_sets(family: str, first: bool):
    """(DistillationConfig fields, TrainingArguments fields, StudentArguments fields) a distill stage takes."""
    from . import distill as workflow

    student_cls, _, config_cls, training_cls = workflow.ARGUMENTS[family]
    student = _fields(student_cls) - {"teacher", "student"} if first else set()
    return _fields(config_cls), _fields(training_cls), student


def stage_configs(stage: Stage, family: str, first: bool):
    """Build the stage's method configs now, so that a value the method rejects fails before anything runs."""
    where = f"stage {stage.index} ({stage.kind})"
    opts = dict(stage.options)
    try:
        if stage.kind == "prune":
            from ..pruning.config import PruningConfig

            target = opts.pop("target", None)
            _check_keys(where, opts, _fields(PruningConfig))
            check_types(where, opts, PruningConfig)
            if target is not None:
                check_target(f"{where}.target", target)
                ratio_keys = [k for k in ("head_ratio", "mlp_ratio", "drop_layers", "keep_every", "remove_layers",
                                          "head_plan", "mlp_plan", "layer_strategy") if opts.get(k)]
                if ratio_keys:
                    _fail(where, f"give either a target or ratios, not both ({ratio_keys[0]} with target)")
            if target is not None or stage.planned:
                return PruningConfig(**{**opts, "mlp_ratio": 0.25})  # a placeholder: the planner sets the ratios
            return PruningConfig(**opts)
        if stage.kind == "distill":
            config_fields, training_fields, student_fields = distill_option_sets(family, first)
            _check_keys(where, opts, config_fields | training_fields | student_fields | {"teacher", "cache_teacher"})
            from . import distill as workflow

            student_cls, _, config_cls, training_cls = workflow.ARGUMENTS[family]
            check_types(where, {k: v for k, v in opts.items() if k != "cache_teacher"}, config_cls, training_cls,
                        student_cls)
            problem = workflow.max_steps_problem(opts.get("max_steps"))
            if problem:
                _fail(f"{where}.max_steps", problem)

            if "cache_teacher" in opts:  # the data argument's own choices; YAML's true/false read as their names
                choices = next(f for f in dataclasses.fields(workflow.DataArguments)
                               if f.name == "cache_teacher").metadata["choices"]
                if str(opts["cache_teacher"]).lower() not in choices:
                    _fail(f"{where}.cache_teacher", f"expected true, false or auto, got {opts['cache_teacher']!r}")

            return config_cls(**{k: v for k, v in opts.items() if k in config_fields})
        if stage.kind == "quantize":
            from ..quantization import QuantizationConfig

            _check_keys(where, opts, _fields(QuantizationConfig))
            check_types(where, opts, QuantizationConfig)
            return QuantizationConfig(**opts)
        _check_keys(where, opts, EXPORT_KEYS)
        if opts.get("format", "onnx") != "onnx":
            _fail(f"{where}.format", f"only onnx is supported, got {opts['format']!r}")
        if not isinstance(opts.get("int8", False), bool):
            _fail(f"{where}.int8", f"expected true or false, got {opts['int8']!r}")
        return None
    except VlmcompressError as exc:
        if str(exc).startswith("recipe "):
            raise
        _fail(where, str(exc))
    except TypeError as exc:  # a dataclass given a wrong shape of value
        _fail(where, str(exc))


def parse_recipe_text(text: str, path: str = "recipe") -> dict:
    """YAML (JSON is YAML too); a syntax error names the line and column."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise VlmcompressError(f"{path} is not valid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise VlmcompressError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise VlmcompressError(f"{path}: a recipe is a mapping with stages and output_dir, got "
                               f"{type(data).__name__}")
    return data


def recipe_from_dict(data: dict, *, source: str | None = None, path: str | None = None,
                     output_dir: str | None = None) -> Recipe:
    data = copy.deepcopy(data)
    _check_keys("top level", data, TOP_KEYS)
    family = data.get("family", "clip")
    if family not in ("clip", "blip"):
        _fail("family", f"clip (two-tower: CLIP, SigLIP, BLIP retrieval) or blip (the captioner), got {family!r}")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        _fail("model", f"a folder or Hub id, got {model!r}")
    out = output_dir or data.get("output_dir")
    if not out or not isinstance(out, str):
        _fail("output_dir", "missing: name the folder the stages are written to")
    data_opts = data.get("data") or {}
    _check_keys("data", data_opts, DATA_KEYS)
    eval_opts = data.get("eval") or {}
    _check_keys("eval", eval_opts, EVAL_KEYS)
    push = data.get("push")
    if push is not None:
        _check_keys("push", push, PUSH_KEYS)
        if not push.get("repo_id"):
            _fail("push.repo_id", "missing: 'name' or 'namespace/name'")
    target = check_target("target", data["target"]) if data.get("target") is not None else None
    raw = data.get("stages")
    if not isinstance(raw, list) or not raw:
        _fail("stages", "expected a list of stages, e.g. [{prune: {...}}, {distill: {...}}]")
    stages = []
    for i, item in enumerate(raw, start=1):
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            _fail(f"stage {i}", "each stage is one mapping, e.g. - prune: {head_ratio: 0.3}")
        (kind, options), = item.items()
        if kind not in STAGES:
            _fail(f"stage {i}", f"unknown stage {kind!r} (expected one of: {', '.join(STAGES)})")
        stages.append(Stage(i, kind, dict(options or {})))
    for prev, stage in zip(stages, stages[1:]):
        if stage.kind not in MAY_FOLLOW[prev.kind]:
            why = ("a quantized model cannot be pruned or distilled into: quantize last (before export); QLoRA "
                   "recovery is recipes/quantize_clip.py --qlora" if prev.kind == "quantize"
                   else "export is the last stage")
            _fail(f"stage {stage.index} ({stage.kind})", f"cannot follow {prev.kind}: {why}")
    recipe = Recipe(model=model, output_dir=out, stages=stages, family=family, data=data_opts, push=push,
                    target=target, eval=eval_opts, source=source, path=path)
    if target is not None and not any(s.kind == "prune" for s in stages):
        _fail("target", "a budget is met by pruning: add a prune stage (its ratios are then chosen by the planner)")
    if target is not None:
        for s in stages:
            if s.kind == "prune" and any(s.options.get(k) for k in ("head_ratio", "mlp_ratio", "drop_layers",
                                                                    "keep_every")):
                _fail(f"stage {s.index} (prune)", "the recipe has a target: leave the ratios to the planner")
    if target is not None:
        next(s for s in stages if s.kind == "prune").planned = True
    for s in stages:
        stage_configs(s, family, first=s.index == 1)
    return recipe


def load_recipe(path, *, output_dir: str | None = None) -> Recipe:
    p = Path(path).expanduser()
    if not p.is_file():
        raise VlmcompressError(f"recipe {path} does not exist: expected a YAML or JSON file (see recipes/*.yaml)")
    text = p.read_text(encoding="utf-8")
    return recipe_from_dict(parse_recipe_text(text, str(path)), source=text, path=str(p), output_dir=output_dir)


def stage_target(recipe: Recipe, stage: Stage) -> dict | None:
    """The budget the planner must meet for this prune stage: its own, else the recipe's (on the first prune)."""
    if stage.kind != "prune":
        return None
    if stage.options.get("target"):
        return stage.options["target"]
    first_prune = next(s for s in recipe.stages if s.kind == "prune")
    return recipe.target if stage is first_prune else None
