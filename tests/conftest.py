import os

# offline, quiet and reproducible; set before transformers/datasets are imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("VLMCOMPRESS_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# under pytest-xdist each worker, and every process a test starts, gets its share of the cores, not all of them: two
# workers whose training processes each spin two threads (OMP_WAIT_POLICY=ACTIVE) on two cores slow each other down
# many times over. OMP_NUM_THREADS for the workers and the processes that take torch's default, VLMCOMPRESS_THREADS for
# training processes (the distill command sets its own threads). Set before torch is imported; a value already set wins.
from vlmcompress.threads import THREADS_ENV, share_of_cores  # noqa: E402  (torch-free: imports os and sys only)

XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if XDIST_WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(share_of_cores(XDIST_WORKERS)))
    os.environ.setdefault(THREADS_ENV, str(share_of_cores(XDIST_WORKERS)))

import pytest  # noqa: E402
import torch  # noqa: E402

#: the fast tier's limit per test (set-up + call), in seconds: a test that needs more is marked ``slow`` and keeps a
#: cheap stand-in in the fast tier. VLMCOMPRESS_SLOW_LIMIT_S overrides it (e.g. on a machine known to be slower).
SLOW_LIMIT_S = float(os.environ.get("VLMCOMPRESS_SLOW_LIMIT_S", "30"))
#: under pytest-xdist (the README's ``-n 2``) a test shares the cores with the other worker's tests: the limit is
#: scaled by the slowdown measured on 2 cores (the fast tier's per-test times summed: 845 s with -n 2, 550 s alone)
XDIST_SLOWDOWN = 1.5
LIMIT_S = SLOW_LIMIT_S * XDIST_SLOWDOWN if XDIST_WORKERS > 1 else SLOW_LIMIT_S
SHARED = f" ({SLOW_LIMIT_S:.0f} s x {XDIST_SLOWDOWN}, {XDIST_WORKERS} workers)" if XDIST_WORKERS > 1 else ""


def pytest_collection_modifyitems(config, items):
    """A ``distributed`` test (real multi-process launches) belongs to the slow tier too, and to one xdist group: the
    launches rendezvous on torch.distributed's default port, so under ``-n 2 --dist loadgroup`` they run one at a time
    on one worker."""
    for item in items:
        if item.get_closest_marker("distributed"):
            if not item.get_closest_marker("slow"):
                item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group("distributed"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Fail an unmarked test whose set-up and call took more than SLOW_LIMIT_S: the fast tier stays fast."""
    outcome = yield
    report = outcome.get_result()
    if call.when == "setup":
        item._vlmcompress_setup_s = call.duration
        return
    if call.when != "call" or not report.passed or item.get_closest_marker("slow"):
        return
    took = call.duration + getattr(item, "_vlmcompress_setup_s", 0.0)
    if took > LIMIT_S:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} took {took:.1f} s (set-up + call), over the fast tier's {LIMIT_S:.0f} s"
                           f"{SHARED}: make it cheaper, or mark it @pytest.mark.slow and keep a cheap stand-in in the "
                           "fast tier")


def tiny_clip(processor, layers=2, hidden=32, heads=4, seed=0, projection=16):
    from transformers import CLIPModel

    from vlmcompress.embedded.clip_teacher import teacher_config

    torch.manual_seed(seed)
    config = teacher_config(processor.tokenizer, layers=layers, hidden=hidden, heads=heads, projection=projection)
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


def cli_as_process(*args, cwd=None, env=None, timeout=600):
    """``python -m vlmcompress ARGS`` in a fresh interpreter: for what only a process shows (environment read at
    import, such as the Hub's endpoint, cache and token paths)."""
    import subprocess
    import sys

    env = dict(os.environ, VLMCOMPRESS_NO_PROGRESS="1", OMP_WAIT_POLICY="PASSIVE", **(env or {}))
    return subprocess.run([sys.executable, "-m", "vlmcompress", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def cli_in_process(*args, cwd=None, env=None):
    """``vlmcompress ARGS`` through ``vlmcompress.cli.main`` in this process: the same parser, commands and one-line
    errors as the console script, without a fresh interpreter's few seconds of imports. Returns what
    ``subprocess.run(..., capture_output=True, text=True)`` returns (returncode, stdout, stderr). Tests of what only
    a process shows (signals, the import of a fresh interpreter, accelerate launch) keep using subprocesses."""
    import contextlib
    import io
    import subprocess
    import traceback

    from vlmcompress.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd, saved_threads = dict(os.environ), os.getcwd(), torch.get_num_threads()
    os.environ.update({"VLMCOMPRESS_NO_PROGRESS": "1", **(env or {})})
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except Exception:  # what the interpreter does with an uncaught exception (--debug)
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(saved_threads)
    return subprocess.CompletedProcess(["vlmcompress", *map(str, args)], code, out.getvalue(), err.getvalue())
