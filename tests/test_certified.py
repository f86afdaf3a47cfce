"""Interaction certificates: the smooth (pairwise) DeepSet's closed form and bound,
`CertifiedScaling`, `interaction_certificate`, and the contraction they certify.

Shapes are fixed (7 slots, a mask choosing the real items) so that Hypothesis examples
reuse one compilation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
import pytest
from hypothesis import given, strategies as st

import setfix as sf

from .helpers import fd_check, multilinear_grad, multilinear_hessian, random_like, random_table


SLOTS = 7
BITS = jnp.asarray([[(b >> i) & 1 for i in range(SLOTS)] for b in range(2**SLOTS)],
                   jnp.float64)


def _smooth(seed, n_features=3, depth=1, rank=2, gain=1.0):
    """A small smooth DeepSet whose parameters are multiplied by `gain` (large gains
    make strong interactions, so the bound is tested where it matters)."""
    f = sf.DeepSet(n_features, hidden=4, width=6, depth=depth, smooth=True, rank=rank,
                   key=jax.random.key(seed))
    f = jax.tree.map(lambda x: gain * x if eqx.is_inexact_array(x) else x, f)
    return jax.tree.map(lambda x: x.astype(jnp.float64) if eqx.is_inexact_array(x) else x, f)


def _problem(seed, n, **kw):
    key = jax.random.key(seed)
    items = jax.random.normal(key, (SLOTS, 3), jnp.float64)
    return _smooth(seed, **kw), items, jnp.arange(SLOTS) < n


@eqx.filter_jit
def _values(f, items):
    """F(S) for every subset S of the slots (bitmask order)."""
    return jax.vmap(lambda s: f(items, s))(BITS)


def _real_values(f, items, n):
    """The 2^n values of F on subsets of the first n items, from the definition."""
    return np.asarray(_values(f, items))[: 2**n]


@eqx.filter_jit
def _map_and_jacobian(f, items, mask, psi, estimator, key):
    def grad(p):
        t = sf.fixed_point_map(f, items, mask, p, estimator=estimator,
                               scaling=sf.NoScaling(), key=key)
        return jax.scipy.special.logit(jnp.where(mask, t, 0.5))
    return grad(psi), jax.jacfwd(grad)(psi)


@given(seed=st.integers(0, 2**16), n=st.integers(1, SLOTS), gain=st.floats(0.3, 2.0))
def test_smooth_deepset_closed_form_is_the_multilinear_extension(seed, n, gain):
    """The closed-form gradient and Hessian of F~ equal enumeration from the
    definition, under both estimators, with padding."""
    f, items, mask = _problem(seed, n, gain=gain)
    values = _real_values(f, items, n)
    psi = np.random.default_rng(seed).uniform(0.05, 0.95, SLOTS)
    want_grad = multilinear_grad(values, psi[:n])
    want_hess = multilinear_hessian(values, psi[:n])
    for estimator in (sf.Exact(), sf.MonteCarlo(2)):
        grad, hess = _map_and_jacobian(f, items, mask, jnp.asarray(psi), estimator,
                                       jax.random.key(0))
        np.testing.assert_allclose(grad[:n], want_grad, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(hess[:n, :n], want_hess, rtol=1e-7, atol=1e-9)


@given(seed=st.integers(0, 2**16), n=st.integers(2, SLOTS), depth=st.integers(0, 2),
       gain=st.floats(0.3, 3.0))
def test_smooth_deepset_bound_dominates_the_hessian(seed, n, depth, gain):
    """B(V) >= |H(psi)|_2 at random psi, H from the definition (enumeration), for
    random parameters."""
    f, items, mask = _problem(seed, n, depth=depth, gain=gain)
    bound = 4 * float(_certificate(f, items, mask, sf.NoScaling()))
    values = _real_values(f, items, n)
    rng = np.random.default_rng(seed)
    norms = [np.linalg.norm(multilinear_hessian(values, rng.uniform(size=n)), 2)
             for _ in range(2)]
    assert max(norms) <= bound * (1 + 1e-9)
    # The pairwise Hessian does not depend on psi.
    np.testing.assert_allclose(norms, norms[0], rtol=1e-8, atol=1e-12)


@given(seed=st.integers(0, 2**16), n=st.sampled_from([3, 6]))
def test_table_bound_dominates_the_hessian(seed, n):
    """A table's bound is >= |H(psi)| computed by brute force from the definition."""
    f = random_table(jax.random.key(seed), n, 1.0)
    items = jnp.zeros((n, 1))
    bound = float(f.interaction_bound(jnp.eye(n), jnp.ones(n, bool)))
    rng = np.random.default_rng(seed)
    for _ in range(3):
        psi = rng.uniform(size=n)
        hess = multilinear_hessian(np.asarray(f.values), psi)
        assert np.linalg.norm(hess, 2) <= bound * (1 + 1e-9)
    assert float(sf.interaction_certificate(f, items)) == pytest.approx(bound / 4)


