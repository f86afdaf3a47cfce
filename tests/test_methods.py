"""The named methods: DiffMF's fixed steps, EquiVSet's samples, ELBO and alternation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import setfix as sf

from .helpers import multilinear, random_table, unchecked


def test_mean_field_steps_are_the_map_applied_k_times():
    f = random_table(jax.random.key(0), 5, 0.15)
    items = jnp.zeros((5, 1))
    psi0 = jnp.linspace(0.1, 0.9, 5)
    sol = sf.MeanFieldSteps(sf.Exact(), sf.NoScaling(), steps=3)(f, items, psi0=psi0)
    psi = psi0
    for _ in range(3):
        psi = sf.fixed_point_map(f, items, None, psi, estimator=sf.Exact(),
                                 scaling=sf.NoScaling())
    np.testing.assert_allclose(sol.psi, psi, rtol=1e-12)
    assert int(sol.num_steps) == 3 and bool(sol.converged)
    nxt = sf.fixed_point_map(f, items, None, psi, estimator=sf.Exact(), scaling=sf.NoScaling())
    np.testing.assert_allclose(sol.residual, jnp.max(jnp.abs(nxt - psi)), rtol=1e-10)


def test_mean_field_steps_gradient_is_the_unrolled_gradient():
    """DiffMF's gradient is backpropagation through the K steps: compare with the
    gradient of a hand-unrolled loop on the exact estimator."""
    f = random_table(jax.random.key(1), 4, 0.2)
    items = jnp.zeros((4, 1))
    w = jnp.arange(1.0, 5.0)

    def through_method(f):
        return jnp.sum(w * sf.MeanFieldSteps(sf.Exact(), sf.NoScaling(), 4)(f, items).psi)

    def by_hand(f):
        psi = jnp.full(4, 0.5)
        for _ in range(4):
            psi = sf.fixed_point_map(f, items, None, psi, estimator=sf.Exact(),
                                     scaling=sf.NoScaling())
        return jnp.sum(w * psi)

    np.testing.assert_allclose(jax.grad(through_method)(f).values,
                               jax.grad(by_hand)(f).values, rtol=1e-10, atol=1e-14)


def test_reference_prediction_is_one_step_from_one_half():
    method = sf.idiffmf(sf.NormScaling())
    rule = sf.reference_prediction(method)
    assert rule.steps == 1 and rule.initial == 0.5
    assert rule.estimator == method.estimator and rule.scaling == method.scaling
    with unchecked(), pytest.raises(TypeError, match="`method`"):
        sf.reference_prediction(sf.equivset_copula())  # pyright: ignore


def test_method_compositions():
    m = sf.idiffmf(sf.ConstantScaling(2.0), num_samples=7)
    assert isinstance(m.adjoint, type(sf.MeanField().adjoint))
    assert m.estimator.num_samples == 7 and m.scaling.c == 2.0
    assert isinstance(sf.onestep().adjoint, sf.OneStep)
    assert sf.onestep().estimator.hessian == sf.ZeroHessian()
    d = sf.diffmf()
    assert isinstance(d, sf.MeanFieldSteps) and d.steps == 5
    assert isinstance(d.scaling, sf.NoScaling)
    assert sf.equivset_ind().objective.noise == sf.IndependentNoise()
    assert sf.equivset_copula().objective.noise == sf.CopulaNoise()
    assert isinstance(d.objective, sf.MeanFieldNLL) and sf.idiffmf().objective == d.objective
    # The old string modes get an error that names the values that replace them.
    with unchecked(), pytest.raises(TypeError, match="IndependentNoise"):
        sf.EquiVSet("ind")  # pyright: ignore
    with unchecked(), pytest.raises(TypeError, match="noise"):
        sf.EquiVSetELBO("copula")  # pyright: ignore


@pytest.mark.slow
def test_redrawn_steps_use_a_fresh_key_each_step():
    """`redraw=True` is the K maps with keys fold_in(key, k): checked against
    `fixed_point_map` step by step; shared draws use one key for all K steps. The two
    differ (the case tells them apart), and per-coordinate draws are the published
    DiffMF's: `diffmf()` has both, `diffmf(shared_draws=True)` neither."""
    f = sf.DeepSet(2, hidden=8, width=8, key=jax.random.key(0))
    items = jax.random.normal(jax.random.key(1), (2, 6, 2))
    mask = jnp.array([[True] * 6, [True] * 4 + [False] * 2])
    key = jax.random.key(2)
    estimator = sf.MonteCarlo(3, hessian=sf.ZeroHessian(), per_coordinate=True)

    def by_hand(keys):
        psi = jnp.where(mask, 0.5, 0.0)
        for k in keys:
            psi = sf.fixed_point_map(f, items, mask, psi, estimator=estimator,
                                     scaling=sf.NoScaling(), key=k)
        return psi

    fresh = sf.MeanFieldSteps(estimator, sf.NoScaling(), 3, redraw=True)
    np.testing.assert_allclose(fresh(f, items, mask, key=key).psi,
                               by_hand([jax.random.fold_in(key, k) for k in range(3)]),
                               rtol=1e-6, atol=1e-7)
    shared = sf.MeanFieldSteps(estimator, sf.NoScaling(), 3)
    np.testing.assert_allclose(shared(f, items, mask, key=key).psi, by_hand([key] * 3),
                               rtol=1e-6, atol=1e-7)
    assert not np.allclose(fresh(f, items, mask, key=key).psi,
                           shared(f, items, mask, key=key).psi)
    published, cheap = sf.diffmf(), sf.diffmf(shared_draws=True)
    assert published.redraw and published.estimator.per_coordinate
    assert not cheap.redraw and not cheap.estimator.per_coordinate
    with pytest.raises(TypeError, match="redraw"):
        sf.MeanFieldSteps(redraw=1)  # pyright: ignore
    with pytest.raises(TypeError, match="shared_draws"):
        sf.diffmf(shared_draws="yes")  # pyright: ignore


