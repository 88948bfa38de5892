"""Single files: their sha256, and replacing one atomically (the baseline, recordings, a merged report)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def file_sha256(path: Path) -> str:
    """The sha256 of the file's bytes, in hex: how runs tell whether they read the same fixture."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def replace_file(path: Path, content: bytes) -> None:
    """Write ``content`` as ``path``: readers see the old file or the new one, never a part.

    The bytes go to a uniquely named file beside ``path`` (two writers never share it), are
    flushed to disk, then renamed over ``path``, which keeps its permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            shutil.copymode(path, staging)
        else:
            os.chmod(staging, 0o644)  # mkstemp's 0o600 would hide the file from the rest of the team
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise
