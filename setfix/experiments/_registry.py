"""Names to values: the one registry of the datasets, methods, scalings and model options
that configurations, the command line and the reports refer to by name."""

from collections.abc import Callable
from typing import Any

from .._attention import AttentionSet
from .._dataset import SetDataset
from .._method import AbstractMethod
from .._methods import (
    diffmf,
    equivset_copula,
    equivset_ind,
    idiffmf,
    onestep,
    reference_prediction,
)
from .._scaling import (
    AbstractScaling,
    BatchNormScaling,
    CertifiedScaling,
    ConstantScaling,
    NormScaling,
    NoScaling,
)
from .._set_function import DeepSet
from .._superset import SupersetDeepSet
from ..datasets import (
    amazon,
    AMAZON_CATEGORIES,
    bindingdb,
    celeba,
    complements,
    compounds,
    coverage,
    digits,
    gaussian,
    moons,
    substitutes,
)
from ..datasets._compounds import FREEWILSON


Splits = tuple[SetDataset, SetDataset, SetDataset]

# Datasets made in memory from a seed (no files, no ':' argument), by name.
GENERATED: dict[str, Callable[[], Splits]] = {
    "moons": moons, "gaussian": gaussian, "digits": digits,
    "substitutes": substitutes, "coverage": coverage, "complements": complements,
}
# Datasets read from files: loader(root, argument, features).
FILES: dict[str, Callable[[str | None, str | None, str], Splits]] = {
    "amazon": lambda root, category, features: amazon(
        root, category, features=features),  # pyright: ignore
    "compounds": lambda root, target, features: (
        compounds() if root is None else compounds(root, target)),
    "bindingdb": lambda root, target, features: bindingdb(root, target=target),  # pyright: ignore
    "celeba": lambda root, argument, features: celeba(root),  # pyright: ignore
}
DATASETS = (*GENERATED, *FILES)
DATASET_HELP = ("moons, gaussian, digits, substitutes, coverage, complements, "
                "amazon:<category>, compounds[:<target>], bindingdb[:<target>] or celeba")

# Model options. Values: the energy's class and whether it is smooth (certified);
# whether EquiVSet_copula standardises its noise; whether DiffMF shares its draws; the
# Amazon feature names.
ENCODERS = ("default", "mlp")
ENERGIES: dict[str, tuple[type, bool]] = {
    "deepset": (DeepSet, False), "smooth": (DeepSet, True),
    "superset": (SupersetDeepSet, False), "superset-smooth": (SupersetDeepSet, True),
    "attention": (AttentionSet, False), "attention-smooth": (AttentionSet, True),
}
SMOOTH = tuple(name for name, (_, smooth) in ENERGIES.items() if smooth)
POOLED = ("deepset", "smooth")  # the energies EquiVSet's recognition network amortises
COPULAS = {"published": False, "standardised": True}
DRAWS = {"fresh": False, "shared": True}
FEATURES = ("names", "pickle")
OVER = ("set", "batch")

# The builders below read a configuration `x` (a `setfix.experiments.Experiment`).
# Scalings of iDiffMF and the one-step gradient. Per set, the Frobenius and nuclear
# norms agree, so `nuc` differs from `fro` only over a batch.
SCALINGS: dict[str, Callable[[Any], AbstractScaling]] = {
    "fro": lambda x: BatchNormScaling("fro") if x.over == "batch" else NormScaling(),
    "nuc": lambda x: BatchNormScaling("nuc") if x.over == "batch" else NormScaling(),
    "c": lambda x: ConstantScaling(x.c),
    "none": lambda x: NoScaling(),
    "certified": lambda x: CertifiedScaling(x.omega),
    "certified-interactions": lambda x: CertifiedScaling(x.omega, interactions_only=True),
}
# The scalings whose energy scale comes from a certificate (they need a smooth energy).
CERTIFIED = ("certified", "certified-interactions")
# Methods, from a configuration, its scaling and the solves' step budget.
METHODS: dict[str, Callable[[Any, AbstractScaling, int], AbstractMethod]] = {
    "idiffmf": lambda x, scaling, steps: idiffmf(
        scaling, num_samples=x.num_samples, max_steps=steps),
    "onestep": lambda x, scaling, steps: onestep(
        scaling, num_samples=x.num_samples, max_steps=steps),
    "diffmf": lambda x, scaling, steps: diffmf(
        num_samples=x.num_samples, shared_draws=DRAWS[x.draws]),
    "equivset_ind": lambda x, scaling, steps: equivset_ind(num_samples=x.num_samples),
    "equivset_copula": lambda x, scaling, steps: equivset_copula(
        num_samples=x.num_samples, standardise=COPULAS[x.copula]),
}
# The methods that take a scaling, and those that train a recognition network.
SCALED = ("idiffmf", "onestep")
AMORTISED = ("equivset_ind", "equivset_copula")
# Prediction rules: the method's own inference, or the published one step from 1/2.
PREDICTIONS: dict[str, Callable[[Any], AbstractMethod]] = {
    "solve": lambda method: method,
    "reference": reference_prediction,
}

# Every option a configuration names, with its registry (what `Experiment` checks).
OPTIONS: dict[str, Any] = {
    "method": METHODS, "scaling": SCALINGS, "over": OVER, "prediction": PREDICTIONS,
    "encoder": ENCODERS, "energy": ENERGIES, "copula": COPULAS, "draws": DRAWS,
    "features": FEATURES,
}


def parse_dataset(spec: str, root: str | None) -> tuple[str, str | None]:
    """Checks a dataset name `name[:argument]` (and that `root` is given where the data
    are files) and returns `(name, argument)`."""
    name, _, argument = spec.partition(":")
    argument = argument or None
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {spec!r}; expected one of {DATASET_HELP}.")
    if (name in GENERATED or name == "celeba") and argument is not None:
        raise ValueError(f"dataset {name!r} takes no ':' argument, got {spec!r}.")
    if name == "amazon" and argument not in AMAZON_CATEGORIES:
        raise ValueError(f"dataset 'amazon' needs a category, 'amazon:<category>' with one "
                         f"of {', '.join(AMAZON_CATEGORIES)}; got {spec!r}.")
    needs_root = name in ("amazon", "bindingdb", "celeba") or (
        name == "compounds" and argument not in (None, FREEWILSON))
    if needs_root and root is None:
        raise ValueError(f"dataset {spec!r} is read from files: give their location as "
                         "`root` (--root PATH).")
    if name == "compounds" and root is not None and argument is None:
        raise ValueError("with a `root`, name the target: 'compounds:<target>', e.g. "
                         "compounds:CHEMBL214_Ki.")
    return name, argument


def uses_root(spec: str) -> bool:
    """Whether a `root` can matter to the dataset named `spec`: `False` for the ones made
    in memory, which never read files."""
    return spec.partition(":")[0] not in GENERATED


def load_dataset(spec: str, root: str | None = None, *, features: str = "names") -> Splits:
    """The `(train, val, test)` splits of the dataset named `spec` (default settings;
    `features` chooses the Amazon item features, see `setfix.datasets.amazon`)."""
    name, argument = parse_dataset(spec, root)
    if name in GENERATED:
        return GENERATED[name]()
    return FILES[name](root, argument, features)
