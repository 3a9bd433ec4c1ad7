"""Push compressed checkpoints to a real HTTP Hub on 127.0.0.1 (tests/hub_server.py) with the real huggingface_hub
client, load them back with ``from_pretrained`` from that endpoint, and compare outputs with the local folder.

The client runs in a subprocess with ``HF_ENDPOINT`` set (huggingface_hub reads it at import); the server runs in
this process, so tests can see what it received. Nothing is patched.

Every kind of checkpoint is pushed and loaded back: pruned with remote code, stock, bitsandbytes-quantized and
distilled. Another kind is one more ``pytest.param(builder, load_kwargs)`` in ``CHECKPOINTS``:
``builder(folder, processor)`` writes a checkpoint folder with its report.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from conftest import cli_in_process, tiny_clip
from hub_server import HubServer
from test_cli import _assert_one_line_error

TOKEN = "hf_localTestToken0123456789"


def _report(folder, model, processor, loading, steps, base_model, before=None, after=None):
    from vlmcompress.cards import write_card
    from vlmcompress.report import new_report, write_report

    report = new_report(base_model=base_model, model_family="clip", steps=steps, before=before, after=after)
    report["loading"] = loading
    write_report(report, folder)
    write_card(folder, report)


def build_pruned_remote_code(folder, processor):
    """Heads pruned unevenly: the folder carries modeling_vlmcompress.py and loads with trust_remote_code."""
    from vlmcompress.evaluation import evaluate_model
    from vlmcompress.modeling import save_compressed
    from vlmcompress.pruning.structural import prune_heads

    model = tiny_clip(processor)
    step = prune_heads(model, {"vision": {0: [1]}, "text": {1: [0, 2]}})
    loading = save_compressed(model, processor, folder)
    after = evaluate_model(model, processor, model_path=folder, images_per_number=1, latency_batch_size=4,
                           latency_repeats=2)
    _report(folder, model, processor, loading, [step], "tiny-clip", None, after)
    return {"modeling_vlmcompress.py", "accuracy_vs_size.png"}


def build_stock(folder, processor):
    """A layer dropped from each tower: the stock CLIPModel reloads it (no metrics measured: the card says so)."""
    from vlmcompress.modeling import save_compressed
    from vlmcompress.pruning.structural import prune_layers

    model = tiny_clip(processor, seed=1)
    step = prune_layers(model, {"vision": [1], "text": [0]})
    loading = save_compressed(model, processor, folder)
    assert loading["kind"] == "stock"
    _report(folder, model, processor, loading, [step], "tiny-clip")
    return set()


def build_quantized(folder, processor):
    """LLM.int8 through BitsAndBytesConfig: config.json carries the quantization_config, no remote code."""
    from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized

    config = QuantizationConfig(bits=8)
    model = quantize(tiny_clip(processor, seed=2), config)
    loading = save_quantized(model, processor, folder, config)
    assert loading["kind"] == "bitsandbytes"
    _report(folder, model, processor, loading, [model.vlmcompress_quantization], "tiny-clip")
    return {"quantization_config.json"}


def build_distilled(folder, processor):
    """A one-layer student distilled from a two-layer teacher for a few steps inside DistillationTrainer."""
    from transformers import TrainingArguments

    from vlmcompress.embedded import digits
    from vlmcompress.data.collate import ImageTextCollator
    from vlmcompress.distillation import DistillationConfig, DistillationTrainer
    from vlmcompress.modeling import save_compressed

    student = tiny_clip(processor, layers=1, seed=3)
    args = TrainingArguments(output_dir=str(folder.parent / "run"), per_device_train_batch_size=8, max_steps=2,
                             report_to=[], save_strategy="no", remove_unused_columns=False, use_cpu=True,
                             disable_tqdm=True)
    cfg = DistillationConfig()
    trainer = DistillationTrainer(model=student, args=args, data_collator=ImageTextCollator(processor),
                                  train_dataset=digits.load_digits_dataset("train", images_per_number=1),
                                  teacher=tiny_clip(processor), distillation_config=cfg)
    trainer.train()
    loading = save_compressed(student.eval(), processor, folder)
    step = {"method": "distillation", "teacher": "tiny-clip", "student_init": "student_from_config",
            "losses": cfg.active_losses(), "temperature": cfg.temperature, "max_steps": 2}
    _report(folder, student, processor, loading, [step], "tiny-clip")
    return set()


CHECKPOINTS = [
    pytest.param(build_pruned_remote_code, {"trust_remote_code": True}, id="pruned-remote-code"),
    pytest.param(build_stock, {}, id="stock"),
    pytest.param(build_quantized, {"device_map": "cpu"}, id="quantized-int8"),
    pytest.param(build_distilled, {}, id="distilled"),
]


def hub_env(tmp_path, endpoint, token=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_OFFLINE="0", TRANSFORMERS_OFFLINE="0", HF_HOME=str(tmp_path / "hf-home"),
               HF_HUB_CACHE=str(tmp_path / "hf-cache"), HF_HUB_DISABLE_TELEMETRY="1", OMP_WAIT_POLICY="PASSIVE",
               VLMCOMPRESS_NO_PROGRESS="1", HF_HUB_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false")
    if token:
        env["HF_TOKEN"] = token
    return env


def run_py(code, env, *args):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)


def folder_digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


ROUND_TRIP = """
    import json, sys, warnings
    warnings.filterwarnings("ignore")
    import numpy as np, torch
    from PIL import Image
    from transformers import AutoModel, AutoProcessor
    from vlmcompress.hub import push_folder

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (56, 56), dtype=np.uint8)) for _ in range(3)]
    texts = ["a photo of the number 47", "handwritten 08", "the digits four and seven"]

    def outputs(ref, kwargs):
        model = AutoModel.from_pretrained(ref, **kwargs).eval()
        processor = AutoProcessor.from_pretrained(ref)
        inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
        with torch.no_grad():
            return type(model).__name__, model(**inputs).logits_per_image

    results = {}
    for folder, repo_id, kwargs in json.loads(sys.argv[1]):  # one client process for every kind of checkpoint
        url = push_folder(folder, repo_id, private=True)
        hub_class, hub = outputs(repo_id, kwargs)
        local_class, local = outputs(folder, kwargs)
        results[repo_id] = {"url": url, "class": hub_class, "local_class": local_class, "shape": list(hub.shape),
                            "max_diff": (hub - local).abs().max().item()}
    print(json.dumps(results))
