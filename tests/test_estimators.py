"""Estimators of the multilinear extension against enumeration from the definitions.

Statistical tolerances. For a table with max |F| = M, each sampled difference
D = F(S + i) - F(S - i) lies in [-2M, 2M], so by Hoeffding's inequality and a union
bound over n coordinates and R independent keys, the mean of m samples satisfies
|g_hat_i - g_i| <= t_m = sqrt(8 M^2 log(2 n R / delta) / m) for all of them with
probability >= 1 - delta; we use delta = 1e-9, so a failure is a bug, not bad luck.
The value uses F(S) in [-M, M]: t_m = sqrt(2 M^2 log(2 R / delta) / m).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import setfix as sf
from setfix._evaluator import split_set_function

from .helpers import (
    multilinear,
    multilinear_grad,
    multilinear_hessian,
    random_table,
)


DELTA = 1e-9


def _setup(n=5, seed=0, max_abs=1.0):
    key = jax.random.key(seed)
    f = random_table(key, n, max_abs)
    items = jnp.zeros((n, 1))
    readout, embedding = split_set_function(f, items)
    psi = jax.random.uniform(jax.random.fold_in(key, 1), (n,), jnp.float64, 0.2, 0.8)
    return f, readout, embedding, psi, jnp.ones(n, bool)


def test_exact_matches_definition():
    f, readout, emb, psi, mask = _setup()
    values = np.asarray(f.values)
    est = sf.Exact()
    assert np.allclose(est.value(readout, emb, psi, mask), multilinear(values, psi))
    grad = est.gradient(readout, emb, psi, mask)
    assert np.allclose(grad, multilinear_grad(values, psi), atol=1e-12)
    hess = jax.jacfwd(lambda p: est.gradient(readout, emb, p, mask))(psi)
    assert np.allclose(hess, multilinear_hessian(values, psi), atol=1e-12)
    # Reverse mode gives the same (symmetric) Hessian.
    hess_rev = jax.jacrev(lambda p: est.gradient(readout, emb, p, mask))(psi)
    assert np.allclose(hess_rev, hess, atol=1e-12)


def test_exact_pooled_equals_table():
    """A DeepSet through its embed/readout split gives the same multilinear extension
    as the table of its values."""
    n = 5
    key = jax.random.key(3)
    f = sf.DeepSet(3, hidden=8, width=16, key=key)
    items = jax.random.normal(jax.random.fold_in(key, 1), (n, 3), jnp.float64)
    codes = np.arange(2**n)
    table_sets = jnp.asarray(((codes[:, None] >> np.arange(n)) & 1).astype(float))
    table = sf.TableSetFunction(jax.vmap(lambda s: f(items, s))(table_sets))
    psi = jnp.linspace(0.1, 0.9, n)
    mask = jnp.ones(n, bool)
    est = sf.Exact()
    g_pooled = est.gradient(*split_set_function(f, items), psi, mask)
    g_table = est.gradient(*split_set_function(table, items), psi, mask)
    assert np.allclose(g_pooled, g_table, atol=1e-12)


def test_exact_padding_has_zero_probability():
    f, readout, emb, psi, mask = _setup(n=5)
    mask = mask.at[3:].set(False)
    values = np.asarray(f.values)
    ref = multilinear_grad(values, np.where(mask, psi, 0))
    grad = sf.Exact().gradient(readout, emb, psi, mask)
    assert np.allclose(grad[:3], ref[:3], atol=1e-12)
    assert np.all(grad[3:] == 0)


def test_exact_refuses_large_sets_unless_closed_form():
    """Enumeration stops at 20 items; a closed-form multilinear extension does not
    enumerate, so `Exact` takes it at any size (the same map as Monte Carlo, which
    draws nothing for it)."""
    f = sf.DeepSet(2, hidden=4, width=4, key=jax.random.key(0))
    items = jax.random.normal(jax.random.key(1), (21, 2))
    with pytest.raises(ValueError, match="exceeds the limit of 20"):
        sf.fixed_point_map(f, items, None, jnp.full(21, 0.5), estimator=sf.Exact(),
                           scaling=sf.NormScaling())
    smooth = sf.DeepSet(2, hidden=4, width=4, smooth=True, key=jax.random.key(0))
    items = jax.random.normal(jax.random.key(1), (60, 2))
    psi = jax.random.uniform(jax.random.key(2), (60,))
    exact, sampled = (sf.fixed_point_map(smooth, items, None, psi, estimator=estimator,
                                         scaling=sf.NoScaling(), key=jax.random.key(3))
                      for estimator in (sf.Exact(), sf.MonteCarlo(1)))
    np.testing.assert_allclose(exact, sampled, rtol=1e-6)


@pytest.mark.parametrize("per_coordinate", [False, True])
def test_monte_carlo_gradient_hoeffding(per_coordinate):
    n, repeats, max_abs = 5, 64, 1.0
    f, readout, emb, psi, mask = _setup(n, max_abs=max_abs)
    exact_grad = np.asarray(sf.Exact().gradient(readout, emb, psi, mask))
    exact_value = float(sf.Exact().value(readout, emb, psi, mask))
    keys = jax.random.split(jax.random.key(7), repeats)
    mean_errors = []
    for m in (16, 256, 4096):
        est = sf.MonteCarlo(m, per_coordinate=per_coordinate)

        def one(key):
            noise = est.noise(key, n)
            return (
                est.gradient(readout, emb, psi, mask, noise),
                est.value(readout, emb, psi, mask, noise),
            )

        grads, values = jax.vmap(one)(keys)
        err = np.abs(np.asarray(grads) - exact_grad)
        t_grad = math.sqrt(8 * max_abs**2 * math.log(2 * n * repeats / DELTA) / m)
        t_value = math.sqrt(2 * max_abs**2 * math.log(2 * repeats / DELTA) / m)
        assert err.max() <= t_grad
        assert np.abs(np.asarray(values) - exact_value).max() <= t_value
        mean_errors.append(err.mean())
    # The error shrinks like 1/sqrt(m): x16 samples, about /4 error.
    assert mean_errors[1] < 0.5 * mean_errors[0]
    assert mean_errors[2] < 0.5 * mean_errors[1]


@pytest.mark.parametrize("hessian", [sf.ScoreHessian(), sf.PairwiseHessian()], ids=repr)
def test_monte_carlo_hessian_unbiased_and_shrinking(hessian):
    """Over R keys the mean Hessian-JVP estimate is within 6 standard errors of the
    exact H v, and the standard deviation of one estimate halves when m is x4."""
    n, repeats = 5, 256
    f, readout, emb, psi, mask = _setup(n)
    v = jax.random.normal(jax.random.key(11), (n,), jnp.float64)
    exact = multilinear_hessian(np.asarray(f.values), np.asarray(psi)) @ np.asarray(v)
    keys = jax.random.split(jax.random.key(5), repeats)
    stds = []
    for m in (16, 64):
        est = sf.MonteCarlo(m, hessian=hessian)

        def one(key):
            noise = est.noise(key, n)
            fn = lambda p: est.gradient(readout, emb, p, mask, noise)  # noqa: E731
            return jax.jvp(fn, (psi,), (v,))[1]

        hv = np.asarray(jax.vmap(one)(keys))
        std = hv.std(axis=0, ddof=1)
        assert np.all(np.abs(hv.mean(axis=0) - exact) <= 6 * std / math.sqrt(repeats))
        stds.append(std)
    ratio = stds[1] / stds[0]
    assert np.all((ratio > 0.3) & (ratio < 0.75)), ratio


def test_monte_carlo_pairwise_hoeffding():
    """Each pairwise term lies in [-4M, 4M]|v_j|, so one estimate of (Hv)_i is within
    sqrt(32 M^2 |v|_1^2 log(2nR/delta) / m) of the truth."""
    n, m, repeats = 4, 512, 16
    f, readout, emb, psi, mask = _setup(n)
    v = jnp.array([0.3, -1.0, 0.5, 0.2])
    exact = multilinear_hessian(np.asarray(f.values), np.asarray(psi)) @ np.asarray(v)
    est = sf.MonteCarlo(m, hessian=sf.PairwiseHessian())

    def one(key):
        noise = est.noise(key, n)
        fn = lambda p: est.gradient(readout, emb, p, mask, noise)  # noqa: E731
        return jax.jvp(fn, (psi,), (v,))[1]

    hv = np.asarray(jax.vmap(one)(jax.random.split(jax.random.key(2), repeats)))
    bound = math.sqrt(32 * float(jnp.sum(jnp.abs(v))) ** 2 * math.log(2 * n * repeats / DELTA) / m)
    assert np.abs(hv - exact).max() <= bound


def test_pairwise_hessian_batch_size_changes_memory_not_values():
    """`PairwiseHessian(batch_size)` only chooses how many samples are formed at once."""
    n = 5
    f, readout, emb, psi, mask = _setup(n)
    v = jax.random.normal(jax.random.key(3), (n,), jnp.float64)

    def hv(rule):
        est = sf.MonteCarlo(6, hessian=rule)
        noise = est.noise(jax.random.key(1), n)
        fn = lambda p: est.gradient(readout, emb, p, mask, noise)  # noqa: E731
        return jax.jvp(fn, (psi,), (v,))[1]

    np.testing.assert_allclose(hv(sf.PairwiseHessian(batch_size=1)),
                               hv(sf.PairwiseHessian(batch_size=6)), rtol=1e-12, atol=1e-12)
    assert sf.MonteCarlo(4, hessian=sf.PairwiseHessian()).symmetric_hessian
    assert not sf.MonteCarlo(4).symmetric_hessian
    assert not sf.MonteCarlo(4, hessian=sf.PairwiseHessian(),
                             per_coordinate=True).symmetric_hessian


def test_monte_carlo_zero_hessian_mode():
    n = 5
    f, readout, emb, psi, mask = _setup(n)
    est = sf.MonteCarlo(32, hessian=sf.ZeroHessian())
    noise = est.noise(jax.random.key(0), n)
    jac = jax.jacfwd(lambda p: est.gradient(readout, emb, p, mask, noise))(psi)
    assert np.all(jac == 0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "hessian", [sf.ScoreHessian(), sf.PairwiseHessian(), sf.ZeroHessian()], ids=repr)
@pytest.mark.parametrize("per_coordinate", [False, True])
def test_monte_carlo_forward_equals_reverse(hessian, per_coordinate):
    """The custom JVP is linear and transposes: jacfwd and jacrev agree, w.r.t. psi and
    w.r.t. the set function's parameters, also under vmap."""
    n = 4
    key = jax.random.key(0)
    f = sf.DeepSet(2, hidden=4, width=8, key=key)
    items = jax.random.normal(key, (n, 2), jnp.float64)
    est = sf.MonteCarlo(6, per_coordinate=per_coordinate, hessian=hessian)
    mask = jnp.ones(n, bool)
    psi = jnp.linspace(0.2, 0.8, n)

    def g(psi, items, key):
        readout, emb = split_set_function(f, items)
        return est.gradient(readout, emb, psi, mask, est.noise(key, n))

    keys = jax.random.split(key, 3)
    for argnums in (0, 1):
        fwd = jax.vmap(jax.jacfwd(g, argnums=argnums), (None, None, 0))(psi, items, keys)
        rev = jax.vmap(jax.jacrev(g, argnums=argnums), (None, None, 0))(psi, items, keys)
        assert np.allclose(fwd, rev, atol=1e-10)


