"""Writes that are whole or absent: a folder is built in a temp sibling and moved into place."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: the report every vlmcompress output folder holds at its root (``report`` reads and writes it)
REPORT_FILENAME = "compression_report.json"
#: write errors that mean "the disk or the folder refused", reported in one line with what was kept
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG}


#: the name of a folder ``atomic_output_dir`` is building (``.NAME.tmp-PID-XXXX``); group 1 is NAME
ATOMIC_TEMP_NAME = re.compile(r"^\.(.+)\.tmp-[A-Za-z0-9_-]+$")
#: the lock beside an output folder a live run holds (``.NAME.vlmcompress-lock``, holding its PID)
LOCK_NAME = re.compile(r"^\.(.+)\.vlmcompress-lock$")


def is_atomic_temp(folder) -> bool:
    """A folder ``atomic_output_dir`` is building, or the lock file of an output folder (``lock_output``)."""
    name = Path(folder).name
    return bool(ATOMIC_TEMP_NAME.match(name) or LOCK_NAME.match(name))


def _write_failure(exc) -> str | None:
    """What a failed write says, when the disk or the folder refused it (a full disk, a quota, no permission): an
    OSError, or a library's own error carrying the OS message (safetensors' writer raises SafetensorError)."""
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        return exc.strerror or str(exc)
    text = str(exc)
    for errnum in _WRITE_ERRNOS:
        message = os.strerror(errnum)
        if message in text or f"os error {errnum})" in text:
            return message
    return None


def _temp_prefix(path: Path, kind: str) -> str:
    return f".{path.name}.{kind}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: resolved output path -> the open lock file this process holds (a flock on it: the kernel drops it when the process
#: dies, so a killed run's lock is never stale)
_HELD_LOCKS: dict = {}


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.vlmcompress-lock")


def lock_output(path) -> None:
    """Hold the lock on output folder ``path`` for this process (re-entrant) until ``release_output`` or exit; a
    folder another live run holds is refused in one line naming its PID. Only rank 0 of a distributed launch locks
    (the other ranks write nothing there). Without ``fcntl`` (Windows) nothing is locked."""
    from .errors import VlmcompressError

    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return
    path = Path(path).expanduser().resolve()
    if int(os.environ.get("RANK", "0")) != 0 or str(path) in _HELD_LOCKS:
        return
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    if not _HELD_LOCKS:
        import atexit

        atexit.register(_release_all)  # a command's locks go with it (a killed one's flock goes with the process)
    lock = _lock_path(path)
    for _ in range(10):
        handle = open(lock, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise VlmcompressError(f"output folder {path} is being written by another vlmcompress run (PID {holder}): "
                                   "wait for it to finish, or choose another folder") from None
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file its last holder removed between our open and our flock
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            _HELD_LOCKS[str(path)] = handle
            return
        handle.close()
    raise VlmcompressError(f"could not lock the output folder {path}: its lock file {lock} keeps changing")


def release_output(path) -> None:
    """Give up this process's lock on output folder ``path`` (nothing if it holds none) and remove the lock file."""
    path = Path(path).expanduser().resolve()
    handle = _HELD_LOCKS.pop(str(path), None)
    if handle is None:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_lock_path(path))  # before unlocking: a waiting run then finds no file, or a new one
    handle.close()


def _release_all() -> None:
    for path in list(_HELD_LOCKS):
        release_output(path)


@contextlib.contextmanager
def releasing_outputs():
    """Release, after the block, every output-folder lock taken in it (a command, a distillation, an atomic write);
    a lock this process held before the block stays held."""
    before = set(_HELD_LOCKS)
    try:
        yield
    finally:
        for path in [p for p in _HELD_LOCKS if p not in before]:
            release_output(path)