"""


@pytest.mark.parametrize("first", range(0, len(CHECKPOINTS), 2), ids=lambda i: "+".join(p.id for p in CHECKPOINTS[i:i + 2]))
def test_push_and_load_back(tmp_path, processor, first):
    """Each kind in CHECKPOINTS is pushed into its own private repo and loaded back from the Hub, two kinds per client
    process (an interpreter's imports shared, and a test short enough for the fast tier); each equals its folder."""
    jobs, kinds = [], {}
    for param in CHECKPOINTS[first:first + 2]:
        build, load_kwargs = param.values
        folder = tmp_path / param.id / "checkpoint"
        extra_files = build(folder, processor)
        repo_id = f"user/tiny-{param.id}"
        jobs.append([str(folder), repo_id, load_kwargs])
        kinds[repo_id] = (folder, extra_files, (folder / "README.md").read_text(), folder_digest(folder))
    with HubServer(tmp_path / "hub", token=TOKEN) as hub:
        r = run_py(ROUND_TRIP, hub_env(tmp_path, hub.endpoint, TOKEN), json.dumps(jobs))
        assert r.returncode == 0, r.stderr[-3000:]
        results = json.loads(r.stdout.strip().splitlines()[-1])
        assert not hub.unrouted, hub.unrouted
        assert TOKEN not in r.stdout + r.stderr
        for repo_id, (folder, extra_files, local_card, before) in kinds.items():
            result = results[repo_id]
            assert result["url"] == f"{hub.endpoint}/{repo_id}", repo_id
            assert result["max_diff"] < 1e-6 and result["shape"] == [3, 3], (repo_id, result)
            assert result["class"] == result["local_class"], (repo_id, result)
            # one commit with everything the checkpoint needs, into a private repo (downloads needed the token)
            commits = [c for c in hub.commits if c["repo_id"] == repo_id]
            assert len(commits) == 1, (repo_id, commits)
            assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json",
                    "compression_report.json", "README.md"} | extra_files <= set(commits[0]["paths"]), repo_id
            assert hub.store.meta(repo_id)["private"] is True
            _, files = hub.store.files(repo_id, "main")
            card = hub.store.blob(files["README.md"]).decode()
            assert f'MODEL_ID = "{repo_id}"' in card and card in hub.validated_cards, repo_id
            assert TOKEN not in card
            # the local folder is untouched (its card keeps its placeholder path)
            assert folder_digest(folder) == before and (folder / "README.md").read_text() == local_card, repo_id
            assert 'MODEL_ID = "."' in local_card


