"""Data parallelism: one epoch on two (host) devices gives the parameters of one device,
with items as arrays and as rows of a pool, and for an energy that sees its ground
set."""

import os
import subprocess
import sys
import textwrap

import pytest


SCRIPT = textwrap.dedent(
    """
    import equinox as eqx
    import jax
    import numpy as np
    import optax
    import setfix as sf

    assert len(jax.devices()) == 2, jax.devices()
    train, val, _ = sf.datasets.moons(v_size=12, s_size=2, num_sets=16)
    parallel = sf.DataParallel()
    items, mask = parallel.batch(train.items[:8], train.mask[:8])
    assert len(items.sharding.device_set) == 2 and not items.sharding.is_fully_replicated
    assert items.addressable_shards[0].data.shape == (4, 12, 2)
    odd, = parallel.batch(train.items[:3])  # not divisible: replicated
    assert odd.sharding.is_fully_replicated

    method = sf.idiffmf(num_samples=3)
    model = sf.DeepSet(2, hidden=8, width=8, key=jax.random.key(0))
    # Plain SGD: Adam divides by the root of the second moment, which turns round-off
    # in near-zero gradient entries (reductions split over devices) into steps of
    # size ~learning_rate, so it cannot be compared to float tolerance.
    kw = dict(key=jax.random.key(1), batch_size=8, epochs=1, optimizer=optax.sgd(0.1),
              progress=False)
    one = sf.fit(model, method, train, val, devices=jax.devices()[:1], **kw)
    two = sf.fit(model, method, train, val, **kw)
    def leaves(m):
        return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(m, eqx.is_array))]

    a, b = leaves(one.model), leaves(two.model)
    moved = max(float(np.max(np.abs(x - y))) for x, y in zip(a, leaves(model)))
    diff = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))
    assert moved > 1e-3, moved
    assert diff < 1e-5, diff
    assert abs(one.history[0]["loss"] - two.history[0]["loss"]) < 1e-5

    # Items as rows of a pool smaller than a batch (passed as PooledItems: the rows
    # split over the devices, the pool on each).
    rng = np.random.default_rng(0)
    pooled = sf.SetDataset(rng.integers(0, 40, train.mask.shape), train.mask,
                           train.target, pool=rng.normal(size=(40, 2)).astype(np.float32))
    one = sf.fit(model, method, pooled, pooled, devices=jax.devices()[:1], **kw)
    two = sf.fit(model, method, pooled, pooled, **kw)
    pooled_diff = max(float(np.max(np.abs(x - y)))
                      for x, y in zip(leaves(one.model), leaves(two.model)))
    assert pooled_diff < 1e-5, pooled_diff
    assert max(float(np.max(np.abs(x - y)))
               for x, y in zip(leaves(one.model), leaves(model))) > 1e-3
    # An energy that sees its ground set: its per-set contexts split with the batch.
    attention = sf.AttentionSet(2, hidden=8, width=8, heads=2, inducing=4,
                                key=jax.random.key(0))
    one = sf.fit(attention, method, train, val, devices=jax.devices()[:1], **kw)
    two = sf.fit(attention, method, train, val, **kw)
    attention_diff = max(float(np.max(np.abs(x - y)))
                         for x, y in zip(leaves(one.model), leaves(two.model)))
    assert attention_diff < 1e-5, attention_diff
    assert max(float(np.max(np.abs(x - y)))
               for x, y in zip(leaves(one.model), leaves(attention))) > 1e-3
    print("OK", moved, diff, pooled_diff, attention_diff)
    """
)


@pytest.mark.slow
def test_two_devices_match_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("OK")
