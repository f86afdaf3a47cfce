"""Energies that see their ground set: `SupersetDeepSet` and `AttentionSet`, plain and
smooth (certified).

Shapes are fixed (6 slots) so that Hypothesis examples reuse one compilation per
energy."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest
from hypothesis import given, strategies as st

import setfix as sf

from .helpers import fd_check, multilinear_grad, multilinear_hessian, random_like


SLOTS = 6
BITS = jnp.asarray([[(b >> i) & 1 for i in range(SLOTS)] for b in range(2**SLOTS)],
                   jnp.float64)
ENERGIES = ("superset", "attention", "superset-smooth", "attention-smooth")


def _energy(name, seed=0, gain=1.0):
    """A small float64 energy; `gain` multiplies its parameters (strong interactions)."""
    kind, _, smooth = name.partition("-")
    options = dict(hidden=4, width=6, depth=1, smooth=bool(smooth), rank=2,
                   kernel_features=8, kernel_dims=2, key=jax.random.key(seed))
    if kind == "attention":
        f = sf.AttentionSet(3, blocks=1, inducing=3, heads=2, **options)
    else:
        f = sf.SupersetDeepSet(3, **options)
    f = jax.tree.map(lambda x: gain * x if eqx.is_inexact_array(x) else x, f)
    return jax.tree.map(lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, f)


def _items(seed, n=SLOTS):
    return jax.random.normal(jax.random.key(seed + 1), (n, 3), jnp.float64)


@eqx.filter_jit
def _values(f, items):
    """F(S, V) for every subset S of the slots (bitmask order), V all the items."""
    return jax.vmap(lambda s: f(items, s))(BITS)


@pytest.mark.parametrize("name", ENERGIES)
@given(seed=st.integers(0, 2**16), data=st.data())
def test_invariant_to_the_order_of_s_and_v(name, seed, data):
    """F(pi S, pi V) = F(S, V) on every subset, for a random permutation pi."""
    f, items = _energy(name, seed), _items(seed)
    perm = np.asarray(data.draw(st.permutations(range(SLOTS))))
    bits = np.asarray(BITS)
    # Subset b of the permuted items is subset `inverse` of the original ones.
    inverse = (bits[:, perm.argsort()] * (1 << np.arange(SLOTS))).sum(axis=1).astype(int)
    want = np.asarray(_values(f, items))[inverse]
    np.testing.assert_allclose(_values(f, items[perm]), want, rtol=1e-12, atol=1e-12)
    assert np.std(want) > 1e-6  # the energy is not constant


@eqx.filter_jit
def _gradient(f, items, mask, psi, estimator, scaling, key):
    problem = sf.MeanFieldProblem(f, items, mask, estimator=estimator, scaling=scaling,
                                  key=key)
    return problem.scaled_gradient(psi)


@pytest.mark.parametrize("name", ENERGIES)
def test_padding_changes_nothing(name):
    """A set padded with far-off items (mask false) has the values, the scaled
    gradient and the certificate of the set alone; also as `PooledItems` and in a
    batch with other sets."""
    f, n = _energy(name), 4
    items = _items(0, n)
    padded = jnp.concatenate([items, 50 + jnp.zeros((SLOTS - n, 3))])
    mask = jnp.arange(SLOTS) < n
    psi = jnp.linspace(0.1, 0.9, SLOTS)
    scaling = sf.CertifiedScaling(0.9) if f.smooth else sf.NormScaling()
    key = jax.random.key(0)
    alone = _gradient(f, items, None, psi[:n], sf.Exact(), scaling, key)
    with_pad = _gradient(f, padded, mask, psi, sf.Exact(), scaling, key)
    np.testing.assert_allclose(with_pad[:n], alone, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(with_pad[n:], 0)
    # Monte Carlo draws per slot, so compare two paddings of the same shape.
    other = padded.at[n:].set(-30.0)
    monte_carlo = [_gradient(f, x, mask, psi, sf.MonteCarlo(3), scaling, key)
                   for x in (padded, other)]
    np.testing.assert_allclose(*monte_carlo, rtol=1e-10, atol=1e-12)
    # A batch: the padded set beside the full one; and the same batch from a pool.
    batch = jnp.stack([padded, _items(1)])
    masks = jnp.stack([mask, jnp.ones(SLOTS, bool)])
    psis = jnp.stack([psi, psi])
    batched = _gradient(f, batch, masks, psis, sf.Exact(), scaling, key)
    np.testing.assert_allclose(batched[0, :n], alone, rtol=1e-10, atol=1e-12)
    full = _gradient(f, _items(1), None, psi, sf.Exact(), scaling, key)
    np.testing.assert_allclose(batched[1], full, rtol=1e-10, atol=1e-12)
    pool = batch.reshape(-1, 3)
    rows = jnp.arange(2 * SLOTS).reshape(2, SLOTS)
    pooled = _gradient(f, sf.PooledItems(pool, rows), masks, psis, sf.Exact(), scaling, key)
    np.testing.assert_allclose(pooled, batched, rtol=1e-10, atol=1e-12)
    if f.smooth:
        np.testing.assert_allclose(
            sf.interaction_certificate(f, padded, mask, scaling),
            sf.interaction_certificate(f, items, None, scaling), rtol=1e-10)


@pytest.mark.parametrize("name", ["superset", "attention"])
def test_folded_form_is_the_same_function(name):
    """Folding rho's first layer changes the cost, not the function: values on every
    subset and gradients in every parameter agree."""
    f = _energy(name)
    folded = f.folded()
    assert type(folded) is not type(f)
    items = _items(0)
    mask = jnp.ones(SLOTS, bool)

    def total(model, fold):
        g = model.folded() if fold else model
        rows, context = g.context(g.embed(items), mask)
        return jax.vmap(lambda s: g.readout(s @ rows, context))(BITS)

    np.testing.assert_allclose(total(f, True), total(f, False), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(total(f, False), _values(f, items), rtol=1e-12, atol=1e-12)
    plain = eqx.filter_grad(lambda m: jnp.sum(total(m, False) ** 2))(f)
    through_fold = eqx.filter_grad(lambda m: jnp.sum(total(m, True) ** 2))(f)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(through_fold)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # The smooth energies and a readout without a hidden layer have nothing to fold.
    assert _energy(name + "-smooth").folded() is not None
    shallow = sf.SupersetDeepSet(3, depth=0, key=jax.random.key(0))
    assert shallow.folded() is shallow


@eqx.filter_jit
def _map_and_jacobian(f, items, mask, psi):
    def grad(p):
        t = sf.fixed_point_map(f, items, mask, p, estimator=sf.Exact(),
                               scaling=sf.NoScaling())
        return jax.scipy.special.logit(jnp.where(mask, t, 0.5))
    return grad(psi), jax.jacfwd(grad)(psi)


@pytest.mark.parametrize("name", ["superset-smooth", "attention-smooth"])
@given(seed=st.integers(0, 2**16), n=st.integers(2, SLOTS), gain=st.floats(0.3, 2.0))
def test_smooth_closed_form_and_bound(name, seed, n, gain):
    """The smooth energies' closed-form gradient and Hessian of F~ equal enumeration
    from the definition (with padding), and the certificate bounds |H|_2."""
    f = _energy(name, seed, gain)
    items = _items(seed)
    mask = jnp.arange(SLOTS) < n
    values = np.asarray(jax.vmap(lambda s: f(items[:n], s[:n]))(BITS))[: 2**n]
    psi = np.random.default_rng(seed).uniform(0.05, 0.95, SLOTS)
    grad, hess = _map_and_jacobian(f, items, mask, jnp.asarray(psi))
    np.testing.assert_allclose(grad[:n], multilinear_grad(values, psi[:n]), rtol=1e-8,
                               atol=1e-10)
    want_hess = multilinear_hessian(values, psi[:n])
    np.testing.assert_allclose(hess[:n, :n], want_hess, rtol=1e-7, atol=1e-9)
    bound = 4 * float(sf.interaction_certificate(f, items, mask, sf.NoScaling()))
    assert np.linalg.norm(want_hess, 2) <= bound * (1 + 1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name", ENERGIES)
def test_implicit_gradients_match_finite_differences(name):
    """The gradient of a loss of psi* through the solve (implicit adjoint, exact
    estimator, float64) in the energy's parameters and the items, against central
    differences; error O(eps^2) + O(tol / eps) ~ 1e-10."""
    f, items = _energy(name), _items(0, 5)
    scaling = sf.CertifiedScaling(0.9) if f.smooth else sf.NormScaling()
    mf = sf.MeanField(sf.Exact(), scaling, optx.FixedPointIteration(rtol=0.0, atol=1e-12),
                      max_steps=2000)
    weights = jax.random.normal(jax.random.key(1), (5,), jnp.float64)
    assert bool(mf(f, items).converged)

    @eqx.filter_jit
    def loss(params):
        f, items = params
        return jnp.dot(weights, mf(f, items).psi)

    params = (f, items)
    (analytic,) = fd_check(loss, params, [random_like(params, jax.random.key(2))])
    assert abs(analytic) > 1e-8  # the direction reaches the loss


@pytest.mark.bad_input
def test_bad_input():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`heads` \\(3\\) must divide"):
        sf.AttentionSet(3, hidden=8, heads=3, key=key)
    with pytest.raises(ValueError, match="`blocks` must be a non-negative integer"):
        sf.AttentionSet(3, blocks=-1, key=key)
    with pytest.raises(ValueError, match="`inducing` must be a positive integer"):
        sf.AttentionSet(3, inducing=0, key=key)
    with pytest.raises(ValueError, match="`width` must be positive"):
        sf.SupersetDeepSet(3, width=0, key=key)
    with pytest.raises(ValueError, match="`rank` must be a positive integer"):
        sf.SupersetDeepSet(3, smooth=True, rank=0, key=key)
    with pytest.raises(ValueError, match="exactly one of `in_features`"):
        sf.SupersetDeepSet(key=key)
    f = sf.AttentionSet(3, hidden=8, width=8, key=key)
    with pytest.raises(ValueError, match=r"feature shape \(4,\)"):
        sf.MeanFieldProblem(f, jnp.zeros((5, 4)), estimator=sf.Exact())
    with pytest.raises(TypeError, match="no interaction certificate"):
        sf.interaction_certificate(f, jnp.zeros((5, 3)))
    with pytest.raises(TypeError, match="AbstractPooledSetFunction"):
        sf.AmortizedSetFunction(f, sf.RecognitionNetwork(3, key=key))


@pytest.mark.user_defaults
@pytest.mark.parametrize("name", ["superset", "attention-smooth"])
def test_trains_with_fit(name):
    """Each energy trains with `fit` (float32) and changes; under the certified
    scaling every solve converges (a proven contraction)."""
    train, val, _ = sf.datasets.moons(v_size=12, s_size=3, num_sets=48)
    val = val[:16]
    kind, _, smooth = name.partition("-")
    cls = sf.AttentionSet if kind == "attention" else sf.SupersetDeepSet
    f = cls(2, hidden=16, width=16, smooth=bool(smooth), key=jax.random.key(0))
    method = sf.idiffmf(sf.CertifiedScaling(0.9) if smooth else sf.NormScaling())
    result = sf.fit(f, method, train, val, key=jax.random.key(1), epochs=2,
                    batch_size=16, progress=False)
    assert all(np.isfinite(r["loss"]) for r in result.history)
    if smooth:
        assert min(r["train_converged"] for r in result.history) == 1.0
    assert not eqx.tree_equal(result.model, f)