FAULTS = """
    import json, shutil, sys
    from vlmcompress.errors import VlmcompressError
    from vlmcompress.hub import push_folder

    folder, token, scratch = sys.argv[1], sys.argv[2], sys.argv[3]
    out = {}

    def attempt(name, *args, **kwargs):
        try:
            out[name] = "ok " + push_folder(*args, **kwargs)
        except VlmcompressError as exc:
            out[name] = str(exc)

    attempt("wrong_token", folder, "user/faults", token="hf_wrongSECRET_999")
    attempt("no_token", folder, "user/faults")
    attempt("forbidden", folder, "acme/faults", token=token)
    attempt("bad_id", folder, "bad--name", token=token)
    attempt("bad_id2", folder, "a/b/c", token=token)
    shutil.copytree(folder, scratch + "/no_report"); (__import__("pathlib").Path(scratch) / "no_report" / "compression_report.json").unlink()
    attempt("no_report", scratch + "/no_report", "user/faults", token=token)
    shutil.copytree(folder, scratch + "/no_weights"); (__import__("pathlib").Path(scratch) / "no_weights" / "model.safetensors").unlink()
    attempt("no_weights", scratch + "/no_weights", "user/faults", token=token)
    attempt("first", folder, "user/faults", token=token)      # re-run after the failures: works
    attempt("again", folder, "user/faults", token=token)      # nothing changed: nothing sent
    attempt("branch", folder, "user/faults-b", token=token, revision="v2", commit_message="to a branch")
    attempt("no_namespace", folder, "short", token=token)  # lands in the token's namespace, card names it
    # a recipe's --push_to_hub: TrainingArguments' own fields (as built in the test), pushed once at the end
    from types import SimpleNamespace
    from vlmcompress.hub import push_if_requested
    out["recipe"] = push_if_requested(SimpleNamespace(**json.loads(sys.argv[4])), folder)
    print(json.dumps(out))
"""


def test_push_faults_give_one_clear_line_and_rerun_works(tmp_path, processor):
    from transformers import TrainingArguments

    from vlmcompress.hub import push_if_requested, without_push

    folder = tmp_path / "checkpoint"
    build_stock(folder, processor)
    (folder / "checkpoint-10").mkdir()  # a Trainer's resumable checkpoint and a temp file: never uploaded
    (folder / "checkpoint-10" / "optimizer.pt").write_bytes(b"state")
    (folder / ".README.md.tmp-1").write_text("partial")
    before = folder_digest(folder)
    (tmp_path / "scratch").mkdir()
    off = TrainingArguments(output_dir=str(folder), report_to=[])
    assert push_if_requested(off, tmp_path / "nothing-here") is None  # no --push_to_hub: nothing happens
    args = TrainingArguments(output_dir=str(folder), report_to=[], push_to_hub=True, hub_model_id="user/from-recipe",
                             hub_private_repo=True, hub_token=TOKEN)
    assert without_push(args).push_to_hub is False and args.push_to_hub is True  # for the Trainer
    recipe_args = {k: getattr(args, k) for k in ("output_dir", "push_to_hub", "hub_model_id", "hub_private_repo",
                                                 "hub_token", "hub_revision")}
    with HubServer(tmp_path / "hub", token=TOKEN, forbidden_namespaces={"acme"}) as hub:
        r = run_py(FAULTS, hub_env(tmp_path, hub.endpoint), folder, TOKEN, tmp_path / "scratch",
                   json.dumps(recipe_args))
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        commits = list(hub.commits)
        refs = hub.store.meta("user/faults-b")["branches"]
    for name, msg in out.items():
        assert "\n" not in msg and TOKEN not in msg and "hf_wrongSECRET_999" not in msg, (name, msg)
    assert "401" in out["wrong_token"] and "token was refused" in out["wrong_token"] and "hf auth login" in out["wrong_token"]
    assert "401" in out["no_token"] and "no valid token was found" in out["no_token"]
    assert "403" in out["forbidden"] and "acme/faults" in out["forbidden"]
    assert out["bad_id"].startswith("invalid repo id 'bad--name'") and out["bad_id2"].startswith("invalid repo id")
    assert "has no compression_report.json" in out["no_report"]
    assert "has no weights" in out["no_weights"]
    assert out["first"] == f"ok {hub.endpoint}/user/faults"
    assert out["again"] == f"ok {hub.endpoint}/user/faults"
    assert out["branch"] == f"ok {hub.endpoint}/user/faults-b/tree/v2"
    # the failures sent no commit; the re-run sent one; the unchanged re-run none; the branch push went to v2
    assert out["recipe"] == f"{hub.endpoint}/user/from-recipe" and hub.store.meta("user/from-recipe")["private"]
    assert [(c["revision"], c["summary"]) for c in commits] == [
        ("main", "Upload faults compressed with vlmcompress"), ("v2", "to a branch"),
        ("main", "Upload short compressed with vlmcompress"), ("main", "Upload from-recipe compressed with vlmcompress")]
    assert out["no_namespace"] == f"ok {hub.endpoint}/user/short"
    _, files = hub.store.files("user/short", "main")
    assert "model.safetensors" in files and not [f for f in files if "checkpoint-10" in f or f.startswith(".")]
    assert 'MODEL_ID = "user/short"' in hub.store.blob(files["README.md"]).decode()
    assert set(refs) == {"main", "v2"}
    assert TOKEN not in r.stdout + r.stderr
    assert folder_digest(folder) == before