def test_monte_carlo_parameter_derivative_matches_finite_differences():
    """With the samples held fixed, the estimate is smooth in the items; its JVP is the
    exact derivative."""
    n = 6
    key = jax.random.key(1)
    f = sf.DeepSet(2, hidden=4, width=8, key=key)
    items = jax.random.normal(key, (n, 2), jnp.float64)
    direction = jax.random.normal(jax.random.key(2), (n, 2), jnp.float64)
    est = sf.MonteCarlo(8)
    mask = jnp.ones(n, bool)
    psi = jnp.full(n, 0.5)
    noise = est.noise(jax.random.key(3), n)

    def g(items):
        return est.gradient(*split_set_function(f, items), psi, mask, noise)

    _, tangent = jax.jvp(g, (items,), (direction,))
    eps = 1e-6
    fd = (g(items + eps * direction) - g(items - eps * direction)) / (2 * eps)
    assert np.allclose(tangent, fd, rtol=1e-6, atol=1e-8)


def test_monte_carlo_common_random_numbers_and_padding():
    n = 5
    f, readout, emb, psi, mask = _setup(n)
    est = sf.MonteCarlo(16)
    noise = est.noise(jax.random.key(4), n)
    g1 = est.gradient(readout, emb, psi, mask, noise)
    g2 = est.gradient(readout, emb, psi, mask, est.noise(jax.random.key(4), n))
    assert np.array_equal(g1, g2)
    # The first n uniforms do not depend on how many items follow.
    padded = est.noise(jax.random.key(4), n + 3)
    assert np.array_equal(padded[..., :n], noise)


