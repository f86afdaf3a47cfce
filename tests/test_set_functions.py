import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import setfix as sf


def test_deepset_is_pooled_sum():
    key = jax.random.key(0)
    f = sf.DeepSet(3, hidden=5, width=7, depth=2, key=key)
    items = jax.random.normal(key, (6, 3))
    subset = jnp.array([1.0, 0, 1, 1, 0, 0])
    pooled = jnp.sum(jax.vmap(f.phi)(items) * subset[:, None], axis=0)
    assert np.allclose(f(items, subset), f.rho(pooled))
    # Structure of the reference model: depth x [Linear(width) + ReLU], Linear(1).
    assert len(f.rho.layers) == 3
    assert f.rho.layers[0].weight.shape == (7, 5)
    assert f.rho.layers[-1].weight.shape == (1, 7)
    # Sum pooling: invariant to the order of the items.
    perm = jnp.array([5, 3, 1, 0, 2, 4])
    assert np.allclose(f(items, subset), f(items[perm], subset[perm]))


def test_folded_deepset_is_the_same_function():
    # Folding rho's first layer into the embeddings changes the cost, not the function:
    # values on every subset and gradients in every parameter agree to float32 rounding.
    key = jax.random.key(0)
    f = sf.DeepSet(3, hidden=5, width=7, depth=2, key=key)
    folded = f.folded()
    assert isinstance(folded, sf.AbstractPooledSetFunction)
    assert folded.embed(jnp.zeros((4, 3))).shape == (4, 7)  # width, not hidden
    items = jax.random.normal(jax.random.key(1), (6, 3))
    subsets = jax.random.bernoulli(jax.random.key(2), 0.5, (20, 6)).astype(items.dtype)
    direct = jax.vmap(lambda s: f(items, s))(subsets)
    via_fold = jax.vmap(lambda s: f.folded().readout(s @ f.folded().embed(items)))(subsets)
    np.testing.assert_allclose(direct, via_fold, rtol=1e-5, atol=1e-6)

    def total(model, fold):
        g = model.folded() if fold else model
        return jnp.sum(jax.vmap(lambda s: g.readout(s @ g.embed(items)))(subsets))

    plain = eqx.filter_grad(lambda m: total(m, False))(f)
    through_fold = eqx.filter_grad(lambda m: total(m, True))(f)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(through_fold)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # Nothing to fold without a hidden layer; the amortised model folds its energy.
    shallow = sf.DeepSet(3, depth=0, key=key)
    assert shallow.folded() is shallow
    amortised = sf.AmortizedSetFunction(f, sf.RecognitionNetwork(3, key=key))
    np.testing.assert_allclose(amortised.folded().embed(items), folded.embed(items))


def test_table_indexing():
    values = jnp.arange(8.0)
    f = sf.TableSetFunction(values)
    items = jnp.zeros((3, 1))
    assert f.num_items == 3
    assert float(f(items, jnp.array([1.0, 0, 1]))) == 5.0  # bits 0 and 2
    assert float(f(items, jnp.array([0.0, 1, 0]))) == 2.0


def test_modules_are_abstract_or_final():
    for cls in (sf.DeepSet, sf.TableSetFunction, sf.Exact, sf.MonteCarlo,
                sf.NoScaling, sf.ConstantScaling, sf.NormScaling, sf.MeanField):
        assert issubclass(cls, eqx.Module)
        assert cls.__init__.__doc__, cls