@eqx.filter_jit
def _certificate(f, items, mask, scaling):
    return sf.interaction_certificate(f, items, mask, scaling)


@eqx.filter_jit
def _estimate(f, items, mask, scaling, key):
    return sf.lipschitz_estimate(f, items, mask, scaling=scaling, key=key, num_points=8)


@eqx.filter_jit
def _solve(f, items, mask, scaling, psi0):
    mf = sf.MeanField(sf.Exact(), scaling, optx.FixedPointIteration(rtol=0.0, atol=1e-9),
                      max_steps=10_000)
    return mf(f, items, mask, psi0=psi0)


# omega is a static field of CertifiedScaling (each value compiles anew): a few values.
@pytest.mark.slow
@given(seed=st.integers(0, 2**16), n=st.integers(2, SLOTS), omega=st.sampled_from([0.5, 0.9]),
       gain=st.floats(0.5, 4.0), interactions_only=st.booleans())
def test_certificate_bounds_the_estimated_lipschitz_constant(seed, n, omega, gain,
                                                             interactions_only):
    """The certificate of CertifiedScaling(omega) is <= omega and >= the power-iteration
    estimate of |dT/dpsi| at random points; the map contracts: iteration from two random
    starts meets, within iteration_bound(certificate, tol, n) steps. The same with the
    singleton gains kept at full strength (`interactions_only`)."""
    f, items, mask = _problem(seed, n, gain=gain)
    key = jax.random.key(seed)
    scaling = sf.CertifiedScaling(omega, interactions_only=interactions_only)
    certificate = float(_certificate(f, items, mask, scaling))
    assert certificate <= omega * (1 + 1e-9)
    assert float(_estimate(f, items, mask, scaling, key)) <= certificate * (1 + 1e-6)

    tol = 1e-9
    starts = jax.random.uniform(jax.random.fold_in(key, 1), (2, SLOTS), jnp.float64)
    a, b = (_solve(f, items, mask, scaling, p) for p in starts)
    assert bool(a.converged) and bool(b.converged)
    assert float(jnp.max(jnp.abs(a.psi - b.psi))) <= 10 * tol / (1 - certificate)
    bound = sf.iteration_bound(max(certificate, 1e-3), tol, n)
    assert int(a.num_steps) <= bound + 1 and int(b.num_steps) <= bound + 1


def _scales(f, items, mask, scaling):
    """The energy scale CertifiedScaling picks per set (certificate * 4 / bound)."""
    certificate = sf.interaction_certificate(f, items, mask, scaling)
    bound = sf.interaction_certificate(f, items, mask, sf.NoScaling())
    return certificate / bound


def test_scale_is_per_set_and_monotone():
    f = _smooth(0, gain=10.0)
    items = jax.random.normal(jax.random.key(1), (3, 6, 3), jnp.float64)
    mask = jnp.array([[True] * 6, [True] * 4 + [False] * 2, [True] * 6])
    scaling = sf.CertifiedScaling(0.9)
    together = _scales(f, items, mask, scaling)
    alone = jnp.stack([_scales(f, items[i], mask[i], scaling) for i in range(3)])
    np.testing.assert_allclose(together, alone, rtol=1e-10)
    # Padding does not change a set's scale.
    np.testing.assert_allclose(_scales(f, items[1, :4], None, scaling), together[1], rtol=1e-10)
    # Stronger interactions, smaller scale; a smaller omega, a smaller scale.
    stronger = eqx.tree_at(lambda g: g.pairwise, f, 3 * f.pairwise)
    assert bool(jnp.all(_scales(stronger, items, mask, scaling) < together))
    assert bool(jnp.all(together < 1))  # no set at the cap
    assert bool(jnp.all(_scales(f, items, mask, sf.CertifiedScaling(0.5)) < together))
    # The scale never exceeds max_scale, and weak interactions reach it.
    weak = _smooth(0, gain=0.05)
    capped = _scales(weak, items, mask, sf.CertifiedScaling(0.9, max_scale=0.7))
    np.testing.assert_allclose(capped, 0.7)


