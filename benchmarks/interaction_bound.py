"""The cost of the certified interaction bound of the pairwise energies (the smooth
`DeepSet`, `SupersetDeepSet` and `AttentionSet`) when its spectral bound squares the
smaller Gram matrix of the repulsive features, `(n, n)` or `(width, width)` (today),
against always the `(width, width)` one (before): the median wall time of the bound
alone on a batch of random features, and of one jitted training step (value and
gradient of the mean-field likelihood of `idiffmf(CertifiedScaling(0.9))`) of
`DeepSet(smooth=True)` on a batch of substitutes sets (36 items), for the default 64
random Fourier features and for more. Both forms give the same bound up to rounding
(tests/test_certified.py).

    python -m benchmarks interaction_bound [--quick]

`--quick` uses 4 sets and 2 repeats (a smoke test, not a figure).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import setfix as sf
from setfix import _interactions

from ._common import quick_flag, save, timed


def _wide_gram(x):
    """The form before: always the (width, width) Gram matrix."""
    return jnp.swapaxes(x, -1, -2) @ x


GRAMS = {"smaller": _interactions.smaller_gram, "width": _wide_gram}


def _median_seconds(fn, args, repeats):
    return timed(fn, *args, repeats=repeats, statistic=np.median)[1]


def bound_seconds(gram, batch, n, width, repeats):
    x = jax.random.normal(jax.random.key(0), (batch, n, width))
    return _median_seconds(jax.jit(lambda x: _interactions.spectral_bound(gram(x))),
                           (x,), repeats)


def step_seconds(gram, kernel_features, data, repeats):
    """One training step with `gram` in the bound (patched in before tracing)."""
    items, mask, target = data
    original = _interactions.smaller_gram
    _interactions.smaller_gram = gram
    try:
        k1, k2 = jax.random.split(jax.random.key(0))
        model = sf.DeepSet(encoder=sf.MLPEncoder(items.shape[-1], 64, width=128, key=k1),
                           width=256, smooth=True, kernel_features=kernel_features,
                           key=k2)
        method = sf.idiffmf(sf.CertifiedScaling(0.9))
        negatives = mask & ~target

        @eqx.filter_jit
        def step(model, key):
            loss = eqx.filter_value_and_grad(method.objective.loss, has_aux=True)
            (value, _), grads = loss(model, method, items, mask, target, negatives,
                                     key=key)
            return value, grads

        return _median_seconds(step, (model, jax.random.key(1)), repeats)
    finally:
        _interactions.smaller_gram = original


def main(argv):
    quick = quick_flag(argv)
    sets, repeats = (4, 2) if quick else (64, 15)
    train, _, _ = sf.datasets.substitutes(sets, seed=0)
    data = tuple(jnp.asarray(x[:sets]) for x in (train.items, train.mask, train.target))
    n = data[0].shape[1]
    rows = []
    # The repulsive width with 64 Fourier features (the default before 256) is 80.
    shapes = ((n, 80), (n, 16 + 256), (n, 16 + 512), (100, 80))
    for size, width in shapes[:1] if quick else shapes:
        row = {"what": "bound", "batch": sets, "n": size, "width": width}
        for name, gram in GRAMS.items():
            row[f"{name}_seconds"] = bound_seconds(gram, sets, size, width, repeats)
        rows.append(row)
    for features in (64,) if quick else (64, 256, 512):
        row = {"what": "training step", "batch": sets, "n": n,
               "width": 16 + features, "kernel_features": features}
        for name, gram in GRAMS.items():
            row[f"{name}_seconds"] = step_seconds(gram, features, data, repeats)
        rows.append(row)
    for row in rows:
        print(f"{row['what']:14s} batch {row['batch']:3d}  n {row['n']:4d}  width "
              f"{row['width']:4d}:  smaller Gram {row['smaller_seconds'] * 1e3:8.2f} ms,"
              f"  (width, width) Gram {row['width_seconds'] * 1e3:8.2f} ms", flush=True)
    save("interaction_bound_quick" if quick else "interaction_bound",
         {"sets": sets, "repeats": repeats}, rows)
