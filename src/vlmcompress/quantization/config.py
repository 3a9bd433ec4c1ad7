"""``QuantizationConfig``: what to quantize and how, in the words of the CLI (PEFT-style: a config and one verb)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import VlmcompressError
from ..io import JsonConfig

CONFIG_FILENAME = "quantization_config.json"
QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class QuantizationConfig(JsonConfig):
    """bitsandbytes LLM.int8 (``bits=8``) or 4-bit (``bits=4``: nf4/fp4, optional double quantization).

    ``skip`` adds module-name patterns (read like transformers' ``llm_int8_skip_modules``: a name prefix up to a module
    boundary, a regex with that boundary, or a suffix) to the family defaults the adapter keeps in full precision;
    each pattern must match at least one Linear. ``default_skip=False`` quantizes the family's defaults too (CLIP's
    and SigLIP's projections and heads, BLIP's projection and ITM heads): smaller, at some accuracy. ``towers`` not listed stay in full precision (None: every tower).
    ``compute_dtype`` is the 4-bit matmul dtype (float32 on CPU unless the CPU has fast bf16). ``dtype`` is the
    dtype of everything bitsandbytes leaves unquantized (the token and position embeddings, the patch convolution,
    LayerNorms, biases, the Linears kept in full precision), stored and run as ``from_pretrained(dtype=...)`` loads
    them: None keeps the model's; ``bfloat16`` halves those bytes, which dominate a small 4-bit checkpoint.
    """

    bits: int = 8
    quant_type: str | None = None  # 4-bit: QUANT_TYPES[0] (nf4) when not given
    double_quant: bool = False
    compute_dtype: str = "float32"
    dtype: str | None = None
    towers: list | None = None
    skip: list = field(default_factory=list)
    default_skip: bool = True
    device: str = "cpu"

    filename = CONFIG_FILENAME
    kind = "quantization"
    command = "quantize"

    def __post_init__(self):
        self.validate()

    @classmethod
    def from_dict(cls, data: dict):
        if data.get("bits") == 8 and data.get("quant_type") == "nf4":  # files written before quant_type was optional
            data = {**data, "quant_type": None}
        return super().from_dict(data)

    def validate(self) -> None:
        if self.bits not in (4, 8) or isinstance(self.bits, bool):
            raise VlmcompressError(f"--bits must be 8 (LLM.int8) or 4 (nf4/fp4), got {self.bits}")
        if self.bits == 8 and (self.double_quant or self.quant_type is not None):
            raise VlmcompressError("--quant-type and --double-quant apply to 4-bit only: pass --bits 4, or drop them "
                                   "for 8-bit")
        if self.quant_type is not None and self.quant_type not in QUANT_TYPES:
            raise VlmcompressError(f"--quant-type must be one of {', '.join(QUANT_TYPES)}, got {self.quant_type!r}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise VlmcompressError(
                f"--compute-dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {self.compute_dtype!r}")
        if self.dtype is not None and self.dtype not in COMPUTE_DTYPES:
            raise VlmcompressError(f"--dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {self.dtype!r}")
        from ..adapters import known_tower_names

        names = known_tower_names()
        unknown = [t for t in self.towers or () if t not in names]
        if unknown or self.towers == []:
            raise VlmcompressError(f"--towers takes a comma-separated subset of {','.join(names)}, "
                                   f"got {','.join(self.towers) or 'nothing'}")
        if not isinstance(self.default_skip, bool):
            raise VlmcompressError(f"default_skip must be true or false, got {self.default_skip!r}")
        if self.device not in DEVICES:
            raise VlmcompressError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")

    def towers_of(self, present) -> list:
        """The towers to quantize among ``present`` (the model's): those asked for, or all of them."""
        return list(present) if self.towers is None else list(self.towers)

    def bnb_config(self, skip_modules: list):
        """The ``BitsAndBytesConfig`` that ``from_pretrained`` applies and ``config.json`` keeps."""
        import torch
        from transformers import BitsAndBytesConfig

        if self.bits == 8:
            return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(skip_modules))
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=self.quant_type or QUANT_TYPES[0],
            bnb_4bit_use_double_quant=self.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, self.compute_dtype),
            llm_int8_skip_modules=list(skip_modules),
        )
