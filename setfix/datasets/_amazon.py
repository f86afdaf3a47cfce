"""Product recommendation on the Amazon baby registry (Gillenwater et al. 2014), with the
ground-set construction of EquiVSet (Ou et al. 2022)."""

import pickle
from typing import Literal

import numpy as np

from .._dataset import SetDataset
from ._files import directory, existing_file, FileFormatError, optional


CATEGORIES = ("apparel", "bath", "bedding", "carseats", "diaper", "feeding", "furniture",
              "gear", "health", "media", "safety", "toys")


def _read_registries(path) -> list[np.ndarray]:
    """One array of 1-based item ids per line (integers, or floats such as `3.0` in the
    reference's quoted-numeric CSV)."""
    registries = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                values = [float(field.strip().strip("|\"'")) for field in line.split(",")]
            except ValueError:
                raise FileFormatError(path, number, "expected comma-separated item ids, "
                                      f"got {line[:60]!r}.") from None
            ids = np.asarray(values)
            if np.any(ids != np.round(ids)) or np.any(ids < 1):
                raise FileFormatError(path, number, "item ids must be positive integers "
                                      f"(1-based), got {line[:60]!r}.")
            if len(np.unique(ids)) != len(ids):
                raise FileFormatError(path, number, "a registry lists an item twice, got "
                                      f"{line[:60]!r}.")
            registries.append(ids.astype(np.int64))
    if not registries:
        raise FileFormatError(path, None, "no registries (the file is empty).")
    return registries


def _read_names(path) -> list[str]:
    """The item names of `<id> <name>` lines, ids 1, 2, … in order (UTF-8, or the
    Windows-1252 of the public files)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    names = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        head, _, name = line.strip().partition(" ")
        if not head.isdigit() or int(head) != len(names) + 1 or not name:
            raise FileFormatError(path, number, f"expected '{len(names) + 1} <item "
                                  f"name>', got {line.strip()[:60]!r}.")
        names.append(name)
    if not names:
        raise FileFormatError(path, None, "no item names (the file is empty).")
    return names


def _name_features(names: list[str], dim: int | None, path) -> np.ndarray:
    """TF-IDF of the item names reduced by truncated SVD (latent semantic analysis);
    deterministic."""
    text = optional("sklearn.feature_extraction.text", "data", "Features from item names")
    decomposition = optional("sklearn.decomposition", "data", "Features from item names")
    tfidf = text.TfidfVectorizer().fit_transform(names)
    limit = min(tfidf.shape) - 1
    if dim is None:
        dim = min(32, limit)
    if not isinstance(dim, int) or not 1 <= dim <= limit:
        raise ValueError(f"`dim` must be an integer in [1, {limit}] for the {len(names)} "
                         f"items of {path} (vocabulary {tfidf.shape[1]}), got {dim!r}.")
    svd = decomposition.TruncatedSVD(dim, algorithm="randomized", n_iter=10, random_state=0)
    return svd.fit_transform(tfidf).astype(np.float32)


def _pickle_features(path, num_items: int) -> np.ndarray:
    """The reference's `<category>.pickle`: a dict from 1-based item id to a vector."""
    with open(path, "rb") as file:
        try:
            table = pickle.load(file)
        except Exception as error:  # noqa: BLE001 (any unpickling failure)
            raise FileFormatError(path, None, f"not a readable pickle ({error}).") from None
    if not isinstance(table, dict) or sorted(table) != list(range(1, len(table) + 1)):
        raise FileFormatError(path, None, "expected a dict from item ids 1..M to feature "
                              "vectors.")
    features = np.stack([np.asarray(table[i], np.float32).ravel()
                         for i in range(1, len(table) + 1)])
    if len(features) < num_items:
        raise FileFormatError(path, None, f"has {len(features)} items but the registries "
                              f"use ids up to {num_items}.")
    return features


def _ground_set(features, registry, v_size, rng):
    """EquiVSet's ground set for one registry S: S plus the `v_size − |S|` catalogue
    items least cosine-similar to the mean of S, S at random positions."""
    members = registry - 1
    others = np.setdiff1d(np.arange(len(features)), members)
    mean = features[members].mean(axis=0)
    unit = features[others] / np.maximum(np.linalg.norm(features[others], axis=1,
                                                        keepdims=True), 1e-12)
    similarity = unit @ (mean / max(np.linalg.norm(mean), 1e-12))
    fill = others[np.argsort(similarity, kind="stable")[: v_size - len(members)]]
    positions = rng.permutation(v_size)[: len(members)]
    ground = np.empty(v_size, np.int64)
    rest = np.ones(v_size, bool)
    rest[positions] = False
    ground[positions] = members
    ground[rest] = fill
    return ground, positions