@pytest.mark.parametrize("interactions_only", [False, True])
def test_certified_solution_depends_on_the_set_alone(interactions_only):
    """In a batch each set is solved with its own scale (and singleton gains): the same
    psi as alone, and padding changes nothing."""
    f = _smooth(2, gain=2.0)
    items = jax.random.normal(jax.random.key(3), (3, 6, 3), jnp.float64)
    mask = jnp.array([[True] * 6, [True] * 4 + [False] * 2, [True] * 6])
    scaling = sf.CertifiedScaling(0.9, interactions_only=interactions_only)
    mf = sf.MeanField(sf.Exact(), scaling, optx.FixedPointIteration(rtol=0.0, atol=1e-10),
                      max_steps=1000)
    batch = mf(f, items, mask)
    for i in range(3):
        alone = mf(f, items[i, :6 if i != 1 else 4])
        np.testing.assert_allclose(batch.psi[i, :alone.psi.shape[0]], alone.psi, atol=1e-9)
    assert float(jnp.max(jnp.abs(batch.psi[1, 4:]))) == 0


def _tempered_map(values, psi, scale):
    """sigma(g0 + c (grad F~(psi) - g0)) from the definition (enumeration)."""
    g0 = multilinear_grad(values, np.zeros_like(psi))
    grad = multilinear_grad(values, psi)
    return 1 / (1 + np.exp(-(g0 + scale * (grad - g0))))


@given(seed=st.integers(0, 2**16), n=st.integers(1, SLOTS), gain=st.floats(0.5, 6.0))
def test_interactions_only_is_the_tempered_mean_field(seed, n, gain):
    """With `interactions_only`, the map is sigma(g0 + c (grad F~ - g0)) with g0 the
    singleton gains F({i}) - F(empty) and c = min(1, 4 omega / B): checked against
    enumeration on a smooth DeepSet (with padding) and on a table, whose F(empty) is not
    0; at c = 1 it is the plain certified map."""
    f, items, mask = _problem(seed, n, gain=gain)
    values = _real_values(f, items, n)
    psi = np.random.default_rng(seed).uniform(0.05, 0.95, SLOTS)
    scaling = sf.CertifiedScaling(0.9, interactions_only=True)
    bound = 4 * float(_certificate(f, items, mask, sf.NoScaling()))
    scale = min(1.0, 4 * 0.9 / bound) if bound > 0 else 1.0
    got = sf.fixed_point_map(f, items, mask, jnp.asarray(psi), estimator=sf.Exact(),
                             scaling=scaling)
    np.testing.assert_allclose(got[:n], _tempered_map(values, psi[:n], scale),
                               rtol=1e-8, atol=1e-12)
    assert bool(jnp.all(got[n:] == 0))

    table = random_table(jax.random.key(seed), 4, gain)
    table_items = jnp.zeros((4, 1))
    bound = float(table.interaction_bound(jnp.eye(4), jnp.ones(4, bool)))
    scale = min(1.0, 4 * 0.9 / bound)
    got = sf.fixed_point_map(table, table_items, None, jnp.asarray(psi[:4]),
                             estimator=sf.Exact(), scaling=scaling)
    np.testing.assert_allclose(got, _tempered_map(np.asarray(table.values), psi[:4], scale),
                               rtol=1e-8, atol=1e-12)
    plain = sf.fixed_point_map(table, table_items, None, jnp.asarray(psi[:4]),
                               estimator=sf.Exact(), scaling=sf.CertifiedScaling(0.9))
    if scale == 1.0:
        np.testing.assert_allclose(got, plain, rtol=1e-12)


