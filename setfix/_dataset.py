"""Oracle datasets as padded arrays with masks."""

from collections.abc import Iterator, Sequence
from typing import Any

import equinox as eqx
import numpy as np


def as_compute_dtype(features: np.ndarray) -> np.ndarray:
    """Features as the models compute on them: a float16 store (images) as float32."""
    return features.astype(np.float32) if features.dtype == np.float16 else features


class SetDataset(eqx.Module):
    r"""A collection of oracle examples $(V, S^*)$ as padded host arrays.

    **Attributes:**

    - `items`: `(N, n, d)` item features (or `(N, n, ...)` for images), padded to the
        largest ground set with zeros; or, when `pool` is given, `(N, n)` integer rows
        of `pool` (padding: any valid row, masked out).
    - `mask`: `(N, n)` boolean, true for real items.
    - `target`: `(N, n)` boolean, the oracle's subset $S^*$ (only real items).
    - `name`: a label for reports.
    - `metadata`: anything else worth keeping (source, seed, construction).
    - `pool`: `None`, or a `(M, ...)` table of item features shared by all sets. Large
        items (fingerprints, images) that recur across sets are stored once; batches
        gather their rows.

    **Example:**

    ```python
    import numpy as np
    import setfix as sf

    sets = [np.random.rand(5, 2), np.random.rand(3, 2)]     # ground sets of 5 and 3 items
    data = sf.SetDataset.from_sets(sets, [[0, 4], [1]])     # S* as indices
    assert data.items.shape == (2, 5, 2) and data.mask.sum() == 8
    assert data.target[1].tolist() == [False, True, False, False, False]
    ```
    """

    items: np.ndarray
    mask: np.ndarray
    target: np.ndarray
    name: str = ""
    metadata: dict[str, Any] = eqx.field(default_factory=dict)
    pool: np.ndarray | None = None

    def __check_init__(self):
        items, mask, target, pool = self.items, self.mask, self.target, self.pool
        for arg, value in (("items", items), ("mask", mask), ("target", target)):
            if not isinstance(value, np.ndarray):
                raise TypeError(f"`{arg}` must be a NumPy array, got {type(value).__name__}.")
        if pool is None:
            if items.ndim < 3:
                raise ValueError(
                    f"`items` must have shape (num_sets, n, ...features), got {items.shape}."
                )
            if not np.issubdtype(items.dtype, np.floating):
                raise TypeError(f"`items` must be floating point, got {items.dtype}.")
        else:
            if not isinstance(pool, np.ndarray) or pool.ndim < 2:
                raise ValueError(
                    "`pool` must be a NumPy array of shape (num_rows, ...features), got "
                    f"{getattr(pool, 'shape', type(pool).__name__)}."
                )
            if not np.issubdtype(pool.dtype, np.floating):
                raise TypeError(f"`pool` must be floating point, got {pool.dtype}.")
            if items.ndim != 2 or not np.issubdtype(items.dtype, np.integer):
                raise ValueError(
                    "with a `pool`, `items` must be a (num_sets, n) integer array of pool "
                    f"rows, got shape {items.shape} and dtype {items.dtype}."
                )
            if items.size and (items.min() < 0 or items.max() >= len(pool)):
                raise ValueError(
                    f"`items` must index rows of `pool` in [0, {len(pool)}), got "
                    f"{items.min()}..{items.max()}."
                )
        if len(items) == 0:
            raise ValueError("`items` holds no sets: a dataset needs at least one set.")
        for arg, value in (("mask", mask), ("target", target)):
            if value.shape != items.shape[:2]:
                raise ValueError(
                    f"`{arg}` must have shape {items.shape[:2]} to match `items` "
                    f"{items.shape}, got {value.shape}."
                )
            if value.dtype != np.bool_:
                raise TypeError(f"`{arg}` must be boolean, got {value.dtype}.")
        if items.shape[1] == 0 or np.any(~mask.any(axis=1)):
            bad = int(np.argmin(mask.any(axis=1))) if items.shape[1] else 0
            raise ValueError(f"set {bad} has an empty ground set (no real items in `mask`).")
        if np.any(target & ~mask):
            bad = int(np.argmax((target & ~mask).any(axis=1)))
            raise ValueError(f"`target` of set {bad} marks padded items (outside `mask`).")
        if pool is not None:
            finite = np.isfinite(pool.reshape(len(pool), -1)).all(axis=1)
            if not finite.all():
                raise ValueError(
                    f"row {int(np.argmin(finite))} of `pool` contains NaN or infinite values."
                )
        elif not np.all(np.isfinite(items)):
            bad = int(np.argmax(~np.isfinite(items.reshape(len(items), -1)).all(axis=1)))
            raise ValueError(f"`items` of set {bad} contains NaN or infinite values.")
        if not target.any():
            raise ValueError(
                "every set's `target` is empty: the oracle chose no items, so there is "
                "nothing to learn or to score (the Jaccard index of two empty sets is "
                "1 by convention)."
            )

    @property
    def num_empty_targets(self) -> int:
        """How many sets have an empty oracle subset $S^* = \\emptyset$. They carry no
        positive example; [`setfix.evaluate`][] leaves them out of its Jaccard figures
        (where any rule that predicts nothing would score 1) and counts them."""
        return int(np.sum(~self.target.any(axis=1)))

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """The shape of one item's features: `(d,)` for vectors, `(C, H, W)` for images."""
        return self.items.shape[2:] if self.pool is None else self.pool.shape[1:]

    def features(self, index=slice(None)) -> np.ndarray:
        """The `(len, n, ...)` item features of the sets selected by `index`, gathered
        from `pool` when the dataset has one (a float16 pool is returned as float32)."""
        if self.pool is None:
            return self.items[index]
        return as_compute_dtype(self.pool[self.items[index]])

    @classmethod
    def from_sets(
        cls,
        items: Sequence[np.ndarray],
        targets: Sequence[np.ndarray | Sequence[int] | Sequence[bool]],
        *,
        name: str = "",
        metadata: dict[str, Any] | None = None,
        dtype=np.float32,
        pool: np.ndarray | None = None,
    ) -> "SetDataset":
        """Pads ground sets of different sizes into one dataset.

        **Arguments:**

        - `items`: one `(n_i, ...)` array of item features per set, or with `pool`, one
            `(n_i,)` array of pool rows per set.
        - `targets`: per set, the oracle's subset as indices into that set's items or
            as a boolean vector of length `n_i`.
        - `name`, `metadata`: as the attributes.
        - `dtype`: the floating dtype of the stored features (of `pool`, if given).
        - `pool`: an optional `(M, ...)` table of item features shared by the sets.
        """
        if len(items) != len(targets):
            raise ValueError(
                f"`items` has {len(items)} sets but `targets` has {len(targets)}."
            )
        if len(items) == 0:
            raise ValueError("`items` is empty: a dataset needs at least one set.")
        shapes = {np.shape(x)[1:] for x in items}
        if len(shapes) != 1:
            raise ValueError(f"all sets' items must share a feature shape, got {shapes}.")
        n = max(len(x) for x in items)
        feature_shape = shapes.pop()
        if pool is not None:
            if feature_shape != ():
                raise ValueError(
                    "with a `pool`, each set's `items` must be a 1-d array of pool rows, "
                    f"got per-item shape {feature_shape}."
                )
            pool = np.asarray(pool, dtype)
            out = np.zeros((len(items), n), np.int64)
        else:
            out = np.zeros((len(items), n) + feature_shape, dtype)
        mask = np.zeros((len(items), n), bool)
        target = np.zeros((len(items), n), bool)
        for s, (x, t) in enumerate(zip(items, targets)):
            size = len(x)
            out[s, :size] = x
            mask[s, :size] = True
            t = np.asarray(t)
            if t.dtype == np.bool_:
                if t.shape != (size,):
                    raise ValueError(
                        f"boolean target of set {s} must have shape ({size},), got {t.shape}."
                    )
                target[s, :size] = t
            else:
                if t.size and (t.min() < 0 or t.max() >= size):
                    raise ValueError(
                        f"target indices of set {s} must lie in [0, {size}), got "
                        f"{t.min()}..{t.max()}."
                    )
                if len(np.unique(t)) > size:
                    raise ValueError(f"|S*| > |V| in set {s}.")
                target[s, t] = True
        return cls(out, mask, target, name, dict(metadata or {}), pool)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index) -> "SetDataset":
        """The sets selected by `index` (an int, slice or index array)."""
        index = np.atleast_1d(np.arange(len(self))[index])
        return SetDataset(self.items[index], self.mask[index], self.target[index],
                          self.name, self.metadata, self.pool)

    def batches(
        self, batch_size: int, *, rng: np.random.Generator | None = None,
        drop_last: bool = False, gather: bool = True,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yields `(items, mask, target)` batches of `batch_size` sets, shuffled when
        `rng` is given, the last one smaller unless `drop_last`. With `gather=False`, a
        dataset with a `pool` yields its `(len, n)` rows of the pool as `items` instead
        of their features (see [`setfix.PooledItems`][])."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        stop = len(self) - (len(self) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            items = self.features(idx) if gather or self.pool is None else self.items[idx]
            yield items, self.mask[idx], self.target[idx]


SetDataset.__init__.__doc__ = """**Arguments:**

- `items`: `(N, n, ...)` floating-point item features, zero where padded.
- `mask`: `(N, n)` boolean, true for real items; every set needs at least one.
- `target`: `(N, n)` boolean, the oracle's subsets (real items only).
- `name`: a label for reports.
- `metadata`: anything else worth keeping.
- `pool`: optional `(M, ...)` floating-point table of item features; `items` then holds
    `(N, n)` integer rows of it.

Use [`setfix.SetDataset.from_sets`][] to build one from ground sets of different sizes.
"""


def concatenate(*parts: SetDataset) -> SetDataset:
    """The sets of several datasets in one (padded to the largest ground set)."""
    if not parts or not all(isinstance(p, SetDataset) for p in parts):
        raise TypeError("`concatenate` needs one or more setfix.SetDataset arguments.")
    n = max(p.items.shape[1] for p in parts)
    if len({p.feature_shape for p in parts}) != 1:
        raise ValueError("the datasets' item features have different shapes.")
    pools = [p.pool for p in parts]
    if any(pool is None for pool in pools) and not all(pool is None for pool in pools):
        raise ValueError("cannot concatenate datasets with and without a `pool`.")

    def pad(x):
        widths = [(0, 0), (0, n - x.shape[1])] + [(0, 0)] * (x.ndim - 2)
        return np.pad(x, widths)

    items, pool = [p.items for p in parts], pools[0]
    if pool is not None and not all(other is pool for other in pools):
        offsets = np.cumsum([0] + [len(other) for other in pools[:-1]])
        items = [x + offset for x, offset in zip(items, offsets)]
        pool = np.concatenate(pools)
    return SetDataset(
        np.concatenate([pad(x) for x in items]),
        np.concatenate([pad(p.mask) for p in parts]),
        np.concatenate([pad(p.target) for p in parts]),
        parts[0].name,
        parts[0].metadata,
        pool,
    )