def test_cli_push_to_an_unreachable_hub_is_one_line(tmp_path, processor):
    folder = tmp_path / "checkpoint"
    build_stock(folder, processor)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cli = [sys.executable, "-m", "vlmcompress", "push", str(folder)]
    r = subprocess.run(cli + ["--repo-id", "user/x"], env=hub_env(tmp_path, f"http://127.0.0.1:{closed}", TOKEN),
                       capture_output=True, text=True, timeout=300)
    _assert_one_line_error(r, "cannot reach the Hub")
    assert TOKEN not in r.stderr


def test_cli_push_sends_nothing_for_a_damaged_folder_and_pushes_a_whole_one(tmp_path, processor):
    folder = tmp_path / "checkpoint"
    build_stock(folder, processor)
    cli = [sys.executable, "-m", "vlmcompress", "push", str(folder)]
    damaged = tmp_path / "damaged"
    build_stock(damaged, processor)
    weights = (damaged / "model.safetensors").read_bytes()
    (damaged / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with HubServer(tmp_path / "hub", token=TOKEN) as hub:
        # a damaged folder is refused before anything is sent, not even the repo creation
        r = subprocess.run([sys.executable, "-m", "vlmcompress", "push", str(damaged), "--repo-id", "user/broken"],
                           env=hub_env(tmp_path, hub.endpoint, TOKEN), capture_output=True, text=True, timeout=300)
        _assert_one_line_error(r, "damaged or truncated")
        assert hub.requests == [] and hub.commits == []
        r = subprocess.run(cli + ["--repo-id", "user/cli", "--private", "--revision", "dev", "--commit-message", "hello"],
                           env=hub_env(tmp_path, hub.endpoint, TOKEN), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert f"to {hub.endpoint}/user/cli/tree/dev" in r.stdout
        assert [(c["revision"], c["summary"]) for c in hub.commits] == [("dev", "hello")]
        assert hub.store.meta("user/cli")["private"] is True


def test_hand_written_card_is_pushed_as_it_is_and_a_missing_one_is_rendered(tmp_path, processor):
    from vlmcompress.hub import _operations

    folder = tmp_path / "checkpoint"
    build_stock(folder, processor)
    add = lambda path_in_repo, path_or_fileobj: (path_in_repo, path_or_fileobj)  # noqa: E731
    (folder / "README.md").write_text("# my own card\n")
    (tmp_path / "a").mkdir()
    ops = dict(_operations(folder, "user/x", tmp_path / "a", add))
    assert ops["README.md"] == str(folder / "README.md") and not list((tmp_path / "a").iterdir())
    (folder / "README.md").unlink()
    (tmp_path / "b").mkdir()
    ops = dict(_operations(folder, "user/x", tmp_path / "b", add))
    assert ops["README.md"] == str(tmp_path / "b" / "README.md") and not (folder / "README.md").exists()
    assert 'MODEL_ID = "user/x"' in (tmp_path / "b" / "README.md").read_text()


@pytest.mark.parametrize("damage, needle", [
    ("truncate-weights", "damaged or truncated"),
    ("truncate-config", "config.json is not valid JSON"),
    ("truncate-adapter", "lora/adapter_model.safetensors is damaged or truncated"),
    ("bad-report", "cannot be read"),
    ("no-config", "has no config.json"),
])
def test_push_checks_the_folder_before_sending_anything(tmp_path, processor, damage, needle):
    folder = tmp_path / "checkpoint"
    build_stock(folder, processor)
    (folder / "lora").mkdir()
    (folder / "lora" / "adapter_model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    target = {"truncate-weights": "model.safetensors", "truncate-config": "config.json",
              "truncate-adapter": "lora/adapter_model.safetensors", "bad-report": "compression_report.json",
              "no-config": "config.json"}[damage]
    data = (folder / target).read_bytes()
    if damage == "no-config":
        (folder / target).unlink()
    else:
        (folder / target).write_bytes(data[: len(data) // 2])
    # in this process, whose client is offline: a check made after any Hub call would fail with the offline error,
    # not with this line (a real client against a real server sends nothing: test_cli_push_sends_nothing_for_...)
    r = cli_in_process("push", folder, "--repo-id", "user/broken", env={"HF_TOKEN": TOKEN})
    _assert_one_line_error(r, needle)
