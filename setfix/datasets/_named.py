"""Datasets by name, as the command line and `setfix.Experiment` refer to them:
`moons`, `gaussian`, `digits`, `substitutes`, `coverage`, `complements`,
`amazon:<category>`, `compounds[:<target>]`,
`bindingdb[:<target id>]` and `celeba`, with a `root` path where files are needed."""

from .._dataset import SetDataset
from ._amazon import amazon, CATEGORIES
from ._compounds import bindingdb, compounds, FREEWILSON
from ._images import celeba, digits
from ._interactions import complements, coverage, substitutes
from ._synthetic import gaussian, moons


NAMES = ("moons", "gaussian", "digits", "amazon", "compounds", "bindingdb", "celeba",
         "substitutes", "coverage", "complements")
# Made in memory from a seed: no files, no ':' argument.
GENERATED = ("moons", "gaussian", "digits", "substitutes", "coverage", "complements")
_INTERACTIONS = {"substitutes": substitutes, "coverage": coverage,
                 "complements": complements}


def parse(spec: str, root: str | None) -> tuple[str, str | None]:
    """Checks a dataset name `name[:argument]` (and that `root` is given where the data
    are files) and returns `(name, argument)`."""
    name, _, argument = spec.partition(":")
    argument = argument or None
    if name not in NAMES:
        raise ValueError(f"unknown dataset {spec!r}; expected one of moons, gaussian, "
                         "digits, substitutes, coverage, complements, "
                         "amazon:<category>, compounds[:<target>], bindingdb, celeba.")
    if (name in GENERATED or name == "celeba") and argument is not None:
        raise ValueError(f"dataset {name!r} takes no ':' argument, got {spec!r}.")
    if name == "amazon" and argument not in CATEGORIES:
        raise ValueError(f"dataset 'amazon' needs a category, 'amazon:<category>' with one "
                         f"of {', '.join(CATEGORIES)}; got {spec!r}.")
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
    in memory (moons, gaussian, digits), which never read files."""
    return spec.partition(":")[0] not in GENERATED


def load(
    spec: str, root: str | None = None, *, features: str = "names"
) -> tuple[SetDataset, SetDataset, SetDataset]:
    """The `(train, val, test)` splits of the dataset named `spec` (default settings;
    `features` chooses the Amazon item features, see `setfix.datasets.amazon`)."""
    name, argument = parse(spec, root)
    if name == "moons":
        return moons()
    if name == "gaussian":
        return gaussian()
    if name == "digits":
        return digits()
    if name in _INTERACTIONS:
        return _INTERACTIONS[name]()
    if name == "amazon":
        return amazon(root, argument, features=features)  # pyright: ignore
    if name == "compounds":
        if root is None:
            return compounds()
        return compounds(root, argument)
    if name == "bindingdb":
        return bindingdb(root, target=argument)
    return celeba(root)