def _amortized(key, d=2):
    k1, k2 = jax.random.split(key)
    return sf.AmortizedSetFunction(
        sf.DeepSet(d, hidden=8, width=8, key=k1),
        sf.RecognitionNetwork(d, rank=3, hidden=8, width=8, key=k2),
    )


@pytest.mark.parametrize("noise", [sf.IndependentNoise(), sf.CopulaNoise(standardise=True)])
def test_equivset_samples_have_the_recognition_marginals(noise):
    """With a small temperature, item i is in a sample with probability mu_i in both
    modes when the copula's noise is standardised before Phi (with the published
    unstandardised noise the marginals are wrong: next test). 4000 samples: 5 standard
    errors."""
    model = _amortized(jax.random.key(2))
    items = jax.random.normal(jax.random.key(3), (6, 2), jnp.float64) * 3
    mask = jnp.array([True] * 5 + [False])
    elbo = sf.EquiVSetELBO(noise, num_samples=4000, tau=1e-4)
    samples = elbo.sample(model, items, mask, key=jax.random.key(4))
    mu = model.recognition(items)[0]
    assert set(np.unique(samples)) <= {0.0, 1.0}
    assert np.all(samples[:, 5] == 0)
    freq = samples[:, :5].mean(0)
    se = np.sqrt(mu[:5] * (1 - mu[:5]) / 4000)
    assert np.all(np.abs(freq - mu[:5]) < 5 * se + 1e-3), (freq, mu)


def test_equivset_published_copula_has_its_published_marginals():
    """`standardise=False` is the published noise: item i is sampled with probability
    Phi(Phi^-1(mu_i) / sqrt(sigma_i^2 + |u_i|^2)), not mu_i (4000 samples, 5 standard
    errors); it is the default of the module and of the preset."""
    mu = jnp.array([0.1, 0.3, 0.5, 0.7, 0.9, 0.95])
    scale, factors = jnp.full(6, 2.0), jnp.full((6, 2), 0.5)  # noise std 2.12, not 1
    mask = jnp.ones(6, bool)
    elbo = sf.EquiVSetELBO(sf.CopulaNoise(), num_samples=4000, tau=1e-4)
    samples = elbo.relaxed_sample((mu, scale, factors), mask, jax.random.key(4))
    spread = np.sqrt(scale**2 + np.sum(factors**2, axis=-1))
    expected = scipy_norm_cdf(scipy_norm_ppf(mu) / spread)
    se = np.sqrt(expected * (1 - expected) / 4000)
    assert np.all(np.abs(samples.mean(0) - expected) < 5 * se + 1e-3)
    assert np.max(np.abs(expected - mu)) > 0.05  # the case tells the two apart
    assert sf.EquiVSetELBO() == sf.equivset_copula().objective
    assert not sf.equivset_copula().objective.noise.standardise
    assert sf.equivset_copula(standardise=True).objective.noise.standardise
    with pytest.raises(TypeError, match="standardise"):
        sf.CopulaNoise(standardise="no")  # pyright: ignore


