"""Items as rows of a shared pool: every consumer gives what it gives on the gathered
items, and `fit`/`evaluate` pass a small pool this way."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import setfix as sf
from setfix._fit import device_batches
from setfix._sharding import DataParallel

from .helpers import random_table


POOL = jax.random.normal(jax.random.key(0), (12, 3))
ROWS = jax.random.randint(jax.random.key(1), (4, 6), 0, 12)
MASK = jnp.arange(6) < jnp.array([[6], [5], [4], [6]])
TARGET = jnp.zeros((4, 6), bool).at[:, :2].set(True)


def _max_difference(a, b):
    a, b = eqx.filter(a, eqx.is_inexact_array), eqx.filter(b, eqx.is_inexact_array)
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: jnp.max(jnp.abs(x - y)), a, b)))


@pytest.mark.slow
@pytest.mark.parametrize("method", [sf.idiffmf(), sf.diffmf()], ids=["idiffmf", "diffmf"])
def test_solves_and_gradients_match_the_gathered_items(method):
    """The solve (one set and a batch) and the implicit gradient of the loss are those of
    `pool[rows]`; only the encoder's cost differs (float64: rounding, ~1e-15)."""
    f = sf.DeepSet(encoder=sf.MLPEncoder(3, 8, width=16, key=jax.random.key(2)),
                   width=16, key=jax.random.key(3))
    key = jax.random.key(4)
    one = method.solve(f, sf.PooledItems(POOL, ROWS[0]), key=key)
    assert jnp.allclose(one.psi, method.solve(f, POOL[ROWS[0]], key=key).psi, atol=1e-12)
    negatives = sf.sample_negatives(jax.random.key(5), TARGET, MASK, 1)

    def grad(items):
        return eqx.filter_grad(lambda m: sf.MeanFieldNLL().loss(
            m, method, items, MASK, TARGET, negatives, key=key)[0])(f)

    pooled, gathered = grad(sf.PooledItems(POOL, ROWS)), grad(POOL[ROWS])
    assert _max_difference(pooled, gathered) < 1e-10
    assert _max_difference(pooled, jax.tree.map(jnp.zeros_like, pooled)) > 1e-3


def test_a_set_function_without_pooled_form_gathers_its_items():
    f = random_table(jax.random.key(6), 6)
    solve = sf.MeanField(sf.MonteCarlo(4), sf.NormScaling())
    a = solve(f, sf.PooledItems(POOL, ROWS), key=jax.random.key(7))
    b = solve(f, POOL[ROWS], key=jax.random.key(7))
    assert jnp.allclose(a.psi, b.psi, atol=1e-12)


@pytest.mark.slow
def test_equivset_update_matches_the_gathered_items():
    """Both halves of EquiVSet's step (the recognition network on the ELBO, the set
    function through its mean-field step): with SGD at rate 1 the parameter change is
    the gradient, so equal parameters mean equal gradients."""
    keys = jax.random.split(jax.random.key(8), 3)
    model = sf.AmortizedSetFunction(
        sf.DeepSet(3, width=16, key=keys[0]),
        sf.RecognitionNetwork(3, width=16, key=keys[1]))
    method, optimizer = sf.equivset_copula(), optax.sgd(1.0)
    objective = method.objective
    state = objective.init(optimizer, model)
    negatives = sf.sample_negatives(keys[2], TARGET, MASK, 1)
    a, _, stats_a = objective.update(model, state, method, sf.PooledItems(POOL, ROWS), MASK,
                                     TARGET, negatives, key=keys[2], optimizer=optimizer)
    b, _, stats_b = objective.update(model, state, method, POOL[ROWS], MASK, TARGET,
                                     negatives, key=keys[2], optimizer=optimizer)
    assert _max_difference(a, b) < 1e-10 and _max_difference(a, model) > 1e-3
    for name in ("loss", "neg_elbo"):
        assert jnp.allclose(stats_a[name], stats_b[name], atol=1e-12)
    psi = method.solve(model, sf.PooledItems(POOL, ROWS), MASK, key=keys[2]).psi
    assert jnp.allclose(psi, method.solve(model, POOL[ROWS], MASK, key=keys[2]).psi,
                        atol=1e-12)