def test_interactions_only_keeps_the_evidence_of_large_sets():
    """On a large ground set with strong interactions the scale c is small: scaling the
    whole energy shrinks the items' own evidence with it (psi stays near 1/2), keeping
    the singleton gains at full strength does not (psi reaches 0 and 1), under the same
    certificate."""
    f = _smooth(6, gain=2.0)
    f = eqx.tree_at(lambda g: (g.rho.layers[-1].weight, g.rho.layers[-1].bias), f,
                    (3 * f.rho.layers[-1].weight, 3 * f.rho.layers[-1].bias))
    items = jax.random.normal(jax.random.key(7), (60, 3), jnp.float64)
    whole, free = (sf.CertifiedScaling(0.9, interactions_only=flag) for flag in (False, True))
    assert float(_certificate(f, items, None, whole)) == pytest.approx(
        float(_certificate(f, items, None, free)), rel=1e-12)
    scale = 4 * float(_certificate(f, items, None, whole)) / (
        4 * float(_certificate(f, items, None, sf.NoScaling())))
    assert scale < 0.25
    # The smooth DeepSet's closed form: `Exact` needs no enumeration at 60 items.
    solver = optx.FixedPointIteration(rtol=0.0, atol=1e-9)
    psi_whole = sf.MeanField(sf.Exact(), whole, solver)(f, items).psi
    sol = sf.MeanField(sf.Exact(), free, solver)(f, items)
    assert bool(sol.converged)
    # Measured: c = 0.21; decided items (|psi - 1/2| > 0.4): 73 % against 3 %.
    decided = lambda psi: float(jnp.mean(jnp.abs(psi - 0.5) > 0.4))  # noqa: E731
    assert decided(psi_whole) < 0.1 and decided(sol.psi) > 0.5


@pytest.mark.slow
def test_interactions_only_implicit_gradient_matches_finite_differences():
    """The gradient of a loss of psi* through the solve (implicit adjoint, exact
    estimator, float64), now also through the singleton gains, against central
    differences in the parameters and the items; error O(eps^2) + O(tol / eps)."""
    f, items, mask = _problem(3, 6, gain=3.0)
    scaling = sf.CertifiedScaling(0.9, interactions_only=True)
    mf = sf.MeanField(sf.Exact(), scaling, optx.FixedPointIteration(rtol=0.0, atol=1e-12),
                      max_steps=2000)
    weights = jax.random.normal(jax.random.key(1), (SLOTS,), jnp.float64)
    assert bool(mf(f, items, mask).converged)

    @eqx.filter_jit
    def loss(params):
        f, items = params
        return jnp.dot(weights, mf(f, items, mask).psi)

    params = (f, items)
    (analytic,) = fd_check(loss, params, [random_like(params, jax.random.key(2))])
    assert abs(analytic) > 1e-8



@pytest.mark.slow
def test_training_likelihood_gradient_matches_finite_differences():
    """The training objective (the likelihood from the solution's logits, the implicit
    function theorem applied in the logits) through the solve, against central
    differences, as the test above: the logits' sigmoid is psi* at the fixed point, so
    this is the implicit gradient of Eq. 9."""
    f, items, mask = _problem(3, 6, gain=3.0)
    mf = sf.MeanField(sf.Exact(), sf.CertifiedScaling(0.9, interactions_only=True),
                      optx.FixedPointIteration(rtol=0.0, atol=1e-12), max_steps=2000,
                      form=sf.FixedPointForm(in_logits=True))
    plain = eqx.tree_at(lambda m: m.form, mf, sf.FixedPointForm())
    sol, plain_sol = mf(f, items, mask), plain(f, items, mask)
    # The same solve: psi is the solver's, the logits' sigmoid one map step on.
    assert np.array_equal(sol.psi, plain_sol.psi) and plain_sol.logits is None
    assert np.allclose(jax.nn.sigmoid(sol.logits[:6]), sol.psi[:6], atol=1e-11)
    target = jnp.zeros((1, SLOTS), bool).at[0, :2].set(True)
    negatives = mask[None] & ~target

    def loss(params):
        f, items = params
        return mf.objective.loss(f, mf, items[None], mask[None], target, negatives,
                                 key=jax.random.key(0))[0]

    params = (f, items)
    (analytic,) = fd_check(loss, params, [random_like(params, jax.random.key(2))])
    assert abs(analytic) > 1e-8