def clean_stale_temps(path) -> list[Path]:
    """Remove the temp folders (``.NAME.tmp-PID-*``) a killed run left beside ``path``, and put back an earlier result
    it had moved aside (``.NAME.old-PID``) if it died before the new one moved in; a live run's are kept. Returns
    what was removed."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for kind in ("tmp", "old"):
        prefix = _temp_prefix(path, kind)
        for candidate in path.parent.glob(prefix + "*"):
            pid = candidate.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
                continue
            if pid.isdigit() and int(pid) == os.getpid():
                continue
            if kind == "old" and not path.exists():
                os.replace(candidate, path)  # killed between moving the old result aside and the new one in: restore
                continue
            shutil.rmtree(candidate, ignore_errors=True) if candidate.is_dir() else candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


#: what vlmcompress writes into an output folder: weights, configs, processor and tokenizer files, the report, the
#: card and its plots, the remote modeling file, a LoRA adapter folder, a recipe's Trainer checkpoints and logs
_OUR_FILES = re.compile(r"^(.+\.(safetensors|bin|json|png|md|onnx)|modeling_vlmcompress\.py|vocab\.txt|merges\.txt|"
                        r"spiece\.model|sentencepiece\.bpe\.model|training_args\.bin|recipe\.yaml)$")
_OUR_FOLDERS = re.compile(r"^(lora|runs|checkpoint-\d+)$")


def foreign_entries(folder) -> list[str]:
    """Names in ``folder`` that vlmcompress does not write (a user's own files), sorted."""
    out = []
    for entry in Path(folder).iterdir():
        if is_atomic_temp(entry):
            continue
        ours = _OUR_FOLDERS.match(entry.name) if entry.is_dir() else _OUR_FILES.match(entry.name)
        if not ours:
            out.append(entry.name)
    return sorted(out)


def trainer_checkpoints(folder, complete: bool = False) -> list[Path]:
    """The Trainer's ``checkpoint-N`` folders in ``folder``, by step; ``complete``: only those holding their
    ``trainer_state.json`` (a run killed while the Trainer wrote one leaves it without)."""
    found = [e for e in Path(folder).iterdir() if e.is_dir() and re.match(r"^checkpoint-\d+$", e.name)
             and (not complete or (e / "trainer_state.json").is_file())]
    return sorted(found, key=lambda e: int(e.name.split("-")[1]))


def is_vlmcompress_output(folder) -> bool:
    """A folder vlmcompress wrote: its ``compression_report.json`` is one of ours (or it holds nothing but a training
    recipe's resumable Trainer checkpoints), and nothing in it is a file vlmcompress does not write."""
    import json

    folder = Path(folder)
    if foreign_entries(folder):
        return False
    report = folder / REPORT_FILENAME
    if report.is_file():
        try:
            data = json.loads(report.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and "vlmcompress_version" in data and "format_version" in data
    entries = [e for e in folder.iterdir() if not is_atomic_temp(e)]
    # a run killed while the Trainer wrote a checkpoint leaves that one without its trainer_state.json: still the
    # Trainer's folder, as long as a complete checkpoint sits beside it
    checkpoints = trainer_checkpoints(folder)
    return bool(trainer_checkpoints(folder, complete=True)) and all(e in checkpoints or e.name == "runs"
                                                                   for e in entries)


def _protected(path: Path) -> str | None:
    cwd = Path.cwd().resolve()
    if path == Path(path.anchor):
        return "the root folder"
    home = Path.home().resolve()
    if path == home:
        return "the home folder"
    if path in home.parents:
        return "a parent of the home folder"
    if path == cwd:
        return "the current folder"
    if path in cwd.parents:
        return "a parent of the current folder"
    return None


def resolve_output_path(path, *, refusal: str) -> Path:
    """The resolved output path, or a one-line error: empty, a folder no command may write into (the root, home or
    current folder or a parent of them: ``refusal``, formatted with ``given`` and ``why``), or an existing file."""
    from .errors import VlmcompressError

    if path is None or not str(path).strip():
        raise VlmcompressError("the output folder is empty: name a new folder, e.g. --output-dir outputs/NAME")
    given = str(path)
    resolved = Path(given).expanduser().resolve()
    why = _protected(resolved)
    if why is not None:
        raise VlmcompressError(refusal.format(given=given, why=why))
    if resolved.exists() and not resolved.is_dir():
        raise VlmcompressError(f"output path {given} exists and is a file: name a folder")
    return resolved


def check_output_dir(path, *, overwrite: bool = False, flag: str = "--overwrite") -> Path:
    """The resolved output folder, or a one-line error before any work starts.

    vlmcompress never destroys what a user owns: an existing folder is replaced only when it is a vlmcompress output
    (``is_vlmcompress_output``) *and* ``overwrite`` is set; a folder holding anything else is refused whatever the
    flag, and so are the current folder, its parents, the home folder and ``/``. Temp folders a killed run left
    beside ``path`` are cleaned up.
    """
    from .errors import VlmcompressError

    given = str(path)
    resolved = resolve_output_path(path, refusal="refusing to write the checkpoint into {given!r}: it is {why}, and "
                                   "vlmcompress replaces its output folder whole; name a new folder, e.g. outputs/NAME")
    parent = resolved.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VlmcompressError(f"cannot write into {parent}: permission denied; choose a folder you can write to")
    held = str(resolved) in _HELD_LOCKS
    lock_output(resolved)  # a folder another live run writes: refused here, before any work
    try:
        clean_stale_temps(resolved)
        if resolved.is_dir() and any(resolved.iterdir()):
            if not is_vlmcompress_output(resolved):
                names = foreign_entries(resolved) or sorted(p.name for p in resolved.iterdir())
                shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                raise VlmcompressError(f"output folder {given} holds files vlmcompress did not write ({shown}); "
                                       "vlmcompress only ever replaces its own output folders: choose another folder")
            if not overwrite:
                raise VlmcompressError(f"output folder {given} holds an earlier vlmcompress result: pass {flag} to "
                                       "replace it, or choose another folder")
    except BaseException:
        if not held:
            release_output(resolved)
        raise
    return resolved


@contextlib.contextmanager
def atomic_output_dir(path, overwrite: bool = False, flag: str = "--overwrite"):
    """Yield a temp folder beside ``path``; on success it replaces ``path`` whole, on error it is removed.

    ``path`` is checked by ``check_output_dir`` (call it yourself before the work, too, so a bad path fails at
    once). A failed or killed command leaves neither a partial folder nor a damaged earlier result behind; a full
    disk is one line saying the earlier result is intact.
    """
    from .errors import VlmcompressError

    with releasing_outputs():
        path = check_output_dir(path, overwrite=overwrite, flag=flag)
        yield from _atomic_write(path, overwrite)


def _atomic_write(path: Path, overwrite: bool):
    from .errors import VlmcompressError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_temp_prefix(path, 'tmp')}{os.getpid()}-", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the result is an ordinary folder
    except OSError as exc:
        raise VlmcompressError(f"cannot create the output folder {path}: {exc.strerror or exc}") from None
    try:
        yield tmp
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = _write_failure(exc)
        if reason is not None:
            kept = "the earlier result there is intact" if path.exists() else "nothing was written there"
            raise VlmcompressError(f"could not write {path}: {reason}; {kept}") from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists() and any(path.iterdir()) and not (overwrite and is_vlmcompress_output(path)):
        # something appeared there while we worked: never replace it; the result stays in the temp folder
        keep = path.with_name(f"{path.name}.new-{os.getpid()}")
        os.replace(tmp, keep)
        raise VlmcompressError(f"output folder {path} was filled by something else while this run worked: the new "
                               f"result is in {keep}")
    old = None
    if path.exists():
        old = path.with_name(f"{_temp_prefix(path, 'old')}{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class JsonConfig:
    """to_dict / from_dict / save / load for a method's config dataclass, kept as ``folder/<filename>``.

    Subclasses set ``filename``, ``kind`` (the word in "unknown <kind> option(s)") and ``command`` (the vlmcompress
    command that writes the file).
    """

    filename: str = ""
    kind: str = ""
    command: str = ""

    def to_dict(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self)

    def effective(self) -> dict:
        """Every setting as it took effect, the library's defaults filled in where a field leaves them to it: what a
        report records (``effective_settings``) so that a committed result can be checked against today's
        defaults."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, data: dict):
        import dataclasses

        from .errors import VlmcompressError

        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise VlmcompressError(f"unknown {cls.kind} option(s) {', '.join(sorted(unknown))}")
        return cls(**data)

    @classmethod
    def load(cls, folder):
        import json

        from .errors import VlmcompressError

        path = Path(folder) / cls.filename
        if not path.is_file():
            raise VlmcompressError(f"{folder} has no {cls.filename}: expected a folder written by vlmcompress {cls.command}")
        return cls.from_dict(json.loads(path.read_text()))

    def save(self, folder) -> None:
        import json

        atomic_write_text(Path(folder) / self.filename, json.dumps(self.to_dict(), indent=2) + "\n")
