"""One experiment from a plain configuration: data, model, method, training, test
score, in a run directory (what `setfix train` and each run of `setfix reproduce` run)."""

import pathlib
import time
from typing import Any

import jax

from .._dataset import SetDataset
from .._fit import evaluate, fit, seconds_per_epoch, validation_key
from .._run_directory import RunDirectory
from .._set_function import AbstractSetFunction
from ._build import build, build_inference, build_method, build_model, keys, load_splits, model_spec
from ._config import differences, Experiment


def run(
    config: Experiment,
    out: str | pathlib.Path | None = None,
    *,
    progress: bool = True,
    splits: tuple[SetDataset, SetDataset, SetDataset] | None = None,
) -> dict[str, Any]:
    """Trains, evaluates on the test split and returns the results (config, per-epoch
    history, timings, best epoch, validation and test Jaccard). With `out`, the run is
    a [`setfix.experiments.RunDirectory`][] there: resumed from its checkpoint if it has
    one, refused if it holds another configuration. A resumed run's `total_seconds`
    counts the epochs restored from the checkpoint at their recorded times, and
    `resumed_epochs` says how many."""
    start = time.perf_counter()
    train, val, test = load_splits(config) if splits is None else splits
    model_key, fit_key, test_key = keys(config)
    make_model, method, inference = build(config, train)
    model = make_model(model_key)
    directory = None
    if out is not None:
        directory = RunDirectory(out).open(
            config.to_json(), lambda saved: differences(saved, config))
    result = fit(model, method, train, val, key=fit_key,
                 learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                 batch_size=min(config.batch_size, len(train)), epochs=config.epochs,
                 patience=config.patience, drop_last=config.drop_last,
                 inference=inference,
                 checkpoint=None if directory is None else directory.checkpoint,
                 progress=progress)
    scores = evaluate(result.model, inference, test, key=test_key)
    history = result.history
    # A resumed run counts the epochs an earlier process trained at their recorded times.
    earlier = sum(record["seconds"] for record in history[: result.resumed_epochs])
    results = {
        "config": config.to_json(),
        "name": config.name,
        "test_jaccard": scores["jaccard"],
        "test_converged": scores["converged"],
        "test_scores": scores,
        "best_epoch": result.best_epoch,
        "best_val_jaccard": result.best_val_jaccard,
        "epochs_run": len(history),
        "seconds_per_epoch": seconds_per_epoch(history),
        "total_seconds": earlier + time.perf_counter() - start,
        "resumed_epochs": result.resumed_epochs,
        "devices": [str(d) for d in jax.devices()],
        "history": history,
    }
    if directory is not None:
        directory.save_model(result.model, model_spec(train))
        directory.save_results(results)
    return results


def finished(config: Experiment, out: str | pathlib.Path) -> dict[str, Any] | None:
    """The results of the run of `config` in `out`, if it finished there."""
    results = RunDirectory(out).results()
    if results is None or Experiment.from_json(results["config"]) != config:
        return None
    return results


def _directory(path: pathlib.Path) -> tuple[RunDirectory, pathlib.Path | None]:
    """The run directory of `path` (a run directory or a model file in one), and the
    model file when one is named."""
    if not path.exists():
        raise FileNotFoundError(f"`{path}` does not exist.")
    return (RunDirectory(path), None) if path.is_dir() else (RunDirectory(path.parent), path)


def load_run(path: str | pathlib.Path) -> tuple[Experiment, AbstractSetFunction]:
    """The configuration and best model of a run directory (or of a model file in
    one, such as its `best.eqx`)."""
    directory, model_path = _directory(pathlib.Path(path))
    config = directory.config(Experiment.from_json)
    spec = directory.model_spec()
    try:
        shape, item_type = tuple(spec["feature_shape"]), spec["item_type"]
    except KeyError as error:
        raise ValueError(f"`{directory.path / 'model.json'}` lacks {error}; it was "
                         "written by an earlier setfix: rerun the experiment into a new "
                         "directory.") from error
    like = build_model(config, shape, jax.random.key(0), item_type)
    return config, directory.load_model(like, model_path)


def evaluate_run(path: str | pathlib.Path, split: str = "test") -> dict[str, float]:
    """Re-evaluates the best model of a run on one split. The test and training splits
    use the run's test key; the validation split uses the key `fit` validated the best
    epoch with, so it repeats the recorded best validation figures."""
    names = ("train", "val", "test")
    if split not in names:
        raise ValueError(f"`split` must be one of {names}, got {split!r}.")
    config, model = load_run(path)
    data = load_splits(config)[names.index(split)]
    method = build_inference(config, build_method(config))
    key = keys(config)[2]
    if split == "val":
        key = validation_key(keys(config)[1], _best_epoch(pathlib.Path(path)))
    return evaluate(model, method, data, key=key)


def _best_epoch(path: pathlib.Path) -> int:
    directory, _ = _directory(path)
    results = directory.results()
    try:
        return int(results["best_epoch"])  # pyright: ignore
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"`{directory.path / 'results.json'}` is missing or invalid: the "
                         "run did not finish, so its best epoch is unknown.") from error
