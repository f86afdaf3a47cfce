"""A small synthetic oracle task for the command-line demo (private).

Two-moons sets as in the reference EquiVSet code: each ground set holds points of one
moon, with a few replaced by points of the other; the oracle's subset is those points.
"""

import numpy as np


def _moons(rng: np.random.Generator, num: int, noise: float = 0.1):
    """`num` points of each of the two moons (as scikit-learn's `make_moons`), scaled
    by 2 and shifted by (-1, -0.2)."""
    angles = rng.uniform(0, np.pi, size=(2, num))
    upper = np.stack([np.cos(angles[0]), np.sin(angles[0])], -1)
    lower = np.stack([1 - np.cos(angles[1]), 0.5 - np.sin(angles[1])], -1)
    moons = np.stack([upper, lower]) + rng.normal(0, noise, size=(2, num, 2))
    return 2 * moons - np.array([1.0, 0.2])


def moon_sets(num_sets: int, *, size: int = 100, anomalies: int = 10, seed: int = 0):
    """`(items, target)`: `num_sets` ground sets of `size` 2-d points with `anomalies`
    points from the other moon, and the indicator of those points."""
    rng = np.random.default_rng(seed)
    items = np.empty((num_sets, size, 2), np.float32)
    target = np.zeros((num_sets, size), bool)
    for s in range(num_sets):
        pts = _moons(rng, size)
        main = rng.integers(2)
        items[s] = pts[main]
        where = rng.choice(size, anomalies, replace=False)
        items[s, where] = pts[1 - main, :anomalies]
        target[s, where] = True
    return items, target
