"""``ModelCardCallback``: what a ``Trainer`` run did, collected while it runs, for the model card.

Add it to any Trainer (only public callback hooks) and put ``callback.training_record()`` into the report step the
run writes, as its ``training`` entry::

    card_info = ModelCardCallback(hyperparameters={"temperature": 3.0})
    trainer = Trainer(..., callbacks=[card_info]); trainer.train()
    step = {"method": "distillation", ..., "training": card_info.training_record()}
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from transformers import TrainerCallback

#: TrainingArguments that say where things go, not how the model was trained
NOT_HYPERPARAMETERS = {"output_dir", "logging_dir", "run_name", "overwrite_output_dir", "hub_model_id",
                       "push_to_hub", "hub_private_repo", "hub_strategy", "hub_always_push", "hub_revision",
                       "report_to", "disable_tqdm", "save_total_limit", "save_strategy", "save_steps",
                       "resume_from_checkpoint", "learning_rate_given"}


def _plain(value):
    """A JSON-friendly copy (enums by value, numbers as numbers, anything else as text)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "value") and not isinstance(value, (list, dict)):  # Enum
        return _plain(value.value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def non_default_arguments(args) -> dict:
    """TrainingArguments that differ from a default instance; never a token, never a path."""
    # compared with the dataclass field defaults: building a default TrainingArguments mid-run would reset the
    # accelerator state the running Trainer uses
    current = args.to_dict()
    default = {}
    for f in dataclasses.fields(args):
        if f.default is not dataclasses.MISSING:
            default[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default[f.name] = f.default_factory()  # type: ignore[misc]
    default = {k: _plain(v) for k, v in default.items()}
    out = {}
    for key, value in current.items():
        if key in NOT_HYPERPARAMETERS or "token" in key or key.endswith("_dir"):
            continue
        if _plain(value) != _plain(default.get(key, object())):
            out[key] = _plain(value)
    return out


def _is_loss_key(key: str) -> bool:
    return key == "loss" or key.startswith("loss_") or key.endswith("_loss")


class ModelCardCallback(TrainerCallback):
    """Collects non-default hyperparameters, the training-loss log and evaluation results of a Trainer run.

    ``hyperparameters`` (and ``add_hyperparameters``) record what the recipe itself chose (a temperature, loss
    weights...) beside the TrainingArguments.
    """

    def __init__(self, hyperparameters: dict | None = None):
        self.extra = dict(hyperparameters or {})
        self.hyperparameters: dict = {}
        self.loss_log: list[dict] = []
        self.eval_log: list[dict] = []
        self.train_runtime_s: float | None = None
        self.global_step: int | None = None

    def add_hyperparameters(self, **values) -> None:
        self.extra.update(values)

    def on_train_begin(self, args, state, control, **kwargs):
        self.hyperparameters = non_default_arguments(args)

    def _row(self, rows, step):
        if rows and rows[-1]["step"] == step:
            return rows[-1]
        rows.append({"step": step})
        return rows[-1]

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        step = int(state.global_step)
        if "train_runtime" in logs:
            self.train_runtime_s = float(logs["train_runtime"])
        evals = {k: _plain(v) for k, v in logs.items() if k.startswith("eval_") and isinstance(v, numbers.Number)}
        if evals:
            self._row(self.eval_log, step).update(evals)
        if any(_is_loss_key(k) for k in logs) and "train_runtime" not in logs:
            row = self._row(self.loss_log, step)
            row.update({k: _plain(v) for k, v in logs.items()
                        if not k.startswith("eval_") and isinstance(v, numbers.Number)})

    def on_train_end(self, args, state, control, **kwargs):
        self.global_step = int(state.global_step)

    def training_record(self) -> dict:
        """{"hyperparameters", "loss_log", "eval_log", "train_runtime_s", "global_step"} (report step's ``training``)."""
        return {
            "hyperparameters": {**self.hyperparameters, **{k: _plain(v) for k, v in self.extra.items()}},
            "loss_log": [dict(r) for r in self.loss_log],
            "eval_log": [dict(r) for r in self.eval_log],
            "train_runtime_s": self.train_runtime_s,
            "global_step": self.global_step,
        }
