"""Paths, files and optional dependencies of the real-data loaders: every failure names
the file (and line) and says what was expected."""

import importlib
import pathlib
from types import ModuleType


def directory(root, arg: str = "root") -> pathlib.Path:
    """`root` as an existing directory."""
    if root is None:
        raise ValueError(f"`{arg}` is required: the directory holding the data files.")
    path = pathlib.Path(root).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"`{arg}` {str(path)!r} does not exist.")
    if not path.is_dir():
        raise NotADirectoryError(f"`{arg}` {str(path)!r} is not a directory.")
    return path


def existing_file(path, what: str) -> pathlib.Path:
    """`path` as an existing file, or an error saying which `what` was looked for."""
    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist.")
    return path


def optional(module: str, extra: str, purpose: str) -> ModuleType:
    """Imports an optional dependency, or says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs `{module.split('.')[0]}`: pip install 'setfix[{extra}]'"
        ) from error


def check_num_sets(num_sets) -> None:
    """`num_sets` must be the sizes of the train, validation and test splits."""
    if len(num_sets) != 3 or any(not isinstance(k, int) or k < 1 for k in num_sets):
        raise ValueError(f"`num_sets` must be three positive integers, got {num_sets!r}.")


class FileFormatError(ValueError):
    """A data file that does not have the expected format (names the file and line)."""

    def __init__(self, path, line: int | None, message: str):
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {message}")
