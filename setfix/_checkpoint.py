"""Checkpoints: `eqx.tree_serialise_leaves` of any pytree, with clear errors; and the
training state of `fit` as a checkpoint plus a manifest that vouches for it."""

import hashlib
import json
import pathlib
from typing import Any, TypeVar

import equinox as eqx


T = TypeVar("T")


def save_checkpoint(path: str | pathlib.Path, tree: T) -> pathlib.Path:
    """Writes the array leaves of `tree` (e.g. `(model, opt_state, epoch)`) to `path`,
    atomically (a partly written file never replaces a good one). Returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        eqx.tree_serialise_leaves(partial, tree)
        partial.replace(path)
    except Exception as error:  # OSError, or Equinox's wrapping of one
        partial.unlink(missing_ok=True)
        raise OSError(f"could not write checkpoint `{path}` ({_cause(error)}); any "
                      "previous checkpoint there is unchanged.") from error
    return path


def _cause(error: BaseException) -> str:
    """The innermost cause of an error, e.g. `OSError: [Errno 28] No space left`."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}"


def _atomic_write_text(path: pathlib.Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(text)
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise OSError(f"could not write `{path}` ({_cause(error)}).") from error


def _digest(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_path(path: pathlib.Path) -> pathlib.Path:
    """Where the manifest of checkpoint `path` goes: beside it, `<name>.json`."""
    return path.with_name(path.name + ".json")


def save_training_state(path: pathlib.Path, state: Any, history: list) -> None:
    """Writes `fit`'s state to `path`, then its manifest (the history and the SHA-256 of
    the checkpoint), each atomically. The manifest is written last: a process stopped
    between the two writes leaves a checkpoint that its manifest does not vouch for,
    which `load_training_state` detects."""
    save_checkpoint(path, state)
    manifest = {"history": history, "checkpoint_sha256": _digest(path)}
    _atomic_write_text(manifest_path(path), json.dumps(manifest, indent=1))


def load_training_state(path: pathlib.Path, like: T) -> tuple[T, list]:
    """Reads what `save_training_state` wrote: `(state, history)`. Raises `ValueError`
    naming the file when the manifest is missing, unreadable or does not match the
    checkpoint."""
    manifest = manifest_path(path)
    if not manifest.is_file():
        raise ValueError(
            f"checkpoint `{path}` has no manifest `{manifest}` (its history and checksum), "
            "so it cannot be resumed; delete the checkpoint to start afresh."
        )
    try:
        values = json.loads(manifest.read_text())
        history = values["history"]
        if not isinstance(history, list):
            raise TypeError("`history` is not a list")
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"the manifest `{manifest}` of checkpoint `{path}` is not valid "
            f"({type(error).__name__}: {error}); delete both files to start afresh."
        ) from error
    digest = values.get("checkpoint_sha256")
    if digest is None:
        raise ValueError(
            f"the manifest `{manifest}` of checkpoint `{path}` has no checksum: it was "
            "written by an earlier setfix, whose checkpoints this version does not "
            "resume; delete both files (or rerun into a new directory) to start afresh."
        )
    if path.is_file() and digest != _digest(path):
        raise ValueError(
            f"checkpoint `{path}` does not match its manifest `{manifest}` (checksums "
            "differ: the process probably stopped between writing the two). Delete both "
            "files to start afresh."
        )
    state = load_checkpoint(path, like)
    return state, history


def load_checkpoint(path: str | pathlib.Path, like: T) -> T:
    """Reads a checkpoint written by [`setfix.save_checkpoint`][] into the structure of
    `like` (a pytree of the same kind: same model and optimiser configuration).

    Raises `FileNotFoundError` for a missing file and `ValueError` naming the file when
    it is corrupt or was written for a different structure.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint `{path}` does not exist (or is not a file).")
    try:
        return eqx.tree_deserialise_leaves(path, like)
    except Exception as error:  # numpy/equinox raise several types here
        raise ValueError(
            f"checkpoint `{path}` is corrupt or does not match the model and optimiser "
            f"it is loaded into ({type(error).__name__}: {error})."
        ) from error