def test_the_theory_checks_take_pooled_items():
    f = sf.DeepSet(3, width=16, key=jax.random.key(9))
    args = dict(key=jax.random.key(13), num_points=4)
    a = sf.lipschitz_estimate(f, sf.PooledItems(POOL, ROWS[0]), **args)
    b = sf.lipschitz_estimate(f, POOL[ROWS[0]], **args)
    assert jnp.allclose(a, b, rtol=1e-12)


def _dataset(num_sets=10, pool_rows=12):
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(pool_rows, 3))
    rows = [rng.choice(pool_rows, 6, replace=False) for _ in range(num_sets)]
    return sf.SetDataset.from_sets(rows, [[0, 1]] * num_sets, pool=pool)


# x64 (for the 1e-9 agreement) with float32 features: standard promotion mixes them.
@pytest.mark.standard_promotion
@pytest.mark.slow
def test_fit_and_evaluate_pass_a_small_pool_as_pooled_items():
    data = _dataset()
    parallel = DataParallel()
    (items, mask, target), = list(device_batches(data, 10, parallel))
    assert isinstance(items, sf.PooledItems) and items.rows.shape == (10, 6)
    assert jnp.array_equal(items.gather(), data.features())
    # A float16 store (images) is computed on in float32, as the gathered features are.
    half = sf.SetDataset(data.items, data.mask, data.target,
                         pool=data.pool.astype(np.float16))
    items, _, _ = next(device_batches(half, 10, parallel))
    assert items.pool.dtype == jnp.float32 == half.features().dtype
    # A pool with more rows than a batch has items is cheaper gathered.
    items, _, _ = next(device_batches(data, 2, parallel))
    assert isinstance(items, jax.Array) and items.shape == (2, 6, 3)
    gathered = sf.SetDataset(data.features(), data.mask, data.target)
    args = dict(key=jax.random.key(10), epochs=2, batch_size=5, progress=False)
    model = sf.DeepSet(3, width=16, key=jax.random.key(11))
    a = sf.fit(model, sf.idiffmf(), data, data, **args)
    b = sf.fit(model, sf.idiffmf(), gathered, gathered, **args)
    for ra, rb in zip(a.history, b.history, strict=True):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-9)
        assert ra["val_jaccard"] == pytest.approx(rb["val_jaccard"], rel=1e-9)


@pytest.mark.bad_input
def test_bad_pooled_items_are_refused_with_the_argument_named():
    with pytest.raises(TypeError, match="`rows` must be an integer array"):
        sf.PooledItems(POOL, ROWS.astype(float))
    with pytest.raises(TypeError, match="`pool` must be floating point"):
        sf.PooledItems(jnp.arange(6).reshape(3, 2), ROWS)
    with pytest.raises(ValueError, match=r"`rows` must have shape \(n,\) or \(batch, n\)"):
        sf.PooledItems(POOL, ROWS[None])
    solve = sf.MeanField(sf.MonteCarlo(4), sf.NormScaling())
    f = sf.DeepSet(3, key=jax.random.key(12))
    with pytest.raises(ValueError, match="`mask` must have the shape of `items.rows`"):
        solve(f, sf.PooledItems(POOL, ROWS), MASK[:, :5], key=jax.random.key(0))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"index rows of `items.pool` in \[0, 12\)"):
        solve(f, sf.PooledItems(POOL, ROWS.at[0, 0].set(12)), key=jax.random.key(0))
    with pytest.raises(eqx.EquinoxRuntimeError, match="`items.pool` contains NaN"):
        solve(f, sf.PooledItems(POOL.at[3, 0].set(jnp.nan), ROWS), key=jax.random.key(0))
