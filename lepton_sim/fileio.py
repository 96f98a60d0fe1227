"""Atomic file writes, the one way every output file (metrics, plans, reports, sweep tables) is written.

The data goes to a temporary file beside the target (`.NAME.RANDOM`, same directory so the rename
cannot cross file systems), is flushed and fsync'd, and is renamed over the target; the directory
is fsync'd after. A reader sees the old file or the new one, never half of one, and a failed write
leaves the old file as it was. The temporary file is created with mode 0666 minus the umask, the
permissions any other new file gets (`tempfile.mkstemp` would make it 0600).
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def output_file(out: str) -> Path:
    """The path given as `--out FILE`, checked before any work is done: not a directory, and in an
    existing directory this process may write to (InputError naming the problem otherwise)."""
    from lepton_sim.errors import InputError

    p = Path(out)
    if p.is_dir():
        raise InputError(f"--out {out}: is a directory, expected a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"--out {out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InputError(f"--out {out}: directory {parent} is not writable")
    return p


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write `data` (text is UTF-8 encoded) to `path` atomically, with the umask's permissions."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON with a final newline, atomically."""
    atomic_write(path, json.dumps(obj, indent=2) + "\n")


def _create_beside(path: Path) -> tuple[int, Path]:
    """A new, exclusively created temporary file in `path`'s directory (the umask applies to its mode)."""
    parent = path.parent
    for _ in range(100):
        tmp = parent / f".{path.name}.{secrets.token_hex(4)}"
        try:
            return os.open(tmp, _FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; not every platform can open a directory (Windows), so best effort."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
