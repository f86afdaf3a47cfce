"""A training run as plain values, checked once against the registry of names."""

import dataclasses
import json
from typing import Any

from . import _registry


# Fields added after runs were first saved whose default is not what those runs did: a
# saved configuration must state them (`from_json` says how, when one does not).
EARLIER_BEHAVIOUR = {"copula": "standardised", "draws": "shared", "drop_last": True}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A training run, fully described by plain values (saved as `config.json`).

    Every name is one of the registry's (`setfix.experiments._registry`), which says
    what value it stands for; the values are checked here, once, for the command line
    and Python alike.

    **Fields:** `dataset` (`moons`, `gaussian`, `digits`, `substitutes`, `coverage`,
    `complements`, `amazon:<category>`, `compounds[:<target>]`, `bindingdb[:<target>]`
    or `celeba`), `root` (the data directory or file, for datasets read from files; set
    to `None` for those made in memory), `method` (`idiffmf`, `onestep`, `diffmf`,
    `equivset_ind` or `equivset_copula`), `scaling` (`fro`, `nuc`, `c`, `none`,
    `certified`, or `certified-interactions` which scales only the interactions and keeps
    the singleton gains at full strength; iDiffMF and the one-step gradient), `c` (of
    `ConstantScaling`), `over` (`set` or `batch`), `omega` (of `CertifiedScaling`, for
    the certified scalings),
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
    references' DeepSet; `smooth`, `DeepSet(smooth=True)` whose interactions are
    certified; `superset` and `attention`, `setfix.SupersetDeepSet` and
    `setfix.AttentionSet`, which see the ground set, and their certified
    `superset-smooth` and `attention-smooth`; the certified scalings need a smooth one,
    EquiVSet a DeepSet), `copula` (EquiVSet_copula's noise:
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
        _registry.parse_dataset(self.dataset, self.root)
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
        if not _registry.uses_root(self.dataset):
            # A root means nothing to a dataset made in memory; storing one would make
            # `run(out=...)` refuse to resume a run started with another root.
            object.__setattr__(self, "root", None)
        for name, options in _registry.OPTIONS.items():
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
        if self.scaling in _registry.CERTIFIED and self.energy not in _registry.SMOOTH:
            raise ValueError(
                f"`scaling={self.scaling!r}` needs an energy with an interaction bound: "
                f"`energy` one of {', '.join(_registry.SMOOTH)}, got "
                f"{self.energy!r}.")
        if self.method in _registry.AMORTISED and self.energy not in _registry.POOLED:
            raise ValueError(
                f"`method` {self.method!r} amortises a pooled energy: `energy` "
                f"must be one of {', '.join(_registry.POOLED)}, got {self.energy!r}.")

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
        if self.method in _registry.SCALED:
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


