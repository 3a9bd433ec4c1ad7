"""``OnnxModel``: a folder written by ``vlmcompress.export`` (ONNX graphs) behind the few methods the harness and the adapters call, run by ONNX Runtime.

``get_image_features`` / ``get_text_features`` (two-tower models), ``generate`` and a teacher-forced ``__call__``
(captioners), ``num_parameters`` and ``get_memory_footprint``: so ``evaluate_model`` measures accuracy, size and
latency of the deployed graphs with the same code as a PyTorch checkpoint. Sessions run on the CPU with
``intra_op_num_threads`` = torch's thread count (the harness reports it), one inter-op thread.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import VlmcompressError

#: the file that makes a folder an exported ONNX checkpoint (which graph is which, the task, int8 or not)
ONNX_CONFIG = "onnx_config.json"


def require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise VlmcompressError("ONNX export and runtime need onnx and onnxruntime: pip install 'vlmcompress[onnx]'") from None


def is_onnx_folder(path) -> bool:
    return (Path(path) / ONNX_CONFIG).is_file()


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types: one line naming the file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VlmcompressError(f"{path} is not a loadable ONNX graph ({first[:200]}): export it again") from None


class OnnxModel:
    """An exported folder (``export_onnx``) as a model object."""

    def __init__(self, folder, threads: int | None = None):
        from transformers import AutoConfig

        require_onnx()
        folder = Path(folder)
        try:
            spec = json.loads((folder / ONNX_CONFIG).read_text())
            graphs = dict(spec["graphs"])
            self.task = spec["task"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VlmcompressError(f"{folder / ONNX_CONFIG} cannot be read ({exc}): export the folder again") from None
        missing = [name for name in graphs.values() if not (folder / name).is_file()]
        if missing:
            raise VlmcompressError(f"{folder} has no {', '.join(missing)}: export the folder again")
        self.onnx_config = spec
        self.config = AutoConfig.from_pretrained(folder)
        self.name_or_path = str(folder)
        self.vlmcompress_task = self.task
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.threads = threads or torch.get_num_threads()
        self.files = {role: folder / name for role, name in graphs.items()}
        self.sessions = {role: _session(path, self.threads) for role, path in self.files.items()}
        if spec.get("logit_scale"):
            self.logit_scale = torch.tensor(math.log(spec["logit_scale"]))

    # --- what torch models offer and the harness asks for -------------------------------------------------------
    def eval(self):
        return self

    def parameters(self):
        return iter(())

    def _initializers(self):
        import onnx

        for path in self.files.values():
            for tensor in onnx.load(str(path), load_external_data=False).graph.initializer:
                yield tensor

    def num_parameters(self) -> int:
        """Weight elements across the graphs (an int8 weight counts its elements; scales and zero points too)."""
        return int(sum(int(np.prod(t.dims)) if len(t.dims) else 1 for t in self._initializers()))

    def get_memory_footprint(self) -> int:
        """Bytes of the graphs' weights (initializers) as ONNX Runtime holds them."""
        import onnx

        return int(sum(onnx.numpy_helper.to_array(t).nbytes for t in self._initializers()))

    def _run(self, role, feeds):
        return self.sessions[role].run(None, feeds)[0]

    # --- two towers --------------------------------------------------------------------------------------------
    def get_image_features(self, pixel_values=None, **_):
        self._require("image_text")
        return torch.from_numpy(self._run("image", {"pixel_values": _numpy(pixel_values, np.float32)}))

    def get_text_features(self, input_ids=None, attention_mask=None, **_):
        self._require("image_text")
        if attention_mask is None:
            attention_mask = torch.ones_like(torch.as_tensor(input_ids))
        return torch.from_numpy(self._run("text", {"input_ids": _numpy(input_ids, np.int64),
                                                  "attention_mask": _numpy(attention_mask, np.int64)}))

    # --- captioners --------------------------------------------------------------------------------------------
    def encode_images(self, pixel_values) -> np.ndarray:
        self._require("caption")
        return self._run("vision", {"pixel_values": _numpy(pixel_values, np.float32)})

    def decode(self, input_ids, attention_mask, encoder_hidden_states) -> np.ndarray:
        self._require("caption")
        return self._run("decoder", {"input_ids": _numpy(input_ids, np.int64),
                                     "attention_mask": _numpy(attention_mask, np.int64),
                                     "encoder_hidden_states": _numpy(encoder_hidden_states, np.float32)})

    def __call__(self, pixel_values=None, input_ids=None, attention_mask=None, **_):
        """A teacher-forced forward (what latency figures time for a captioner)."""
        states = self.encode_images(pixel_values)
        if attention_mask is None:
            attention_mask = torch.ones_like(torch.as_tensor(input_ids))
        return self.decode(input_ids, attention_mask, states)

    def generate(self, pixel_values=None, max_new_tokens: int = 20, **_):
        return torch.from_numpy(greedy_captions(self, pixel_values, max_new_tokens=max_new_tokens))

    def _require(self, task):
        if self.task != task:
            what = "a captioner's" if task == "caption" else "an image-text model's"
            raise VlmcompressError(f"{self.name_or_path} holds {self.task} graphs, not {what}")


def greedy_captions(model: OnnxModel, pixel_values, max_new_tokens: int = 20) -> np.ndarray:
    """Greedy decoding as BLIP's ``generate`` does it: start from the decoder's BOS, stop at [SEP], pad after it.
    No KV cache: each step runs the decoder on the whole prefix (exact; cheap for captions of a few tokens)."""
    text = model.config.text_config
    states = model.encode_images(pixel_values)
    batch = states.shape[0]
    ids = np.full((batch, 1), text.bos_token_id, dtype=np.int64)
    done = np.zeros(batch, dtype=bool)
    for _ in range(max_new_tokens):
        logits = model.decode(ids, np.ones_like(ids), states)[:, -1]
        token = logits.argmax(-1).astype(np.int64)
        token[done] = text.pad_token_id
        ids = np.concatenate([ids, token[:, None]], axis=1)
        done |= token == text.sep_token_id
        if done.all():
            break
    return ids


def _numpy(value, dtype):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(value), dtype=dtype)


__all__ = ["OnnxModel", "greedy_captions", "is_onnx_folder", "require_onnx", "ONNX_CONFIG"]
