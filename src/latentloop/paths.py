"""Output paths: every command that writes a folder (or a file into one) checks it here first, so a path under an
existing file or in a read-only folder ends in one line before any work starts, not in a traceback at the end.

``check_output_dir`` only looks (nothing is created, so a later failure leaves no empty folders behind);
``ensure_output_dir`` looks, then creates the folder. The ``*_file`` variants do the same for a file's folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from latentloop.errors import DataError, LatentloopError


def output_dir_problem(path: str | Path) -> str | None:
    """Why `path` cannot be (or become) a writable folder, or None when it can: the path or one of its ancestors
    is an existing file, or the nearest existing folder on the way is not writable."""
    path = Path(path)
    for existing in (path, *path.parents):
        if not existing.exists():  # also False below a file (ENOTDIR): the file itself is found further up
            continue
        if not existing.is_dir():
            return "it is a file, not a folder" if existing == path else f"{existing} is a file, not a folder"
        if not os.access(existing, os.W_OK | os.X_OK):
            return "it is not writable" if existing == path else f"{existing} is not writable"
        return None
    return None


def _fail(error: type[LatentloopError], path: Path, reason: str, what: str, hint: str) -> LatentloopError:
    return error(f"cannot write to {what + ' ' if what else ''}{path}: {reason}{'; ' + hint if hint else ''}")


def check_output_dir(path: str | Path, *, what: str = "", hint: str = "",
                     error: type[LatentloopError] = DataError) -> Path:
    """Raise `error` ("cannot write to [what ]PATH: REASON[; hint]") unless `path` can be a writable folder."""
    path = Path(path)
    reason = output_dir_problem(path)
    if reason is not None:
        raise _fail(error, path, reason, what, hint)
    return path


def ensure_output_dir(path: str | Path, *, what: str = "", hint: str = "",
                      error: type[LatentloopError] = DataError) -> Path:
    """check_output_dir, then create the folder (and its parents); a failure to create it is the same one line."""
    path = check_output_dir(path, what=what, hint=hint, error=error)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(error, path, exc.strerror or str(exc), what, hint) from None
    return path


def check_output_file(path: str | Path, *, what: str = "", hint: str = "",
                      error: type[LatentloopError] = DataError) -> Path:
    """Raise `error` unless a file can be written at `path`: its folder passes check_output_dir and the path is
    not an existing folder."""
    path = Path(path)
    if path.is_dir():
        raise _fail(error, path, "it is a folder, not a file", what, hint)
    reason = output_dir_problem(path.parent)
    if reason is not None:
        if reason.startswith("it "):  # the folder itself, named from the file's point of view
            reason = f"{path.parent} {reason[3:]}"
        raise _fail(error, path, reason, what, hint)
    return path


def ensure_output_file(path: str | Path, *, what: str = "", hint: str = "",
                       error: type[LatentloopError] = DataError) -> Path:
    """check_output_file, then create the file's folder; returns the file's path."""
    path = check_output_file(path, what=what, hint=hint, error=error)
    ensure_output_dir(path.parent, what=what, hint=hint, error=error)
    return path
