"""One experiment from a plain configuration: data, model, method, training, test score.
This is what the `setfix` command runs; a run directory holds its configuration, the
training checkpoint, the best model and a results JSON."""

import dataclasses
import json
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
from jaxtyping import PRNGKeyArray

from ._checkpoint import load_checkpoint, save_checkpoint
from ._dataset import SetDataset
from ._encoders import CNNEncoder, MLPEncoder
from ._fit import evaluate, fit, seconds_per_epoch, validation_key
from ._method import AbstractMethod
from ._methods import (
    certified_max_steps,
    diffmf,
    equivset_copula,
    equivset_ind,
    idiffmf,
    onestep,
    reference_prediction,
)
from ._recognition import AmortizedSetFunction, RecognitionNetwork
from ._scaling import (
    BatchNormScaling,
    CertifiedScaling,
    ConstantScaling,
    NormScaling,
    NoScaling,
)
from ._set_function import AbstractSetFunction, DeepSet
from .datasets import _named


DATASETS = _named.NAMES
METHODS = ("idiffmf", "onestep", "diffmf", "equivset_ind", "equivset_copula")
SCALINGS = ("fro", "nuc", "c", "none", "certified")
PREDICTIONS = ("solve", "reference")
ENCODERS = ("default", "mlp")
ENERGIES = ("deepset", "smooth")
COPULAS = ("published", "standardised")
DRAWS = ("fresh", "shared")
FEATURES = ("names", "pickle")
# Fields added after runs were first saved whose default is not what those runs did: a
# saved configuration must state them (`from_json` says how, when one does not).
EARLIER_BEHAVIOUR = {"copula": "standardised", "draws": "shared", "drop_last": True}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A training run, fully described by plain values (saved as `config.json`).

    **Fields:** `dataset` (`moons`, `gaussian`, `digits`, `amazon:<category>`,
    `compounds[:<target>]`, `bindingdb[:<target>]` or `celeba`), `root` (the data
    directory or file, for datasets read from files; set to `None` for moons, gaussian
    and digits), `method` (a name in `METHODS`), `scaling` (`fro`, `nuc`, `c` or `none`;
    iDiffMF and the one-step gradient), `c` (of `ConstantScaling`), `over` (`set` or
    `batch`), `omega` (of `CertifiedScaling`, for `scaling="certified"`),
    `num_samples`, `max_steps` (of the iDiffMF and one-step solves, 20 as in
    the reference code; a set still moving after them is reported as not converged),
    `seed`, `epochs`, `patience`, `learning_rate`, `weight_decay` (an L2 penalty, see
    `setfix.default_optimizer`), `batch_size`, `drop_last` (drop each epoch's last
    incomplete training batch), `train_sets`, `val_sets`, `test_sets` (the first this
    many sets of each split;
    `None`: all), `prediction` (`solve` the fixed point, or the `reference` one step
    from 0.5), `encoder` (the per-item map φ: `default`, the references' choice for the
    item type, a linear map for vectors, an MLP for fingerprints and a CNN for images;
    or `mlp`, an MLP with one hidden layer of 512 ReLU units, for vector items;
    fingerprints have it by default and images refuse it), `energy` (`deepset`, the
    references' DeepSet, or `smooth`, `DeepSet(smooth=True)` whose interactions are
    certified; `scaling="certified"` needs it), `copula` (EquiVSet_copula's noise:
    `published`, the original code's, or `standardised` before the normal CDF; other
    methods ignore it), `draws` (DiffMF's samples: `fresh` for every item and step as
    the original code, or `shared` by all of them; other methods ignore it),
    `features` (Amazon item features: `names`, derived from the public item names, or
    `pickle`, the vectors of EquiVSet's `<category>.pickle`; other datasets ignore it).

    The training defaults are those of the published code (patience 7 in setfix's
    sense, which stops after 7 epochs without a better validation score as its
    `num_bad_epochs=6` does; weight decay 1e-5; the last incomplete batch kept).
    A configuration saved before `copula`, `draws` and `drop_last` existed is refused
    with the values that describe its run (`from_json`).
    """

    dataset: str = "moons"
    root: str | None = None
    method: str = "idiffmf"
    scaling: str = "fro"
    c: float = 1.0
    over: str = "set"
    omega: float = 0.9
    num_samples: int = 5
    max_steps: int = 20
    seed: int = 0
    epochs: int = 100
    patience: int = 7
    learning_rate: float = 1e-4
    weight_decay: float = 1e-5
    batch_size: int = 128
    drop_last: bool = False
    train_sets: int | None = None
    val_sets: int | None = None
    test_sets: int | None = None
    prediction: str = "solve"
    encoder: str = "default"
    energy: str = "deepset"
    copula: str = "published"
    draws: str = "fresh"
    features: str = "names"

    def __post_init__(self):
        _named.parse(self.dataset, self.root)
        # Options that mean nothing to the method or dataset are kept at their defaults,
        # so that equal runs have equal configurations (as `root` below).
        if self.method != "equivset_copula":
            object.__setattr__(self, "copula", "published")
        if self.method != "diffmf":
            object.__setattr__(self, "draws", "fresh")
        if not self.dataset.startswith("amazon"):
            object.__setattr__(self, "features", "names")
        if not isinstance(self.drop_last, bool):
            raise TypeError(f"`drop_last` must be True or False, got {self.drop_last!r}.")
        if not _named.uses_root(self.dataset):
            # A root means nothing to a dataset made in memory; storing one would make
            # `run(out=...)` refuse to resume a run started with another root.
            object.__setattr__(self, "root", None)
        for name, options in (("method", METHODS),
                              ("scaling", SCALINGS), ("over", ("set", "batch")),
                              ("prediction", PREDICTIONS), ("encoder", ENCODERS),
                              ("energy", ENERGIES), ("copula", COPULAS),
                              ("draws", DRAWS), ("features", FEATURES)):
            if getattr(self, name) not in options:
                raise ValueError(
                    f"unknown {name} {getattr(self, name)!r}; expected one of "
                    f"{', '.join(options)}."
                )
        for name in ("num_samples", "max_steps", "epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        for name in ("train_sets", "val_sets", "test_sets"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"`{name}` must be a positive integer or None, got {value!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be positive, got {self.learning_rate!r}.")
        if not self.weight_decay >= 0:
            raise ValueError(f"`weight_decay` must be non-negative, got {self.weight_decay!r}.")
        if not self.c > 0:
            raise ValueError(f"`c` must be positive, got {self.c!r}.")
        if not 0 < self.omega < 1:
            raise ValueError(f"`omega` must lie in (0, 1), got {self.omega!r}.")
        if self.scaling == "certified" and self.energy != "smooth":
            raise ValueError("`scaling='certified'` needs an energy with an interaction "
                             "bound: add `energy='smooth'` (--energy smooth).")

    @property
    def name(self) -> str:
        """A short label, e.g. `moons-idiffmf-fro-s0` or `amazon-toys-diffmf-s1`."""
        return f"{self.dataset.replace(':', '-')}-{self.label}-s{self.seed}"

    @property
    def label(self) -> str:
        """The method, its scaling and its non-default options, e.g. `idiffmf-fro`,
        `idiffmf-nuc-batch`, `diffmf-mlp`, `diffmf-shared` or
        `equivset_copula-standardised`."""
        parts = [self.method]
        if self.method in ("idiffmf", "onestep"):
            parts.append(self.scaling + ("-batch" if self.over == "batch" else ""))
        if self.encoder != "default":
            parts.append(self.encoder)
        if self.energy != "deepset":
            parts.append(self.energy)
        if self.copula != "published":
            parts.append(self.copula)
        if self.draws != "fresh":
            parts.append(self.draws)
        if self.features != "names":
            parts.append(self.features)
        return "-".join(parts)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "Experiment":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown configuration fields {sorted(unknown)}.")
        missing = [name for name in EARLIER_BEHAVIOUR if name not in values]
        if missing:
            what = ", ".join(f'"{name}": {json.dumps(EARLIER_BEHAVIOUR[name])}'
                             for name in missing)
            raise ValueError(
                f"the configuration was saved by an earlier setfix and lacks {missing}, "
                "whose defaults have changed since; rerun the experiment into a new "
                f"directory, or add {{{what}}} (what that run did) to its config.json.")
        return cls(**values)


def differences(saved: dict[str, Any], config: Experiment) -> list[str]:
    """The fields in which a saved configuration (read as an `Experiment`, so that fields
    added since match at their defaults) differs from `config`, as
    `"field: saved there, config's here"`. A larger `epochs` is no difference: it
    extends the saved run."""
    values = Experiment.from_json(saved).to_json()
    return [f"{k}: {values[k]!r} there, {v!r} here"
            for k, v in config.to_json().items()
            # More epochs extend a run that stopped at its budget (`fit` resumes).
            if values[k] != v and not (k == "epochs" and v > values[k])]


def build_scaling(config: Experiment):
    if config.scaling == "none":
        return NoScaling()
    if config.scaling == "c":
        return ConstantScaling(config.c)
    if config.scaling == "certified":
        return CertifiedScaling(config.omega)
    if config.over == "batch":
        return BatchNormScaling(config.scaling)
    return NormScaling()  # per set, Frobenius and nuclear norms agree


def build_method(config: Experiment) -> AbstractMethod:
    """The method named by `config.method`."""
    m = config.num_samples
    scaling = build_scaling(config)
    # A certified solve gets at least the steps its certificate needs (the default 20 is
    # the published code's, for the norm scalings).
    steps = certified_max_steps(scaling, 1e-5, config.max_steps)
    if config.method == "idiffmf":
        return idiffmf(scaling, num_samples=m, max_steps=steps)
    if config.method == "onestep":
        return onestep(scaling, num_samples=m, max_steps=steps)
    if config.method == "diffmf":
        return diffmf(num_samples=m, shared_draws=config.draws == "shared")
    if config.method == "equivset_ind":
        return equivset_ind(num_samples=m)
    return equivset_copula(num_samples=m, standardise=config.copula == "standardised")


def build_inference(config: Experiment, method: AbstractMethod) -> AbstractMethod:
    """The prediction rule: the method's own inference, or the reference one step."""
    if config.prediction == "reference":
        if config.method.startswith("equivset"):
            raise ValueError("`prediction='reference'` applies to the mean-field methods, "
                             "not to EquiVSet.")
        return reference_prediction(method)  # pyright: ignore
    return method


def build_encoder(item_type: str, feature_shape: tuple[int, ...], key,
                  encoder: str = "default"):
    """The per-item encoder for the dataset's item type: by default `None` (the
    reference's linear map) for vectors, an MLP over fingerprints, a small CNN over
    images; with `encoder="mlp"`, the MLP for vectors too. Other item types refuse
    `encoder="mlp"`, which would give their default model a second label."""
    if encoder == "mlp" and item_type != "vector":
        default = "the CNN" if item_type == "image" else "this MLP already"
        raise ValueError(f"`encoder='mlp'` takes vector items; {item_type} items use "
                         f"{default} (`encoder='default'`).")
    if item_type == "image":
        return CNNEncoder(feature_shape[0], 256, key=key)
    if len(feature_shape) != 1:
        raise ValueError(f"items of shape {feature_shape} need an item type "
                         "('image' or 'fingerprint') in the dataset's metadata.")
    if item_type == "fingerprint" or encoder == "mlp":
        return MLPEncoder(feature_shape[0], 256, width=512, depth=1, key=key)
    return None


def build_model(
    config: Experiment,
    feature_shape: int | tuple[int, ...],
    key,
    item_type: str = "vector",
) -> AbstractSetFunction:
    """The reference architecture: a DeepSet (plus a recognition network for EquiVSet),
    its per-item encoder chosen by the item type."""
    shape = (feature_shape,) if isinstance(feature_shape, int) else tuple(feature_shape)
    f_key, q_key = jax.random.split(key)
    # Encoder keys are derived, so vector models initialise exactly as they always have.
    fe_key, qe_key = jax.random.fold_in(f_key, 1), jax.random.fold_in(q_key, 1)
    encoder = build_encoder(item_type, shape, fe_key, config.encoder)
    linear = shape[0] if encoder is None else None  # in_features of a linear encoder
    model = DeepSet(linear, encoder=encoder, smooth=config.energy == "smooth", key=f_key)
    if config.method.startswith("equivset"):
        recognition = RecognitionNetwork(
            linear, encoder=build_encoder(item_type, shape, qe_key, config.encoder),
            key=q_key)
        model = AmortizedSetFunction(model, recognition)
    return model


def build(
    config: Experiment, data: SetDataset
) -> tuple[Callable[[PRNGKeyArray], AbstractSetFunction], AbstractMethod, AbstractMethod]:
    """What a configuration trains on the items of `data`: its model (from a key), its
    method and its prediction rule."""
    shape, item_type = data.feature_shape, _item_type(data)
    method = build_method(config)
    return (lambda key: build_model(config, shape, key, item_type),
            method, build_inference(config, method))


def _item_type(data: SetDataset) -> str:
    return data.metadata.get("item_type", "vector")


def model_spec(data: SetDataset) -> dict[str, Any]:
    """What building a model needs to know of the items (a run's `model.json`)."""
    return {"feature_shape": list(data.feature_shape), "item_type": _item_type(data)}


def load_splits(config: Experiment) -> tuple[SetDataset, SetDataset, SetDataset]:
    train, val, test = _named.load(config.dataset, config.root, features=config.features)
    return (train[: config.train_sets], val[: config.val_sets], test[: config.test_sets])


def _keys(config):
    return jax.random.split(jax.random.key(config.seed), 3)


def run(
    config: Experiment,
    out: str | pathlib.Path | None = None,
    *,
    progress: bool = True,
    splits: tuple[SetDataset, SetDataset, SetDataset] | None = None,
) -> dict[str, Any]:
    """Trains, evaluates on the test split and returns the results (config, per-epoch
    history, timings, best epoch, validation and test Jaccard). With `out`, writes
    `config.json`, `checkpoint.eqx` (resumed from if present), `best.eqx` and
    `results.json` there; a resumed run's `total_seconds` counts the epochs restored
    from the checkpoint at their recorded times, and `resumed_epochs` says how many."""
    start = time.perf_counter()
    train, val, test = load_splits(config) if splits is None else splits
    model_key, fit_key, test_key = _keys(config)
    make_model, method, inference = build(config, train)
    model = make_model(model_key)
    checkpoint = None
    if out is not None:
        out = pathlib.Path(out)
        _make_run_directory(out)
        config_path = out / "config.json"
        if config_path.exists():
            differ = differences(read_config(config_path).to_json(), config)
            if differ:
                raise ValueError(
                    f"`{out}` holds a run with a different configuration "
                    f"({'; '.join(differ)}); choose another output directory (or "
                    "delete it)."
                )
        else:
            files = sorted(p.name for p in out.iterdir() if p.name in RUN_FILES)
            if files:
                raise ValueError(
                    f"`{out}` holds a run's files ({', '.join(files)}) but no "
                    "`config.json`, so nothing says which configuration made them; "
                    "choose another output directory, or delete those files to start "
                    "afresh."
                )
        _write_json(config_path, config.to_json())
        checkpoint = out / "checkpoint.eqx"
    result = fit(model, method, train, val, key=fit_key,
                 learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                 batch_size=min(config.batch_size, len(train)), epochs=config.epochs,
                 patience=config.patience, drop_last=config.drop_last,
                 inference=inference, checkpoint=checkpoint,
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
    if out is not None:
        save_checkpoint(out / "best.eqx", result.model)
        _write_json(out / "model.json", model_spec(train))
        _write_json(out / "results.json", results)
    return results


# What a run directory holds (besides `config.json`).
RUN_FILES = ("checkpoint.eqx", "checkpoint.eqx.json", "best.eqx", "model.json",
             "results.json")


def _make_run_directory(out: pathlib.Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"the run directory `{out}` is an existing file, not a "
                         "directory; choose another output directory.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".setfix-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write to the run directory `{out}` "
                         f"({type(error).__name__}: {error.strerror or error}).") from error


def _write_json(path: pathlib.Path, values: Any) -> None:
    """Writes JSON atomically, with an error naming the file when that fails."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(values, indent=1))
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ValueError(f"could not write `{path}` ({type(error).__name__}: "
                         f"{error.strerror or error}).") from error


def read_config(path: pathlib.Path) -> Experiment:
    """The `Experiment` saved in a run's `config.json`, with an error naming the file
    when it is not a valid configuration."""
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise TypeError(f"expected a JSON object, got {type(values).__name__}")
        return Experiment.from_json(values)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"`{path}` is not a valid setfix configuration ({error}); "
                         "restore it, or choose another output directory.") from error


def load_run(path: str | pathlib.Path) -> tuple[Experiment, AbstractSetFunction]:
    """The configuration and best model of a run directory (or of its `best.eqx`)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"`{path}` does not exist.")
    directory = path if path.is_dir() else path.parent
    model_path = directory / "best.eqx" if path.is_dir() else path
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"`{config_path}` does not exist: `{path}` is not a setfix run directory."
        )
    config = read_config(config_path)
    try:
        spec = json.loads((directory / "model.json").read_text())
        shape = spec["feature_shape"] if "feature_shape" in spec else [spec["in_features"]]
        item_type = spec.get("item_type", "vector")
    except (OSError, json.JSONDecodeError, KeyError) as error:
        raise ValueError(
            f"`{directory / 'model.json'}` is missing or invalid: the run did not finish."
        ) from error
    like = build_model(config, tuple(shape), jax.random.key(0), item_type)
    return config, load_checkpoint(model_path, like)


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
    key = _keys(config)[2]
    if split == "val":
        key = validation_key(_keys(config)[1], _best_epoch(path))
    return evaluate(model, method, data, key=key)


def _best_epoch(path: str | pathlib.Path) -> int:
    path = pathlib.Path(path)
    results = (path if path.is_dir() else path.parent) / "results.json"
    try:
        return int(json.loads(results.read_text())["best_epoch"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"`{results}` is missing or invalid: the run did not finish, "
                         "so its best epoch is unknown.") from error
