"""Distilling from data that is streamed: WebDataset shards written in the test from the embedded split, read as a
``datasets.IterableDataset``, split across processes by whole shards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlmcompress import VlmcompressError, read_report

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--max_steps", "2", "--per_device_train_batch_size", "16", "--importance", "magnitude", "--logging_steps", "1",
         "--disable_tqdm", "true", "--skip_eval", "true"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from vlmcompress.embedded import digits

    folder = tmp_path_factory.mktemp("shards")
    digits.write_shards(folder, images_per_number=2, samples_per_shard=50)  # 180 samples in 4 shards
    return folder


def test_write_shards_refuses_a_folder_that_holds_files(tmp_path):
    """Shards of an earlier, larger write left in the folder would be streamed with the new ones: a folder that holds
    anything is refused and left as it was, and nothing temporary is left beside it."""
    from vlmcompress.embedded import digits
    from vlmcompress.errors import VlmcompressError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(VlmcompressError, match="new or empty folder.*already holds files"):
        digits.write_shards(mine, images_per_number=1, samples_per_shard=50)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    paths = digits.write_shards(tmp_path / "new" / "shards", images_per_number=1, samples_per_shard=50)
    assert [p.name for p in paths] == [f"digits-train-{i:05d}.tar" for i in range(2)] and all(p.is_file() for p in paths)


def test_the_embedded_split_as_webdataset_shards(shards):
    import tarfile

    tars = sorted(shards.glob("*.tar"))
    assert [p.name for p in tars] == [f"digits-train-{i:05d}.tar" for i in range(4)]
    keys = []
    for path in tars:
        with tarfile.open(path) as tar:
            names = tar.getnames()
        assert len(names) == 3 * (30 if path == tars[-1] else 50)
        assert [n.split(".")[1] for n in names[:3]] == ["png", "txt", "cls"] and len({n.split(".")[0] for n in names[:3]}) == 1
        keys += sorted({n.split(".")[0] for n in names})
    assert sorted(keys) == [f"train-{i:07d}" for i in range(180)]  # every sample once
    assert keys[:50] != [f"train-{i:07d}" for i in range(50)]  # shuffled before sharding (the split is by number)
    assert not list(shards.glob(".*"))  # no temporary file left


def test_a_shard_folder_streams_with_image_and_caption_columns(shards):
    from vlmcompress.data.streaming import head, is_streamed, open_stream, shard_files

    assert shard_files(str(shards))[0] == "webdataset" and is_streamed(str(shards))
    assert shard_files(str(shards / "*.tar"))[1] == [str(p) for p in sorted(shards.glob("*.tar"))]
    stream = open_stream(str(shards), seed=0, shuffle_buffer=20)
    rows = list(stream)
    assert {"image", "text", "label", "__key__", "__url__"} == set(rows[0]) and stream.n_shards == 4
    keys = [row["__key__"] for row in rows]
    assert len(keys) == len(set(keys)) == 180  # every sample once per pass, shuffled
    assert keys != sorted(keys)
    first = head(stream, 8)
    assert len(first) == 8 and first[0]["image"].size == (56, 56) and first[0]["text"]


def test_streaming_errors_are_one_line(shards, tmp_path):
    from vlmcompress.data.streaming import check_shards, open_stream, shard_files

    (tmp_path / "mixed").mkdir()
    for name in ("a.tar", "b.parquet"):
        (tmp_path / "mixed" / name).write_bytes(b"")
    with pytest.raises(VlmcompressError, match="expected shards of one kind"):
        shard_files(str(tmp_path / "mixed"))
    with pytest.raises(VlmcompressError, match="no file matches"):
        shard_files(str(tmp_path / "none-*.tar"))
    with pytest.raises(VlmcompressError, match="give at least 8 shards"):
        check_shards(open_stream(str(shards)), 8, str(shards))
    import io
    import tarfile

    (tmp_path / "images-only").mkdir()
    with tarfile.open(tmp_path / "images-only" / "a.tar", "w") as tar:  # no KEY.txt: no caption
        png = (shards / "digits-train-00000.tar").open("rb")
        with tarfile.open(fileobj=png) as source:
            member = next(m for m in source.getmembers() if m.name.endswith(".png"))
            tar.addfile(member, io.BytesIO(source.extractfile(member).read()))
    with pytest.raises(VlmcompressError, match=r"has no column\(s\) text .*KEY.txt"):
        open_stream(str(tmp_path / "images-only"))


def test_distill_from_streamed_shards(shards, tmp_path, monkeypatch):
    """``run_distillation(argv)`` in this process, on the shards: the report says it streamed; every sample it trained
    on is one of the shards' (the collator logs the keys)."""
    from transformers import CLIPModel

    from vlmcompress.workflows.distill import run_distillation

    keys = tmp_path / "keys"
    keys.mkdir()
    monkeypatch.setenv("VLMCOMPRESS_LOG_SAMPLE_KEYS", str(keys))
    threads = torch.get_num_threads()
    try:
        assert run_distillation([*SMALL, "--dataset_name", str(shards), "--output_dir", str(tmp_path / "s")]) == 0
    finally:
        torch.set_num_threads(threads)
    report = read_report(tmp_path / "s")
    assert report["steps"][-1]["data"] == {"streamed": True, "shards": 4, "shuffle_buffer": 1000}
    assert report["steps"][-1]["training"]["global_step"] == 2
    seen = (keys / "keys-0.txt").read_text().split()
    assert len(seen) >= 2 * 16 and all(k.startswith("train-") for k in seen) and len(set(seen)) == len(seen)
    CLIPModel.from_pretrained(tmp_path / "s")


