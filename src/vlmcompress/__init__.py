"""vlmcompress: make CLIP, SigLIP and BLIP small and fast with the Hugging Face tools you already use.

    from vlmcompress import PruningConfig, prune_model, load_checkpoint, finish_checkpoint

Everything a user needs is importable from here; names are imported lazily (as in peft and trl), so
``import vlmcompress`` stays fast and pulls in neither transformers nor torch until a name is used.
"""

from __future__ import annotations

import importlib
import logging
import warnings

__version__ = "0.1.0"


class _KnownNoise(logging.Filter):
    """bitsandbytes 0.50 on AVX512-BF16 CPUs tries, at import, to fetch a CPU kernel from the Hub's kernels-community
    (through the ``kernels`` package, which transformers now installs) and logs a warning when it cannot: absent,
    offline (``kernels`` says it skips the publisher check) or untrusted. Its own CPU code path is used instead and
    works (FACTS). Those two notices are dropped at their source loggers, nothing else is."""

    def filter(self, record):
        msg = str(record.msg)
        return not (msg.startswith("Failed to load CPU gemm_4bit_forward from kernels-community")
                    or (msg.startswith("Skipping publisher trust check for 'kernels-community/")
                        and "bitsandbytes" in msg))


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_KnownNoise())
logging.getLogger("kernels._internals.hf_hub").addFilter(_KnownNoise())
# LLM.int8 casts fp32 activations to fp16 on every call and says so each time; what it does is in the report and card
warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast from torch.float32 to float16")

#: public name -> (module, attribute)
_PUBLIC = {
    "PruningConfig": ("pruning.config", "PruningConfig"),
    "prune_model": ("pruning.config", "prune_model"),
    "PruningCallback": ("pruning.callback", "PruningCallback"),
    "QuantizationConfig": ("quantization.config", "QuantizationConfig"),
    "quantize": ("quantization.core", "quantize"),
    "DistillationConfig": ("distillation.config", "DistillationConfig"),
    "DistillationTrainer": ("distillation.trainer", "DistillationTrainer"),
    "evaluate_model": ("evaluation.harness", "evaluate_model"),
    "load_eval_set": ("evaluation.eval_sets", "load_eval_set"),
    "load_model": ("loading", "load_model"),
    "load_checkpoint": ("loading", "load_checkpoint"),
    "save_compressed": ("modeling", "save_compressed"),
    "finish_checkpoint": ("checkpoint", "finish_checkpoint"),
    "check_output_dir": ("io", "check_output_dir"),
    "push_to_hub": ("hub", "push_folder"),
    "export_onnx": ("export", "export_onnx"),
    "read_report": ("report", "read_report"),
    "write_card": ("cards.render", "write_card"),
    "ModelCardCallback": ("cards.callback", "ModelCardCallback"),
    "VlmcompressError": ("errors", "VlmcompressError"),
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
    if name in _PUBLIC:
        module, attribute = _PUBLIC[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
