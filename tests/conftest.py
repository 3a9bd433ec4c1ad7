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

    from vlmcompress.embedded.clip_teacher import teacher_config

    torch.manual_seed(seed)
    config = teacher_config(processor.tokenizer, layers=layers, hidden=hidden, heads=heads, projection=16)
    return CLIPModel(config).eval()


@pytest.fixture(scope="session")
def processor():
    from vlmcompress.embedded.clip_teacher import build_processor

    return build_processor()


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory, processor):
    """A random tiny CLIPModel with the embedded processor, saved like any checkpoint."""
    path = tmp_path_factory.mktemp("tiny-clip")
    tiny_clip(processor).save_pretrained(path)
    processor.save_pretrained(path)
    return path


def run_fresh_python(script: str, *args, cwd) -> None:
    """Run ``script`` in a fresh interpreter that cannot import vlmcompress from the source tree; assert success."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=env,
                       cwd=cwd, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def tiny_blip(cls_name="BlipForImageTextRetrieval", layers=2, hidden=32, heads=4, seed=0, text_init=None):
    """A random tiny BLIP model of class ``cls_name`` (fresh config each call: pruning edits the config).
    ``text_init`` widens the text weights' init (peaked next-token distributions instead of near-uniform ones)."""
    import transformers

    from vlmcompress.embedded.blip_captioner import blip_config, build_blip_tokenizer

    torch.manual_seed(seed)
    config = blip_config(build_blip_tokenizer(), layers=layers, hidden=hidden, heads=heads, projection=16)
    if text_init is not None:
        config.text_config.initializer_range = text_init
    return getattr(transformers, cls_name)(config).eval()


@pytest.fixture(scope="session")
def blip_processor():
    from vlmcompress.embedded.blip_captioner import build_blip_processor

    return build_blip_processor()