@pytest.mark.user_defaults
def test_training_likelihood_with_saturated_marginals():
    """float32, default tolerances: marginals within 1e-6 of 0 on the oracle's members
    (confidently wrong). The objective's likelihood, taken from the logits, has a
    finite gradient that is not zero (the clipped likelihood of psi is flat there),
    the same through the default GMRES adjoint as through a direct solve. The adjoint
    in psi, with the likelihood of psi, once broke that GMRES (a compound training
    run, see `setfix.FixedPointForm`)."""
    f = sf.DeepSet(3, hidden=4, width=6, smooth=True, key=jax.random.key(2))
    last = lambda g: (g.rho.layers[-1].weight, g.rho.layers[-1].bias)  # noqa: E731
    f = eqx.tree_at(last, f, tuple(40 * x for x in last(f)))
    items = jax.random.normal(jax.random.key(102), (8, 20, 3))
    mask = jnp.ones((8, 20), bool)
    scaling = sf.CertifiedScaling(0.9, interactions_only=True)
    key = jax.random.key(0)
    gmres, direct = sf.idiffmf(scaling), sf.idiffmf(scaling, linear_solver=lx.LU())
    psi = gmres(f, items, mask, key=key).psi
    lowest = jnp.argsort(psi, axis=-1)[:, :3]
    target = jnp.zeros_like(mask).at[jnp.arange(8)[:, None], lowest].set(True)
    assert float(jnp.max(jnp.where(target, psi, 0))) < 1e-6
    negatives = mask & ~target

    def flat_grad(loss, method):
        grad = eqx.filter_jit(eqx.filter_grad(loss))(f, method)
        leaves = jax.tree.leaves(eqx.filter(grad, eqx.is_inexact_array))
        return jnp.concatenate([x.ravel() for x in leaves])

    def objective(f, method):
        return method.objective.loss(f, method, items, mask, target, negatives, key=key)[0]

    def clipped(f, method):
        sol = method(f, items, mask, key=key)
        return sf.mean_over_converged(sf.mean_field_nll(sol.psi, target, mask), sol.converged)

    through_gmres, through_lu = flat_grad(objective, gmres), flat_grad(objective, direct)
    assert bool(jnp.all(jnp.isfinite(through_gmres)))
    assert float(jnp.linalg.norm(through_gmres)) > 1.0
    # Both solve the same system to rtol 1e-5 (measured: 1e-6 apart).
    assert float(jnp.linalg.norm(through_gmres - through_lu)
                 / jnp.linalg.norm(through_lu)) < 1e-4
    assert float(jnp.linalg.norm(flat_grad(clipped, direct))) == 0.0

def test_certified_psi_moves_freely():
    """Unlike NormScaling (|psi - 1/2| < ~1/(2n)), a certified solve lets a strong
    modular term push psi to near 0 and 1, while the map stays certified."""
    f = _smooth(6)
    f = eqx.tree_at(lambda g: (g.rho.layers[-1].weight, g.rho.layers[-1].bias), f,
                    (20 * f.rho.layers[-1].weight, 20 * f.rho.layers[-1].bias + 5))
    items = jax.random.normal(jax.random.key(7), (20, 3), jnp.float64)
    cert = sf.idiffmf(sf.CertifiedScaling(0.9), tolerance=1e-8)(f, items, key=jax.random.key(0))
    norm = sf.idiffmf(tolerance=1e-8)(f, items, key=jax.random.key(0))
    assert bool(cert.converged)
    assert float(jnp.max(jnp.abs(cert.psi - 0.5))) > 0.45
    assert float(jnp.max(jnp.abs(norm.psi - 0.5))) < 1 / 20


@pytest.mark.bad_input
def test_bad_input():
    for omega in (0.0, 1.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="omega"):
            sf.CertifiedScaling(omega)
    with pytest.raises(ValueError, match="max_scale"):
        sf.CertifiedScaling(0.9, max_scale=0.0)
    with pytest.raises(TypeError, match="interactions_only"):
        sf.CertifiedScaling(0.9, interactions_only="yes")
    with pytest.raises(TypeError, match="in_logits"):
        sf.FixedPointForm(in_logits=1)
    plain = sf.DeepSet(3, hidden=4, width=6, key=jax.random.key(0))
    items = jnp.ones((5, 3))
    with pytest.raises(TypeError, match="no interaction certificate"):
        sf.idiffmf(sf.CertifiedScaling())(plain, items, key=jax.random.key(0))
    with pytest.raises(TypeError, match="depends on the gradient"):
        sf.interaction_certificate(_smooth(0), items, scaling=sf.NormScaling())
    with pytest.raises(ValueError, match="rank"):
        sf.DeepSet(3, smooth=True, rank=0, key=jax.random.key(0))
    for features, dims in ((-1, 4), (8, 0), (0, 2), (8, 1.5)):
        with pytest.raises(ValueError, match="kernel_"):
            sf.DeepSet(3, smooth=True, kernel_features=features, kernel_dims=dims,
                       key=jax.random.key(0))
    for neg_num in (0, -1, 1.0, True):
        with pytest.raises(ValueError, match="neg_num"):
            sf.idiffmf(neg_num=neg_num)
        with pytest.raises(ValueError, match="neg_num"):
            sf.MeanField(neg_num=neg_num)


