"""Output folders are locked while a run writes them: a second run into a folder a live run holds is refused at once
in one line naming the holder's PID; a killed holder's lock is free again (the kernel drops a flock with its
process). Real processes: the holder is a separate Python interpreter; the refused and the later command run through
the CLI in this process (a flock held by another process refuses it the same way)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_in_process

HOLD = """
import sys, time
from vlmcompress.{module} import {function}
{function}(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def _holder(folder: Path, module: str = "io", function: str = "lock_output"):
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(module=module, function=function), str(folder)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _refused(r, pid: int):
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("[transformers]")]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and "being written by another vlmcompress run" in lines[0] and f"PID {pid}" in lines[0], r.stderr


def _recipe(tmp_path, model, out: Path, ratio: float) -> Path:
    path = tmp_path / f"r{ratio}.yaml"
    path.write_text(f"model: {model}\noutput_dir: {out}\neval: {{latency_rounds: 1, latency_batch_size: 2}}\n"
                    f"stages:\n  - prune: {{head_ratio: {ratio}, importance: magnitude}}\n")
    return path


def test_a_second_recipe_run_into_a_live_runs_output_dir_is_refused_at_once(tiny_clip_dir, tmp_path):
    from vlmcompress.io import release_output
    from vlmcompress.workflows.compress import check_pipeline_dir

    out = tmp_path / "pipeline"
    holder = _holder(out, "workflows.compress", "check_pipeline_dir")  # a live `compress` into out
    try:
        r = cli_in_process("compress", str(_recipe(tmp_path, tiny_clip_dir, out, 0.5)))
        _refused(r, holder.pid)
        assert not out.exists() or not any(out.iterdir()), "the refused run wrote nothing"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    # the holder died without releasing: its lock went with it, and the next run takes the folder
    check_pipeline_dir(out)
    release_output(out)
    assert not (tmp_path / ".pipeline.vlmcompress-lock").exists(), "a released lock leaves no file"


def test_a_command_into_a_folder_a_live_run_holds_is_refused_and_takes_it_once_the_holder_died(tiny_clip_dir, tmp_path):
    out = tmp_path / "pruned"
    holder = _holder(out)
    try:
        r = cli_in_process("prune", tiny_clip_dir, "--head-ratio", "0.25", "--importance", "magnitude", "-o", str(out),
                           "--no-eval")
        _refused(r, holder.pid)
        assert not out.exists()
    finally:
        holder.terminate()  # killed by a signal: its flock goes with it, its lock file stays behind
        holder.wait()
    r = cli_in_process("prune", tiny_clip_dir, "--head-ratio", "0.25", "--importance", "magnitude", "-o", str(out),
                       "--no-eval")
    assert r.returncode == 0, r.stderr
    assert (out / "compression_report.json").is_file() and not (tmp_path / ".pruned.vlmcompress-lock").exists()


def test_the_lock_is_reentrant_in_one_process_and_released_after_a_refusal(tmp_path):
    from vlmcompress.errors import VlmcompressError
    from vlmcompress.io import _HELD_LOCKS, atomic_output_dir, check_output_dir

    out = tmp_path / "x"
    (out).mkdir()
    (out / "mine.txt").write_text("a user's file")
    with pytest.raises(VlmcompressError, match="did not write"):
        check_output_dir(out)
    assert str(out.resolve()) not in _HELD_LOCKS, "a refused check does not keep the lock"
    fresh = tmp_path / "y"
    check_output_dir(fresh)  # a command's early check takes the lock ...
    with atomic_output_dir(fresh) as tmp:  # ... and its write, in the same process, goes through
        (Path(tmp) / "compression_report.json").write_text("{}")
    assert (fresh / "compression_report.json").is_file()
