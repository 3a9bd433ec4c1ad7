import os

# offline, quiet and reproducible; set before transformers/datasets are imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("VLMCOMPRESS_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


def tiny_clip(processor, layers=2, hidden=32, heads=4, seed=0):
    from transformers import CLIPModel

    from vlmcompress.teacher import teacher_config

    torch.manual_seed(seed)
    config = teacher_config(processor.tokenizer, layers=layers, hidden=hidden, heads=heads, projection=16)
    return CLIPModel(config).eval()


@pytest.fixture(scope="session")
def processor():
    from vlmcompress.teacher import build_processor

    return build_processor()


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory, processor):
    """A random tiny CLIPModel with the embedded processor, saved like any checkpoint."""
    path = tmp_path_factory.mktemp("tiny-clip")
    tiny_clip(processor).save_pretrained(path)
    processor.save_pretrained(path)
    return path
