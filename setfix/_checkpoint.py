"""Checkpoints: `eqx.tree_serialise_leaves` of any pytree, with clear errors."""

import pathlib
from typing import TypeVar

import equinox as eqx


T = TypeVar("T")


def save_checkpoint(path: str | pathlib.Path, tree: T) -> pathlib.Path:
    """Writes the array leaves of `tree` (e.g. `(model, opt_state, epoch)`) to `path`,
    atomically (a partly written file never replaces a good one). Returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    eqx.tree_serialise_leaves(partial, tree)
    partial.replace(path)
    return path


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
