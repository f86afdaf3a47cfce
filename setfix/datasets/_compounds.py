"""Compound selection: from a pool of molecules measured against one target, the oracle
picks the strongest binders of a random ground set. Molecules are featurised with RDKit
Morgan fingerprints."""

import csv
import math
import pathlib
import warnings

import numpy as np

from .._dataset import SetDataset
from ._files import check_num_sets, directory, existing_file, FileFormatError, optional


FREEWILSON = "CHEMBL2321810"


def _rdkit():
    chem = optional("rdkit.Chem", "chem", "Compound featurisation")
    optional("rdkit.Chem.rdFingerprintGenerator", "chem", "Compound featurisation")
    return chem


def fingerprints(
    smiles: list[str], *, radius: int = 2, bits: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Morgan fingerprints of SMILES strings with RDKit.

    Returns `(features, valid)`: a `(num_valid, bits)` float32 array of 0/1 bits for the
    SMILES RDKit parses, and a boolean mask saying which ones those were. Invalid SMILES
    are left out, never turned into zero vectors.

    **Arguments:**

    - `smiles`: the molecules.
    - `radius`: the Morgan radius (2 gives ECFP4-like bits).
    - `bits`: the fingerprint length.
    """
    for name, value in (("radius", radius), ("bits", bits)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    chem = _rdkit()
    from rdkit import RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    rows, valid = [], np.zeros(len(smiles), bool)
    RDLogger.DisableLog("rdApp.*")  # invalid SMILES are reported below, not logged
    try:
        for i, text in enumerate(smiles):
            mol = chem.MolFromSmiles(text) if text else None
            if mol is not None:
                rows.append(generator.GetFingerprintAsNumPy(mol).astype(np.float32))
                valid[i] = True
    finally:
        RDLogger.EnableLog("rdApp.*")
    features = np.stack(rows) if rows else np.zeros((0, bits), np.float32)
    return features, valid


def _read_moleculeace(path) -> tuple[list[str], np.ndarray, list[int]]:
    """SMILES, activity y (higher: stronger) and line numbers of a MoleculeACE table."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None or "smiles" not in header or "y" not in header:
            raise FileFormatError(path, 1, "expected a CSV header with columns 'smiles' "
                                  f"and 'y', got {header}.")
        s_col, y_col = header.index("smiles"), header.index("y")
        smiles, activity, lines = [], [], []
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                smiles.append(row[s_col])
                activity.append(float(row[y_col]))
            except (IndexError, ValueError):
                raise FileFormatError(path, number, "expected a SMILES and a numeric 'y', "
                                      f"got {row[:5]}.") from None
            lines.append(number)
    return smiles, np.asarray(activity), lines


def _read_freewilson() -> tuple[list[str], np.ndarray, list[int], pathlib.Path]:
    """The ChEMBL series RDKit ships (`Contrib/FreeWilson/data`): SMILES and pIC50."""
    _rdkit()
    from rdkit import RDConfig

    folder = pathlib.Path(RDConfig.RDContribDir) / "FreeWilson" / "data"
    smi = existing_file(folder / f"{FREEWILSON}.smi", "RDKit's FreeWilson example")
    act = existing_file(folder / f"{FREEWILSON}_act.csv", "RDKit's FreeWilson example")
    with open(act, newline="") as file:
        values = {row["Name"]: float(row["Act"]) for row in csv.DictReader(file)}
    smiles, activity, lines = [], [], []
    for number, line in enumerate(smi.read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) == 2 and parts[1] in values:
            smiles.append(parts[0])
            activity.append(values[parts[1]])
            lines.append(number)
    return smiles, np.asarray(activity), lines, smi


def build_sets(
    pool: np.ndarray,
    activity: np.ndarray,
    *,
    ground_set: int,
    subset: int,
    num_sets: tuple[int, int, int],
    seed: int,
    name: str,
    metadata: dict,
    disjoint: bool = False,
) -> tuple[SetDataset, SetDataset, SetDataset]:
    """Ground sets of `ground_set` random pool rows; S* their `subset` most active. With
    `disjoint`, the rows are first split 60/20/20 and each split draws from its own."""
    if not isinstance(ground_set, int) or not isinstance(subset, int) or not (
            1 <= subset <= ground_set):
        raise ValueError("`subset` and `ground_set` must be integers with 1 <= subset <= "
                         f"ground_set, got {subset!r} and {ground_set!r}.")
    check_num_sets(num_sets)
    rng = np.random.default_rng(seed)
    if disjoint:
        order = rng.permutation(len(pool))
        rows = np.split(order, [int(0.6 * len(pool)), int(0.8 * len(pool))])
    else:
        rows = [np.arange(len(pool))] * 3
    for split, available in zip(("train", "val", "test"), rows):
        if ground_set > len(available):
            raise ValueError(f"`ground_set` ({ground_set}) exceeds the {len(available)} "
                             f"valid molecules available to the {split} split; choose a "
                             "smaller ground set" + (" or disjoint=False." if disjoint
                                                     else "."))
    meta = dict(metadata, item_type="fingerprint", ground_set=ground_set, subset=subset,
                seed=seed, molecules=len(pool), disjoint=disjoint)
    splits = []
    for split, count, available in zip(("train", "val", "test"), num_sets, rows):
        grounds = [rng.choice(available, ground_set, replace=False) for _ in range(count)]
        targets = [np.argsort(-activity[g], kind="stable")[:subset] for g in grounds]
        splits.append(SetDataset.from_sets(grounds, targets, name=f"{name}/{split}",
                                           metadata=meta, pool=pool))
    return tuple(splits)


def _featurise(smiles, lines, path, radius, bits, what="SMILES could not be parsed"):
    """Fingerprints and which SMILES RDKit parsed; those it could not are warned about
    with their lines and returned as `(line, smiles)` pairs."""
    features, valid = fingerprints(smiles, radius=radius, bits=bits)
    invalid = [(line, s) for line, s, ok in zip(lines, smiles, valid) if not ok]
    if invalid:
        shown = ", ".join(f"line {line}: {s!r}" for line, s in invalid[:5])
        warnings.warn(f"{path}: {len(invalid)} of {len(smiles)} {what} and are left out "
                      f"({shown}{', …' if len(invalid) > 5 else ''}).", stacklevel=3)
    return features, valid, invalid


def compounds(
    root=None,
    target: str | None = None,
    *,
    ground_set: int = 300,
    subset: int = 15,
    num_sets: tuple[int, int, int] = (1000, 100, 100),
    radius: int = 2,
    bits: int = 2048,
    seed: int = 1,
    disjoint: bool = False,
) -> tuple[SetDataset, SetDataset, SetDataset]:
    r"""Compound selection against one target: `(train, val, test)`.

    Each example draws `ground_set` molecules at random from those measured against the
    target; $S^*$ is the `subset` strongest binders among them (highest activity, ties
    broken by position). Items are Morgan fingerprints (RDKit, `radius`, `bits`) stored
    once in a shared `pool`. As in the EquiVSet reference, all three splits draw from the
    same molecules by default (the ground sets differ), so a model can score well by
    remembering molecules; `disjoint=True` splits the molecules 60/20/20 first, and
    validation and test sets then hold only molecules never seen in training.

    Data:

    - With `root`, the ChEMBL tables of MoleculeACE (PyPI `MoleculeACE`,
        `MoleculeACE/Data/benchmark_data/`, or GitHub `molML/MoleculeACE`):
        `<root>/<target>.csv` with columns `smiles` and `y` $= -\log_{10}$ (affinity in
        nM), e.g. `target="CHEMBL214_Ki"`.
    - Without `root` (and `target`), offline: the ChEMBL series CHEMBL2321810 that
        RDKit ships (`RDConfig.RDContribDir/FreeWilson/data`, 1017 molecules, pIC50).

    SMILES RDKit cannot parse are counted, reported in a warning and in
    `metadata["invalid_smiles"]`, and left out. Needs `pip install 'setfix[chem]'`.

    **Arguments:**

    - `root`: the MoleculeACE data directory, or `None` for the offline series.
    - `target`: the table's name without `.csv`.
    - `ground_set`: $|V|$.
    - `subset`: $|S^*|$.
    - `num_sets`: the numbers of train, validation and test sets.
    - `radius`, `bits`: of the Morgan fingerprint.
    - `seed`: seeds the draws of the ground sets (and the split of the molecules).
    - `disjoint`: give each split its own molecules.
    """
    if root is None:
        if target not in (None, FREEWILSON):
            raise ValueError(f"`root` is required for target {target!r}: the directory "
                             "with the MoleculeACE tables (<root>/<target>.csv).")
        smiles, activity, lines, path = _read_freewilson()
        name, source = FREEWILSON, "RDKit FreeWilson example (ChEMBL), pIC50"
    else:
        folder = directory(root)
        if target is None:
            available = sorted(p.stem for p in folder.glob("*.csv"))
            raise ValueError(f"`target` is required with `root`; {folder} has "
                             f"{', '.join(available[:8]) or 'no tables'}"
                             f"{', …' if len(available) > 8 else ''}.")
        path = existing_file(folder / f"{target}.csv", f"table for target {target!r}")
        smiles, activity, lines = _read_moleculeace(path)
        name, source = target, "MoleculeACE (ChEMBL), y = -log10(nM)"
    if not np.all(np.isfinite(activity)):
        bad = lines[int(np.argmin(np.isfinite(activity)))]
        raise FileFormatError(path, bad, "activity is NaN or infinite.")
    features, valid, invalid = _featurise(smiles, lines, path, radius, bits)
    activity = activity[valid]
    meta = {"source": source, "target": name, "radius": radius, "bits": bits,
            "invalid_smiles": invalid}
    return build_sets(features, activity, ground_set=ground_set, subset=subset,
                      num_sets=num_sets, seed=seed, name=f"compounds-{name}", metadata=meta,
                      disjoint=disjoint)


AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def _composition(sequence: str) -> np.ndarray:
    """The amino-acid composition of a protein sequence (20 frequencies)."""
    counts = np.array([sequence.count(a) for a in AMINO_ACIDS], np.float32)
    return counts / max(counts.sum(), 1.0)


def bindingdb(
    path,
    *,
    target: str | None = None,
    ground_set: int = 300,
    subset: int = 15,
    num_sets: tuple[int, int, int] = (1000, 100, 100),
    radius: int = 2,
    bits: int = 2048,
    seed: int = 1,
    disjoint: bool = False,
) -> tuple[SetDataset, SetDataset, SetDataset]:
    r"""Compound selection on BindingDB $K_d$ as PyTDC saves it: `(train, val, test)`.

    Reads the table of `tdc.multi_pred.DTI(name="BindingDB_Kd")` (tab-separated, or a
    `.csv`, with columns `Drug` (SMILES), `Target` (amino-acid sequence) and `Y` ($K_d$
    in nM)); repeated drug-target pairs are averaged (PyTDC's
    `harmonize_affinities("mean")`). Each item is a drug-target pair: the drug's Morgan
    fingerprint followed by the target's amino-acid composition. $S^*$ is the `subset`
    strongest binders of the ground set, that is the **smallest** $K_d$ (the EquiVSet
    reference takes the largest, i.e. the weakest binders). With `target`, only the
    pairs whose `Target_ID` (or sequence) equals it are used.

    **Arguments:**

    - `path`: the table file.
    - `target`: restrict to one target, or `None` for all pairs (as the reference).
    - `ground_set`, `subset`, `num_sets`, `radius`, `bits`, `seed`, `disjoint` (splits
        the drug-target pairs): as [`setfix.datasets.compounds`][].
    """
    path = existing_file(path, "BindingDB table")
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    pairs: dict[tuple[str, str], list[float]] = {}
    first_line: dict[tuple[str, str], int] = {}
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file, delimiter=delimiter)
        header = next(reader, None)
        if header is None or not {"Drug", "Target", "Y"} <= set(header):
            raise FileFormatError(path, 1, "expected a header with columns 'Drug', "
                                  f"'Target' and 'Y' (PyTDC's layout), got {header}.")
        cols = {name: header.index(name) for name in ("Drug", "Target", "Y")}
        id_col = header.index("Target_ID") if "Target_ID" in header else None
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                drug, protein, kd = (row[cols["Drug"]], row[cols["Target"]],
                                     float(row[cols["Y"]]))
            except (IndexError, ValueError):
                raise FileFormatError(path, number, "expected a SMILES, a sequence and a "
                                      "numeric 'Y'.") from None
            if not kd > 0 or not math.isfinite(kd):
                raise FileFormatError(path, number, f"'Y' must be a positive K_d in nM, "
                                      f"got {kd}.")
            if target is not None and target not in (protein, row[id_col] if id_col
                                                     is not None else None):
                continue
            pairs.setdefault((drug, protein), []).append(kd)
            first_line.setdefault((drug, protein), number)
    if not pairs:
        raise ValueError(f"{path} has no pairs" + (f" for target {target!r}." if target
                                                   else "."))
    keys = list(pairs)
    smiles = [drug for drug, _ in keys]
    kd = np.array([np.mean(pairs[k]) for k in keys])
    features, valid, invalid = _featurise(
        smiles, [first_line[k] for k in keys], path, radius, bits,
        what="drug-target pairs have SMILES RDKit cannot parse")
    proteins = np.stack([_composition(p) for (_, p), ok in zip(keys, valid) if ok])
    pool = np.concatenate([features, proteins], axis=1)
    meta = {"source": f"BindingDB Kd ({path.name})", "target": target, "radius": radius,
            "bits": bits, "invalid_smiles": invalid, "pairs": len(keys)}
    return build_sets(pool, -np.log10(kd[valid]), ground_set=ground_set, subset=subset,
                      num_sets=num_sets, seed=seed, name="bindingdb", metadata=meta,
                      disjoint=disjoint)
