"""The report step the embedded teachers' training writes (``train_from_scratch``; see ``vlmcompress.steps``)."""

from __future__ import annotations

from ..steps import StepKind, register_step_kind

register_step_kind(StepKind("train_from_scratch", "Training from scratch", hub_relation="finetune"))
