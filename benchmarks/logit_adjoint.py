"""The cost of taking the implicit adjoint in the logits
(`FixedPointForm(in_logits=True)`, `idiffmf`'s form with a `CertifiedScaling`) against
the adjoint in psi: the median wall time of one jitted training step (value and gradient
of the mean-field likelihood) and of one forward solve, on a batch of Moons sets, for
the references' DeepSet under `NormScaling` and for the certified superset energy with
only its interactions scaled.

    python -m benchmarks logit_adjoint [--quick]

`--quick` uses 8 sets of 12 items and 2 repeats (a smoke test, not a figure).
"""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import setfix as sf
from setfix.experiments import build_model, Experiment

from ._common import quick_flag, save


CASES = {
    "deepset-norm": (Experiment(), sf.NormScaling()),
    "superset-smooth-certified-interactions": (
        Experiment(energy="superset-smooth", scaling="certified-interactions"),
        sf.CertifiedScaling(0.9, interactions_only=True)),
}


def _median_seconds(fn, model, repeats):
    jax.block_until_ready(fn(model, jax.random.key(0)))
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(model, jax.random.key(r + 1)))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(config, scaling, in_logits, data, repeats):
    items, mask, target = data
    model = build_model(config, (items.shape[-1],), jax.random.key(0))
    method = eqx.tree_at(lambda m: m.form, sf.idiffmf(scaling),
                         sf.FixedPointForm(in_logits=in_logits))
    negatives = mask & ~target

    @eqx.filter_jit
    def step(model, key):
        loss = eqx.filter_value_and_grad(method.objective.loss, has_aux=True)
        (value, _), grads = loss(model, method, items, mask, target, negatives, key=key)
        return value, grads

    @eqx.filter_jit
    def forward(model, key):
        return method(model, items, mask, key=key).psi

    return {"step_seconds": _median_seconds(step, model, repeats),
            "forward_seconds": _median_seconds(forward, model, repeats)}


def main(argv):
    quick = quick_flag(argv)
    sets, v_size, repeats = (8, 12, 2) if quick else (128, 100, 15)
    train, _, _ = sf.datasets.moons(v_size=v_size, s_size=max(2, v_size // 10),
                                    num_sets=sets)
    data = tuple(jnp.asarray(x[:sets]) for x in (train.items, train.mask, train.target))
    rows = []
    for name, (config, scaling) in CASES.items():
        for in_logits in (False, True):
            row = {"case": name, "in_logits": in_logits,
                   **measure(config, scaling, in_logits, data, repeats)}
            print(f"{name:40s} in_logits={in_logits!s:5s}  step "
                  f"{row['step_seconds'] * 1e3:8.1f} ms  forward "
                  f"{row['forward_seconds'] * 1e3:8.1f} ms", flush=True)
            rows.append(row)
    save("logit_adjoint_quick" if quick else "logit_adjoint",
         {"sets": sets, "v_size": v_size, "repeats": repeats}, rows)