@pytest.mark.parametrize("shape", [(2, 5, 12), (2, 12, 5)])
def test_bound_is_the_same_from_either_gram_matrix(shape):
    """The spectral bound squares the smaller Gram matrix (n x n or k x k); both have
    the same nonzero eigenvalues, so both give the same bound, which lies between the
    exact spectral norm and min(n, k)^(1/256) times it (float64, so 1e-10 relative)."""
    from setfix._interactions import smaller_gram, spectral_bound

    x = jax.random.normal(jax.random.key(1), shape, jnp.float64)
    small = spectral_bound(smaller_gram(x))
    assert smaller_gram(x).shape[-1] == min(shape[1:])
    for big in (x @ jnp.swapaxes(x, -1, -2), jnp.swapaxes(x, -1, -2) @ x):
        np.testing.assert_allclose(small, spectral_bound(big), rtol=1e-10)
    exact = np.linalg.norm(np.asarray(x), 2, axis=(-2, -1)) ** 2
    assert np.all(exact <= np.asarray(small) * (1 + 1e-10))
    assert np.all(np.asarray(small) <= exact * min(shape[1:]) ** (1 / 256) * (1 + 1e-10))


def test_bound_is_tight_for_clusters_of_duplicates():
    """Clusters of exact duplicates (a_i one-hot in its cluster, b = 0): H = -(AA^T - I)
    has norm k - 1 for clusters of k, and the bound, which takes the smallest diagonal
    over the real items only (the padding slots are zero rows), is within the spectral
    bound's factor rank^(1/256) of it; the old bound, without the diagonal, gave k."""
    from setfix._interactions import pairwise_interaction_bound

    cluster = np.array([0, 0, 0, 1, 1, 1, 2, 2, 0, 0])  # the last two are padding
    mask = np.arange(10) < 8
    a = np.eye(3)[cluster] * mask[:, None]
    rows = np.concatenate([np.ones((10, 1)), a, np.zeros((10, 2))], axis=1)
    bound = float(pairwise_interaction_bound(jnp.asarray(rows), jnp.asarray(mask), 3))
    hessian = -(a @ a.T - np.diag(np.sum(a**2, -1)))[:8, :8]
    exact = np.linalg.norm(hessian, 2)
    assert exact == pytest.approx(2)
    assert exact <= bound <= exact * 3 ** (1 / 256) * (1 + 1e-5)


def test_fourier_features_approximate_the_gaussian_kernel():
    """z(c)^T z(c') estimates exp(-|c - c'|^2 / 2) with D features: the error of each
    pair is an average of D bounded terms (std <= 1 / sqrt(D) = 0.022 at D = 2048), so
    0.1 over 45 pairs is a 4.5-sigma margin; |z|^2 <= 2 always."""
    from setfix._interactions import fourier_features

    c = jax.random.normal(jax.random.key(0), (10, 3), jnp.float64)
    z = fourier_features(c, 2048)
    want = np.exp(-0.5 * np.sum((c[:, None] - c[None]) ** 2, axis=-1))
    got = np.asarray(z @ z.T)
    off = ~np.eye(10, dtype=bool)
    assert np.max(np.abs(got - want)[off]) < 0.1
    assert np.all(np.sum(np.asarray(z) ** 2, axis=-1) <= 2 + 1e-12)