@pytest.mark.parametrize("args,message", [
    (["--max_steps", "-1"], "streamed training data has no length: give --max_steps"),
    (["--cache_teacher", "true"], "streamed data runs the teacher on the fly"),
])
def test_streaming_refuses_before_any_work(shards, tmp_path, capsys, args, message):
    from vlmcompress.workflows.distill import run_distillation

    argv = [*SMALL, "--dataset_name", str(shards), "--output_dir", str(tmp_path / "s"), *args]
    assert run_distillation(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "s").exists()


@pytest.mark.distributed
def test_two_processes_read_disjoint_shards(shards, tmp_path):
    """``accelerate launch`` with two real processes: each reads whole shards of its own (the sample keys each
    trained on do not overlap), and the student saves whole and reloads."""
    from transformers import CLIPModel

    keys = tmp_path / "keys"
    keys.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", VLMCOMPRESS_LOG_SAMPLE_KEYS=str(keys), VLMCOMPRESS_NO_PROGRESS="1")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
           "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "vlmcompress.cli", "distill", *SMALL,
           "--dataset_name", str(shards), "--output_dir", str(tmp_path / "ddp")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    first, second = ((keys / f"keys-{rank}.txt").read_text().split() for rank in (0, 1))
    assert len(first) >= 2 * 16 and len(second) >= 2 * 16
    assert not set(first) & set(second)
    shard_of = {}
    import tarfile

    for tar_path in sorted(shards.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            shard_of.update({name.split(".")[0]: tar_path.name for name in tar.getnames()})
    assert not {shard_of[k] for k in first} & {shard_of[k] for k in second}  # whole shards each
    report = read_report(tmp_path / "ddp")
    assert report["steps"][-1]["processes"] == 2 and report["steps"][-1]["data"]["streamed"] is True
    CLIPModel.from_pretrained(tmp_path / "ddp")


def _losses(report) -> list:
    return [round(row["loss"], 4) for row in report["steps"][-1]["training"]["loss_log"] if "loss" in row]


def test_teacher_store_gives_the_on_the_fly_students_losses(shards, tmp_path):
    """``vlmcompress cache-teacher`` (fp32) then ``distill --teacher_store``: the same losses, step by step, as the
    run that computes the teacher's embeddings on the fly; a store with other embeddings gives other losses (it is
    what the run reads)."""
    import json

    import numpy as np

    from vlmcompress.cli import main
    from vlmcompress.workflows.distill import run_distillation

    store = tmp_path / "store"
    assert main(["cache-teacher", "--data", str(shards), "-o", str(store), "--dtype", "float32"]) == 0
    assert sorted(p.name for p in store.iterdir()) == [f"digits-train-{i:05d}.npz" for i in range(4)] + ["store.json"]
    meta = json.loads((store / "store.json").read_text())
    assert meta["dtype"] == "float32" and len(meta["teacher_fingerprint"]) == 16
    threads = torch.get_num_threads()
    runs = {}
    try:
        for name, extra in (("fly", []), ("store", ["--teacher_store", str(store)])):
            assert run_distillation([*SMALL, "--dataset_name", str(shards), *extra,
                                     "--output_dir", str(tmp_path / f"student-{name}")]) == 0
            runs[name] = read_report(tmp_path / f"student-{name}")
        assert runs["store"]["steps"][-1]["data"]["teacher_store"] == str(store)
        # equal up to the logged rounding: the store's embeddings come from batches of 256, the run's from its own
        # batches, and a CPU may sum those in another order (seen on an AMD EPYC: 9.3642 against 9.3643)
        assert _losses(runs["store"]) == pytest.approx(_losses(runs["fly"]), abs=2e-4) and len(_losses(runs["fly"])) == 2
        for path in store.glob("*.npz"):  # same keys, other embeddings
            with np.load(path) as data:
                np.savez(path, keys=data["keys"], image=-data["image"], text=data["text"])
        assert run_distillation([*SMALL, "--dataset_name", str(shards), "--teacher_store", str(store),
                                 "--output_dir", str(tmp_path / "flipped")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert _losses(read_report(tmp_path / "flipped")) != pytest.approx(_losses(runs["fly"]), abs=2e-4)


def test_teacher_store_resumes_shard_by_shard_and_refuses_what_does_not_match(shards, tmp_path, capsys):
    import json

    from vlmcompress.distillation.store import write_store
    from vlmcompress.loading import load_checkpoint
    from vlmcompress.workflows.distill import run_distillation

    teacher, processor, _ = load_checkpoint()
    store = tmp_path / "store"
    lines = []
    write_store(teacher, processor, str(shards), store, log=lines.append)
    assert len(lines) == 4
    (store / "digits-train-00002.npz").unlink()  # as a killed run leaves it, with its half-written file
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = store / f".digits-train-00002.npz.tmp-{int(dead.stdout)}.npz"
    live = store / f".digits-train-00003.npz.tmp-{os.getppid()}.npz"  # another writer, still running
    killed.write_bytes(b"partial")
    live.write_bytes(b"partial")
    lines.clear()
    write_store(teacher, processor, str(shards), store, log=lines.append)
    assert lines == ["teacher store: digits-train-00002.npz (50 samples)"]
    assert not killed.exists() and live.exists()
    live.unlink()
    with pytest.raises(VlmcompressError, match="another dtype"):
        write_store(teacher, processor, str(shards), store, dtype="float32")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    with pytest.raises(VlmcompressError, match="is not a teacher store"):
        write_store(teacher, processor, str(shards), tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]

    def refused(extra, store_json=None):
        if store_json is not None:
            (store / "store.json").write_text(json.dumps(store_json))
        argv = [*SMALL, "--output_dir", str(tmp_path / "s"), *extra]
        assert run_distillation(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and not (tmp_path / "s").exists()
        return err[0]

    capsys.readouterr()  # what loading the teacher above printed (a progress bar when the test runs alone)
    assert "--teacher_store reads the embeddings of streamed shards" in refused(["--teacher_store", str(store)])
    meta = json.loads((store / "store.json").read_text())
    shards_args = ["--dataset_name", str(shards), "--teacher_store", str(store)]
    assert "written by another teacher" in refused(shards_args, {**meta, "teacher_fingerprint": "0" * 16})
    assert "another preprocessing (padding differ)" in refused(shards_args, {**meta, "padding": {"padding": "max_length"}})
    (store / "store.json").write_text(json.dumps(meta))
    (store / "digits-train-00003.npz").unlink()
    assert "no embeddings for 1 of the data's shards" in refused(shards_args)
    assert "hidden" in refused([*shards_args, "--hidden_weight", "1"])
    (tmp_path / "parquet").mkdir()
    (tmp_path / "parquet" / "a.parquet").write_bytes(b"")
    with pytest.raises(VlmcompressError, match="needs .tar shards"):
        write_store(teacher, processor, str(tmp_path / "parquet"), tmp_path / "other-store")


@pytest.mark.slow
def test_a_killed_streamed_run_resumes_from_its_checkpoint_with_the_uninterrupted_runs_losses(shards, tmp_path):
    """A streamed run killed (SIGKILL) after a checkpoint, rerun with --resume_from_checkpoint: the Trainer replays the
    stream to the checkpoint's position, so every step after it trains on the samples, and has the loss, of the
    same run left uninterrupted (no sample repeated or skipped)."""
    import json
    import signal
    import time

    args = ["--max_steps", "12", "--per_device_train_batch_size", "16", "--importance", "magnitude",
            "--logging_steps", "1", "--disable_tqdm", "true", "--skip_eval", "true", "--save_strategy", "steps",
            "--save_steps", "2", "--dataset_name", str(shards), "--shuffle_buffer", "64"]
    env = dict(os.environ, OMP_NUM_THREADS="1", VLMCOMPRESS_NO_PROGRESS="1")

    def distill(out, *extra, **kw):
        return subprocess.Popen([sys.executable, "-m", "vlmcompress.cli", "distill", *args, "--output_dir", str(out),
                                 *extra], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)

    whole = distill(tmp_path / "whole")
    killed = tmp_path / "killed"
    run = distill(killed)
    deadline = time.time() + 600
    while not (killed / "checkpoint-4" / "trainer_state.json").is_file() and run.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert whole.wait(timeout=900) == 0, whole.stderr.read()[-3000:]
    checkpoints = sorted(killed.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    last = [p for p in checkpoints if (p / "trainer_state.json").is_file()][-1]
    at = int(last.name.split("-")[1])
    assert 4 <= at < 12 and not (killed / "compression_report.json").exists()  # killed part-way: no report
    resumed = distill(killed, "--resume_from_checkpoint", str(last))
    assert resumed.wait(timeout=900) == 0, resumed.stderr.read()[-3000:]

    def losses(folder):
        log = json.loads((folder / "compression_report.json").read_text())["steps"][-1]["training"]["loss_log"]
        return {row["step"]: round(row["loss"], 4) for row in log if "loss" in row}

    after = {step: loss for step, loss in losses(killed).items() if step > at}
    assert sorted(after) == list(range(at + 1, 13))
    assert after == {step: loss for step, loss in losses(tmp_path / "whole").items() if step > at}


def test_the_tar_reader_reads_what_tarfile_reads_and_names_a_bad_shard(tmp_path):
    """Shards are read header by header (tarfile's per-member objects were a third of a streamed run's data loading):
    the same members as tarfile in the ustar, GNU and pax formats (long and non-ASCII names, directories, a member
    over one block), compressed tars through tarfile, and a corrupt or truncated shard is one line naming it."""
    import gzip
    import io
    import tarfile

    from vlmcompress.data.streaming import _tar_files, _tar_samples, _tarfile_files
    from vlmcompress.errors import VlmcompressError

    long_name = "n" * 120 + "/k.txt"
    for fmt, names in ((tarfile.USTAR_FORMAT, ["a.png", "sub/a.txt", "p/" * 60 + "b.txt"]),
                       (tarfile.GNU_FORMAT, ["a.png", "a.txt", long_name]),
                       (tarfile.PAX_FORMAT, ["a.png", "é/ü.txt", long_name])):
        path = tmp_path / f"{fmt}.tar"
        with tarfile.open(path, "w", format=fmt) as tar:
            folder = tarfile.TarInfo("folder")
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
            for i, name in enumerate(names):
                data = bytes(range(256)) * (1 + 7 * i)
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        assert list(_tar_files(str(path))) == list(_tarfile_files(str(path))) and len(list(_tar_files(str(path)))) == 3
    gz = tmp_path / "gz.tar"
    gz.write_bytes(gzip.compress((tmp_path / f"{tarfile.PAX_FORMAT}.tar").read_bytes()))
    assert [k for k, _ in _tar_samples(str(gz))] == ["a", "é/ü", "n" * 120 + "/k"]
    broken = bytearray((tmp_path / f"{tarfile.GNU_FORMAT}.tar").read_bytes())
    broken[600] ^= 0xFF  # inside the second header
    (tmp_path / "broken.tar").write_bytes(bytes(broken))
    with pytest.raises(VlmcompressError, match=r"broken\.tar is not a valid tar: bad header at byte 512"):
        list(_tar_files(str(tmp_path / "broken.tar")))
    cut = (tmp_path / f"{tarfile.GNU_FORMAT}.tar").read_bytes()[:1100]  # inside the first file's data
    (tmp_path / "cut.tar").write_bytes(cut)
    with pytest.raises(VlmcompressError, match=r"cut\.tar is truncated"):
        list(_tar_files(str(tmp_path / "cut.tar")))