@pytest.mark.bad_input
def test_monte_carlo_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_samples"):
        sf.MonteCarlo(0)
    with pytest.raises(TypeError, match="`hessian` must be a Hessian rule"):
        sf.MonteCarlo(4, hessian="exact")  # pyright: ignore
    # The strings of earlier versions name the value that replaces them.
    with pytest.raises(TypeError, match=r"use `hessian=setfix.PairwiseHessian\(\)`"):
        sf.MonteCarlo(4, hessian="pairwise")  # pyright: ignore
    with pytest.raises(ValueError, match="batch_size"):
        sf.PairwiseHessian(batch_size=0)


def test_toggled_readouts_in_blocks_are_the_same(monkeypatch):
    """On large ground sets the toggled readouts run in blocks of items (padded to whole
    blocks, recomputed in the backward pass): the gradient estimate, its JVP in psi and
    its derivative in the parameters and embeddings are those of the readouts all at
    once, to float64 rounding."""
    import setfix._monte_carlo as monte_carlo

    f = sf.DeepSet(3, hidden=8, width=16, key=jax.random.key(0))
    items = jax.random.normal(jax.random.key(1), (37, 3))
    readout, embedding = split_set_function(f, items)
    estimator = sf.MonteCarlo(3)
    noise = estimator.noise(jax.random.key(2), 37)
    psi = jax.random.uniform(jax.random.key(3), (37,))
    mask = jnp.ones(37, bool).at[30:].set(False)

    def everything():
        def grad(readout, embedding, psi):
            return estimator.gradient(readout, embedding, psi, mask, noise)

        value, jvp = jax.jvp(lambda p: grad(readout, embedding, p), (psi,), (psi,))
        vjp = eqx.filter_vjp(lambda r, e: grad(r, e, psi), readout, embedding)[1]
        return value, jvp, vjp(jnp.arange(37.0))

    reference = everything()
    blocks = []
    lax_map = jax.lax.map
    monkeypatch.setattr(monte_carlo, "BLOCK_ENTRIES", 3 * 16 * 5)  # 5 items a block
    monkeypatch.setattr(jax.lax, "map", lambda fn, xs: blocks.append(xs[1].shape)
                        or lax_map(fn, xs))
    blocked = everything()
    assert blocks and blocks[0] == (8, 5, 16)  # 37 items: 8 blocks of 5, 3 padded
    for a, b in zip(jax.tree.leaves(blocked), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