def amazon(
    root,
    category: str,
    *,
    features: Literal["names", "pickle"] = "names",
    dim: int | None = None,
    v_size: int = 30,
    seed: int = 1,
) -> tuple[SetDataset, SetDataset, SetDataset]:
    r"""Product recommendation on the Amazon baby registry: `(train, val, test)`.

    Each registry $S$ with $2 < |S| < $ `v_size` becomes one example: the ground set
    $V$ holds $S$ and the `v_size` $- |S|$ catalogue items least cosine-similar to the
    mean feature vector of $S$, with $S$ at random positions (seeded); $S^* = S$. The
    examples are split 33% / 33% / 34% in file order. This is the construction of the
    EquiVSet reference code.

    Two file layouts are read from `root`:

    - the public one (GitHub `cgartrel/LowRankDPP.jl`, `data/Amazon-baby-registry/`):
        `1_100_100_100_<category>_regs.csv` (one registry a line, 1-based item ids) and
        `1_100_100_100_<category>_item_names.txt` (lines `<id> <name>`);
    - the EquiVSet one: `<category>.csv` and `<category>.pickle` (item id to vector).

    The papers' features were 768-d text embeddings of product descriptions, which are
    not public. With `features="names"` the item features are derived from the item
    names instead (TF-IDF and truncated SVD to `dim` dimensions, deterministic), so
    figures are not comparable with the papers'. `features="pickle"` reads the vectors
    of `<category>.pickle`.

    **Arguments:**

    - `root`: the directory holding the files.
    - `category`: one of apparel, bath, bedding, carseats, diaper, feeding, furniture,
        gear, health, media, safety, toys.
    - `features`: `"names"` or `"pickle"`, as above.
    - `dim`: the feature dimension from names (default: 32, or fewer for catalogues too
        small for that).
    - `v_size`: the ground-set size $|V|$.
    - `seed`: seeds the positions of $S$ in $V$.
    """
    path = directory(root)
    if category not in CATEGORIES:
        raise ValueError(f"unknown Amazon category {category!r}; expected one of "
                         f"{', '.join(CATEGORIES)}.")
    if features not in ("names", "pickle"):
        raise ValueError(f"`features` must be 'names' or 'pickle', got {features!r}.")
    if not isinstance(v_size, int) or v_size < 4:
        raise ValueError(f"`v_size` must be an integer of at least 4, got {v_size!r}.")
    public, reference = path / f"1_100_100_100_{category}_regs.csv", path / f"{category}.csv"
    regs_path = public if public.is_file() else reference
    if not regs_path.is_file():
        raise FileNotFoundError(f"no registry file for {category!r} in {str(path)!r}: "
                                f"expected {public.name} (or {reference.name}).")
    registries = _read_registries(regs_path)
    num_items = max(int(r.max()) for r in registries)
    if features == "names":
        names_path = existing_file(path / f"1_100_100_100_{category}_item_names.txt",
                                   "item-name file")
        names = _read_names(names_path)
        if len(names) < num_items:
            raise FileFormatError(names_path, None, f"names {len(names)} items but "
                                  f"{regs_path.name} uses ids up to {num_items}.")
        table = _name_features(names, dim, names_path)
    else:
        table = _pickle_features(existing_file(path / f"{category}.pickle",
                                               "feature pickle"), num_items)
    if len(table) < v_size:
        raise ValueError(f"`v_size` ({v_size}) exceeds the {len(table)} items of the "
                         f"{category!r} catalogue.")
    kept = [r for r in registries if 2 < len(r) < v_size]
    if len(kept) < 3:
        raise ValueError(f"{regs_path} has {len(kept)} registries with 2 < |S| < "
                         f"{v_size}; at least 3 are needed for three splits.")
    rng = np.random.default_rng(seed)
    grounds, targets = zip(*(_ground_set(table, r, v_size, rng) for r in kept))
    cut = (int(0.33 * len(kept)), int(0.66 * len(kept)))
    meta = {"source": f"Amazon baby registry, {category}", "item_type": "vector",
            "features": features, "dim": table.shape[1], "v_size": v_size, "seed": seed,
            "registries": len(registries), "kept": len(kept)}
    splits = []
    for split, part in zip(("train", "val", "test"),
                           (slice(0, cut[0]), slice(cut[0], cut[1]), slice(cut[1], None))):
        splits.append(SetDataset.from_sets(grounds[part], targets[part],
                                           name=f"amazon-{category}/{split}",
                                           metadata=meta, pool=table))
    return tuple(splits)