def test_local_kernel_repels_near_duplicates_only():
    """With the local term alone (P = Q = 0, m = 0), two copies of an item interact
    by about -s^2 and two distant items hardly at all: F({i, j}) - F({i}) - F({j})."""
    f = sf.DeepSet(2, hidden=2, width=4, smooth=True, rank=1, kernel_features=512,
                   kernel_dims=2, key=jax.random.key(0))
    f = eqx.tree_at(lambda g: (g.phi.weight, g.phi.bias, g.pairwise, g.kernel),
                    f, (jnp.eye(2), jnp.zeros(2), jnp.zeros((2, 2)), 3 * jnp.eye(2)))
    items = jnp.array([[0.0, 0.0], [0.01, 0.0], [2.0, 0.0]])

    def interaction(i, j):
        one = jnp.zeros(3)
        return float(f(items, one.at[jnp.array([i, j])].set(1)) - f(items, one.at[i].set(1))
                     - f(items, one.at[j].set(1)))

    assert interaction(0, 1) < -0.85  # exp(-(3 * 0.01)^2 / 2) = 0.9996, up to sampling
    assert abs(interaction(0, 2)) < 0.15  # exp(-18) ~ 0, up to sampling


@pytest.mark.user_defaults
@pytest.mark.slow
def test_certified_preset_trains_on_the_full_likelihood():
    """`idiffmf(CertifiedScaling)` trains on every non-member (its psi are
    probabilities); the paper's presets on one negative per member; `fit` takes the
    method's choice unless told otherwise."""
    assert sf.idiffmf(sf.CertifiedScaling()).neg_num is None
    assert sf.onestep(sf.CertifiedScaling()).neg_num is None
    assert sf.idiffmf().neg_num == 1 and sf.diffmf().neg_num == 1
    assert sf.equivset_copula().neg_num == 1
    assert sf.idiffmf(sf.CertifiedScaling(), neg_num=2).neg_num == 2
    method = sf.idiffmf(sf.CertifiedScaling())
    assert sf.reference_prediction(method).neg_num is None
    train, val, _ = sf.datasets.substitutes(8, seed=2, num_clusters=3, cluster_size=2,
                                            subset_size=2)
    f = sf.DeepSet(4, hidden=4, width=4, smooth=True, rank=1, kernel_features=4,
                   key=jax.random.key(0))
    kw = dict(key=jax.random.key(1), learning_rate=1e-2, epochs=1, batch_size=4,
              progress=False)
    default = sf.fit(f, method, train, val, **kw).history[0]["loss"]
    assert sf.fit(f, method, train, val, neg_num=None, **kw).history[0]["loss"] == default
    assert sf.fit(f, method, train, val, neg_num=1, **kw).history[0]["loss"] < default


@pytest.mark.user_defaults
@pytest.mark.slow
def test_certified_training_contract():
    """The public recipe, small: train a smooth DeepSet with the certified scaling on the
    substitutes task, score the solved fixed point, one step from 1/2 and the size-free
    rule; every solve converges."""
    train, val, test = sf.datasets.substitutes(16, seed=1, num_clusters=4, cluster_size=3,
                                               subset_size=2)
    k1, k2, k3, k4, k5 = jax.random.split(jax.random.key(0), 5)
    f = sf.DeepSet(encoder=sf.MLPEncoder(4, 8, width=8, key=k1), width=8, smooth=True,
                   key=k2)
    method = sf.idiffmf(sf.CertifiedScaling(omega=0.9))
    result = sf.fit(f, method, train, val, key=k3, learning_rate=1e-2, epochs=2,
                    batch_size=8, progress=False)
    assert all(r["train_converged"] == 1 and r["val_converged"] == 1 for r in result.history)
    solved = sf.evaluate(result.model, method, test, key=k4)
    one_step = sf.evaluate(result.model, sf.reference_prediction(method), test, key=k4)
    assert solved["converged"] == 1 and 0 <= one_step["jaccard"] <= 100
    items, mask, target = (jnp.asarray(x) for x in (test.items, test.mask, test.target))
    sol = method(result.model, items, mask, key=k5)
    assert bool(jnp.all(sol.converged))
    size_free = sf.jaccard(sf.predict_threshold(sol.psi, mask), target, mask)
    assert size_free.shape == (16,)
    # The closed form needs no samples: the solution does not depend on the key.
    again = method(result.model, items, mask, key=k4)
    np.testing.assert_allclose(sol.psi, again.psi, atol=1e-6)
    np.testing.assert_allclose(100 * float(size_free.mean()), solved["jaccard_threshold"],
                               atol=1e-3)
