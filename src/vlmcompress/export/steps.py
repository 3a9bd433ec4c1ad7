"""The report step export writes (``onnx_export``; see ``vlmcompress.steps``)."""

from __future__ import annotations

from ..steps import StepKind, register_step_kind

register_step_kind(StepKind("onnx_export", "ONNX export"))
