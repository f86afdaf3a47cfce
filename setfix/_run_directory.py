"""A run directory: what a run is, its training checkpoint, its best model and its
results, in one place that resumes."""

import json
import pathlib
from collections.abc import Callable
from typing import Any, TypeVar

from ._checkpoint import load_checkpoint, save_checkpoint


T = TypeVar("T")

CONFIG = "config.json"
CHECKPOINT = "checkpoint.eqx"
BEST = "best.eqx"
MODEL = "model.json"
RESULTS = "results.json"
# What a run directory holds besides its configuration (the checkpoint's manifest too).
FILES = (CHECKPOINT, CHECKPOINT + ".json", BEST, MODEL, RESULTS)
# Files of the layouts of earlier setfix versions, which this one does not read.
EARLIER_FILES = ("fold.json", "protocol.json")


def write_json(path: pathlib.Path, values: Any) -> None:
    """Writes JSON atomically, with an error naming the file when that fails."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(values, indent=1))
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ValueError(f"could not write `{path}` ({type(error).__name__}: "
                         f"{error.strerror or error}).") from error


def read_json(path: pathlib.Path, what: str) -> Any:
    """The JSON object in `path`, with an error naming the file and saying it holds no
    valid `what` when it cannot be read as one."""
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise TypeError(f"expected a JSON object, got {type(values).__name__}")
        return values
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, TypeError) as error:
        raise ValueError(f"`{path}` is not a valid {what} ({error}); restore it, or "
                         "choose another output directory.") from error


class RunDirectory:
    """The directory of one run, resumable: `config.json` says what the run is,
    `checkpoint.eqx` (with its manifest, which holds the per-epoch history) is what
    `setfix.fit` resumes from, `best.eqx` and `model.json` are the best model and what
    rebuilding it needs, and `results.json` what the run measured. A run that has
    results is finished. `setfix train`, each run of `setfix reproduce`, a
    cross-validation and each of its folds are run directories."""

    def __init__(self, path: str | pathlib.Path):
        self.path = pathlib.Path(path)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    @property
    def checkpoint(self) -> pathlib.Path:
        """Where `setfix.fit` keeps (and resumes from) the training state."""
        return self.path / CHECKPOINT

    def child(self, name: str) -> "RunDirectory":
        """A run directory inside this one (a fold of a cross-validation)."""
        return RunDirectory(self.path / name)

    def open(self, config: dict[str, Any],
             differences: Callable[[dict[str, Any]], list[str]]) -> "RunDirectory":
        """Creates the directory (or resumes it) for the run described by `config`,
        which it records in `config.json`. Refuses a directory that holds another run
        (`differences(saved)` names how a saved configuration differs from `config`),
        a run's files without a configuration, files of an earlier setfix's layout, a
        file in its place and a directory it cannot write to."""
        self._make()
        earlier = sorted(p.name for p in self.path.iterdir() if p.name in EARLIER_FILES)
        if earlier:
            raise ValueError(
                f"`{self.path}` was written by an earlier setfix ({', '.join(earlier)}), "
                "whose run directories this version does not read; rerun into a new "
                "directory.")
        saved = self.path / CONFIG
        if saved.exists():
            differ = self.config(differences)
            if differ:
                raise ValueError(
                    f"`{self.path}` holds a run with a different configuration "
                    f"({'; '.join(differ)}); choose another output directory (or "
                    "delete it).")
        else:
            files = sorted(p.name for p in self.path.iterdir() if p.name in FILES)
            if files:
                raise ValueError(
                    f"`{self.path}` holds a run's files ({', '.join(files)}) but no "
                    f"`{CONFIG}`, so nothing says which configuration made them; choose "
                    "another output directory, or delete those files to start afresh.")
        write_json(saved, config)
        return self

    def _make(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"the run directory `{self.path}` is an existing file, not "
                             "a directory; choose another output directory.")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".setfix-write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise ValueError(f"cannot write to the run directory `{self.path}` "
                             f"({type(error).__name__}: {error.strerror or error}).") from error

    def config(self, parse: Callable[[dict[str, Any]], T] = dict) -> T:
        """The saved `config.json`, read by `parse` (e.g. `Experiment.from_json`), with
        an error naming the file when it cannot be."""
        path = self.path / CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"`{path}` does not exist: `{self.path}` is not a "
                                    "setfix run directory.")
        values = read_json(path, "setfix configuration")
        try:
            return parse(values)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"`{path}` is not a valid setfix configuration ({error}); "
                             "restore it, or choose another output directory.") from error

    def results(self) -> dict[str, Any] | None:
        """The saved results, or `None` while the run has not finished."""
        path = self.path / RESULTS
        return read_json(path, "setfix results record") if path.exists() else None

    def save_results(self, results: dict[str, Any]) -> None:
        write_json(self.path / RESULTS, results)

    def save_model(self, model: Any, spec: dict[str, Any]) -> None:
        """The best model, and in `model.json` what rebuilding its structure needs."""
        save_checkpoint(self.path / BEST, model)
        write_json(self.path / MODEL, spec)

    def model_spec(self) -> dict[str, Any]:
        path = self.path / MODEL
        if not path.is_file():
            raise ValueError(f"`{path}` is missing: the run did not finish.")
        return read_json(path, "model description")

    def load_model(self, like: T, path: pathlib.Path | None = None) -> T:
        """The best model (or the checkpoint at `path`) read into the structure of
        `like`."""
        return load_checkpoint(self.path / BEST if path is None else path, like)
