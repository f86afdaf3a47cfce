"""The synthetic set-anomaly datasets of EquiVSet (Ou et al. 2022), generated exactly as
the reference code does, without scikit-learn."""

import numpy as np

from .._dataset import SetDataset


def _make_moons(num_samples: int, noise: float, seed: int):
    """The points and labels of `sklearn.datasets.make_moons(num_samples, noise=noise,
    random_state=seed)` (shuffled), reproduced with NumPy's legacy generator."""
    rng = np.random.RandomState(seed)
    n_out = num_samples // 2
    n_in = num_samples - n_out
    outer = np.linspace(0, np.pi, n_out)
    inner = np.linspace(0, np.pi, n_in)
    x = np.vstack([
        np.append(np.cos(outer), 1 - np.cos(inner)),
        np.append(np.sin(outer), 1 - np.sin(inner) - 0.5),
    ]).T
    y = np.hstack([np.zeros(n_out, np.intp), np.ones(n_in, np.intp)])
    order = np.arange(num_samples)
    rng.shuffle(order)
    x, y = x[order], y[order]
    x = x + rng.normal(scale=noise, size=x.shape)
    return x, y


def _plant(rng, points, labels, v_size, s_size):
    """The reference's construction of one set: the anomaly component is drawn, the
    first `v_size` points of the other component form V, and `s_size` random
    positions are overwritten by anomalies. Returns (V, positions)."""
    noise_label = rng.randint(2)
    anomalies, normal = points[labels == noise_label], points[labels == 1 - noise_label]
    if len(normal) < v_size or len(anomalies) < s_size:
        raise RuntimeError("too few points of a component to build the set")
    v = normal[:v_size].copy()
    s = rng.choice(list(range(v_size)), s_size, replace=False)
    v[s] = anomalies[:s_size]
    return v, s


def _split(name, split, items, subsets, metadata):
    return SetDataset.from_sets(list(items), list(subsets), name=f"{name}/{split}",
                                metadata=metadata)


def _check(v_size, s_size, num_sets):
    for arg, value in (("v_size", v_size), ("s_size", s_size), ("num_sets", num_sets)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{arg}` must be a positive integer, got {value!r}.")
    if s_size > v_size:
        raise ValueError(f"`s_size` ({s_size}) must not exceed `v_size` ({v_size}).")


def moons(
    *, v_size: int = 100, s_size: int = 10, num_sets: int = 1000
) -> tuple[SetDataset, SetDataset, SetDataset]:
    r"""Two-moons set anomaly detection: `(train, val, test)`.

    Each ground set holds `v_size` points of one moon (noise 0.1, scaled by 2, shifted
    by $(-1, -0.2)$), `s_size` of them, at random positions, replaced by points of the
    other moon; $S^*$ is those positions. Seeds as in the reference code (`make_moons`
    seeded by `split * 1000 + set`, everything else by NumPy seed 1), so the sets are
    the reference's sets.

    **Arguments:**

    - `v_size`: the ground-set size $|V|$.
    - `s_size`: the number of anomalies $|S^*|$.
    - `num_sets`: sets per split.
    """
    _check(v_size, s_size, num_sets)
    rng = np.random.RandomState(1)
    splits = []
    for split_index, split in enumerate(("train", "val", "test")):
        items, subsets = [], []
        for idx in range(num_sets):
            x, y = _make_moons(2 * v_size, 0.1, split_index * 1000 + idx)
            x = x.astype(np.float32) * 2 + np.array([-1, -0.2], np.float32)
            v, s = _plant(rng, x, y, v_size, s_size)
            items.append(v)
            subsets.append(s)
        meta = {"source": "EquiVSet two moons", "v_size": v_size, "s_size": s_size}
        splits.append(_split("moons", split, items, subsets, meta))
    return tuple(splits)


def gaussian(
    *, v_size: int = 100, s_size: int = 10, num_sets: int = 1000
) -> tuple[SetDataset, SetDataset, SetDataset]:
    r"""Gaussian-mixture set anomaly detection: `(train, val, test)`.

    Points are drawn from two Gaussians with std 0.5 centred at
    $\pm(1/\sqrt 2, 1/\sqrt 2)$; each ground set holds `v_size` points of one component
    with `s_size` of them, at random positions, replaced by points of the other. Seeded
    as the reference code (NumPy seed 1 for all three splits in turn).

    **Arguments:** as [`setfix.datasets.moons`][].
    """
    _check(v_size, s_size, num_sets)
    rng = np.random.RandomState(1)
    centers = np.array([[1, 1], [-1, -1]]) / np.sqrt(2)
    splits = []
    for split in ("train", "val", "test"):
        items, subsets = [], []
        for _ in range(num_sets):
            points = np.empty((4 * v_size, 2))
            labels = np.empty(4 * v_size, np.intp)
            for i in range(4 * v_size):  # the reference's draw order: randn, randint
                points[i] = rng.randn(2) * 0.5
                labels[i] = rng.randint(2)
                points[i] += centers[labels[i]]
            v, s = _plant(rng, points.astype(np.float32), labels, v_size, s_size)
            items.append(v)
            subsets.append(s)
        meta = {"source": "EquiVSet Gaussian mixture", "v_size": v_size, "s_size": s_size}
        splits.append(_split("gaussian", split, items, subsets, meta))
    return tuple(splits)