def scipy_norm_cdf(x):
    return np.asarray(jax.scipy.stats.norm.cdf(x))


def scipy_norm_ppf(p):
    return np.asarray(jax.scipy.stats.norm.ppf(p))


def test_equivset_elbo_matches_the_exact_multilinear_value():
    """Independent samples at small temperature: the ELBO's energy term is the
    multilinear extension at mu (checked by enumeration), plus the entropy."""
    model = _amortized(jax.random.key(5))
    items = jax.random.normal(jax.random.key(6), (4, 2), jnp.float64)
    mask = jnp.ones(4, bool)
    objective = sf.EquiVSetELBO(sf.IndependentNoise(), num_samples=20000, tau=1e-4)
    elbo = objective.elbo(model, items, mask, key=jax.random.key(7))
    mu = np.asarray(model.recognition(items)[0])
    table = np.array([float(model(items, jnp.array([(b >> i) & 1 for i in range(4)], float)))
                      for b in range(16)])
    entropy = -np.sum(mu * np.log(mu) + (1 - mu) * np.log1p(-mu))
    spread = table.max() - table.min()
    assert abs(float(elbo) - multilinear(table, mu) - entropy) < 5 * spread / np.sqrt(20000)


@pytest.mark.user_defaults
def test_equivset_update_alternates_with_separate_optimiser_states():
    model = _amortized(jax.random.key(8))
    train, _, _ = sf.datasets.moons(v_size=10, s_size=2, num_sets=4)
    method = sf.equivset_copula(num_samples=3)
    objective = method.objective
    optimizer = optax.sgd(1e-2)
    state = objective.init(optimizer, model)
    assert isinstance(state, tuple) and len(state) == 2
    items, mask, target = (jnp.asarray(x) for x in (train.items, train.mask, train.target))
    update = eqx.filter_jit(lambda m, s, *a: objective.update(
        m, s, method, *a, key=jax.random.key(9), optimizer=optimizer))
    new, _, stats = update(model, state, items, mask, target, mask & ~target)
    assert set(stats) >= {"loss", "neg_elbo", "num_steps", "converged"}

    def changed(a, b):
        return any(not np.allclose(x, y) for x, y in zip(
            jax.tree.leaves(eqx.filter(a, eqx.is_array)),
            jax.tree.leaves(eqx.filter(b, eqx.is_array))))

    assert changed(model.set_function, new.set_function)
    assert changed(model.recognition, new.recognition)
    with pytest.raises(TypeError, match="AmortizedSetFunction"):
        method.solve(model.set_function, items, mask, key=jax.random.key(0))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["idiffmf", "idiffmf-batch", "onestep", "diffmf",
                                  "equivset_ind"])
@pytest.mark.user_defaults
def test_every_method_trains(name):
    """Two epochs of each method on small two-moons sets: finite losses, a history,
    and a validation Jaccard above chance (a random top-2 of 10 scores about 11).
    `idiffmf-batch` is the published batch-coupled iDiffMF_* (one joint solve)."""
    train, val, _ = sf.datasets.moons(v_size=10, s_size=2, num_sets=32)
    if name == "idiffmf-batch":
        method = sf.idiffmf(sf.BatchNormScaling("nuc"), num_samples=3)
    else:
        method = getattr(sf, name)(num_samples=3)
    key = jax.random.key(10)
    model = (_amortized(key) if name.startswith("equivset")
             else sf.DeepSet(2, hidden=8, width=8, key=key))
    result = sf.fit(model, method, train, val, key=key, batch_size=16, epochs=2,
                    learning_rate=3e-3, progress=False)
    assert len(result.history) == 2
    assert all(np.isfinite(r["loss"]) for r in result.history)
    assert result.best_val_jaccard > 15
