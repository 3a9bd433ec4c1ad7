"""The report steps the embedded teachers' training writes (``train_from_scratch``, ``train_retrieval_from_captioner``;
see ``vlmcompress.steps``)."""

from __future__ import annotations

from ..steps import StepKind, register_step_kind

register_step_kind(StepKind("train_from_scratch", "Training from scratch", hub_relation="finetune"))
register_step_kind(StepKind("train_retrieval_from_captioner", "Retrieval training from the captioner",
                            hub_relation="finetune"))
