"""Writes that are whole or absent: a folder is built in a temp sibling and moved into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output_dir(path, overwrite: bool = True):
    """Yield a temp folder beside ``path``; on success it replaces ``path``, on error it is removed.

    A failed command leaves neither a partial folder nor a damaged earlier result behind.
    """
    path = Path(path).resolve()
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"output path {path} exists and is not a folder")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {path} is not empty; pass --overwrite or choose another folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the result is an ordinary folder
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
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
