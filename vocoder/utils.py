"""Small shared helpers."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import torch

__all__ = ["atomic_open", "atomic_torch_save", "atomic_write_bytes"]


@contextlib.contextmanager
def atomic_open(path: "os.PathLike | str") -> Iterator[BinaryIO]:
    """``with atomic_open(path) as f: f.write(...)``: ``path`` ends up holding either its old content or all
    of the new, never a torn file.

    Writes go to a temporary file in the same folder (so the rename stays on one file system), which is
    flushed, fsync'ed and renamed over ``path`` when the block ends; on any error it is removed instead.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(data: bytes, path: "os.PathLike | str") -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_torch_save(obj: Any, path: "os.PathLike | str") -> None:
    """``torch.save`` through a temporary file in the same folder and an atomic rename."""
    with atomic_open(path) as f:
        torch.save(obj, f)
