"""EquiVSet's training objective: the recognition network on the ELBO, alternating with
the set function on the mean-field likelihood through the inference."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray, PyTree

from ._evaluator import batched_readout, pooled_split, split_set_function
from ._method import AbstractMethod
from ._misc import stop_gradient_tree
from ._objective import AbstractObjective, apply_gradients, MeanFieldNLL, solution_stats
from ._pooled_items import PooledItems
from ._recognition import AmortizedSetFunction
from ._relaxed_noise import AbstractRelaxedNoise, CopulaNoise


def _logit(p):
    return jnp.log(p) - jnp.log1p(-p)


def check_amortized(model) -> None:
    """Raises unless `model` is what EquiVSet trains and infers with."""
    if not isinstance(model, AmortizedSetFunction):
        raise TypeError(
            "EquiVSet trains a setfix.AmortizedSetFunction(set_function, recognition),"
            f" got {type(model).__name__}."
        )


class EquiVSetELBO(AbstractObjective):
    r"""EquiVSet's objective (Ou et al. 2022). Each step first updates the recognition
    network $q$ of an [`setfix.AmortizedSetFunction`][] on the negative ELBO

    $$-\mathbb E_{S \sim q}[F_\theta(S, V)] - H(\mu),$$

    with $S$ a relaxed Bernoulli sample at temperature $\tau$ (hard forward,
    straight-through backward) whose noise is `noise`, and the entropy taken at the
    recognition network's mean $\mu$, as the published code; then updates $F_\theta$
    on the mean-field negative log-likelihood ([`setfix.MeanFieldNLL`][]) of the
    inference, which sees the updated $q$. Each part has its own optimiser state: the
    two are alternated, as in the reference."""

    noise: AbstractRelaxedNoise = CopulaNoise()
    num_samples: int = 5
    tau: float = 0.1

    def __check_init__(self):
        if not isinstance(self.noise, AbstractRelaxedNoise):
            raise TypeError(
                "`noise` must be setfix.IndependentNoise() or setfix.CopulaNoise(...), "
                f"got {self.noise!r}."
            )
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ValueError(
                f"`num_samples` must be a positive integer, got {self.num_samples!r}."
            )
        if not self.tau > 0:
            raise ValueError(f"`tau` must be positive, got {self.tau!r}.")

    def sample(
        self,
        model: AmortizedSetFunction,
        items: Float[ArrayLike, "n ..."] | PooledItems,
        mask: Bool[Array, " n"],
        *,
        key: PRNGKeyArray,
    ) -> Float[Array, "num_samples n"]:
        """`num_samples` relaxed subsets of one ground set from the recognition network:
        hard 0/1 values forward, the relaxed sample's gradient backward (straight
        through). As `tau` goes to 0, item $i$ is in a sample with probability
        $\\mu_i$ for [`setfix.IndependentNoise`][] and for
        `setfix.CopulaNoise(standardise=True)`."""
        check_amortized(model)
        return self.relaxed_sample(model.recognition(items), mask, key)

    def relaxed_sample(
        self,
        recognised: tuple[Float[Array, " n"], Float[Array, " n"], Float[Array, "n rank"]],
        mask: Bool[Array, " n"],
        key: PRNGKeyArray,
    ) -> Float[Array, "num_samples n"]:
        """`sample` from the recognition network's output $(\\mu, \\sigma, U)$."""
        mean, scale, factors = recognised
        u = self.noise.uniforms(key, scale, factors, self.num_samples)
        mu = jnp.clip(mean, 1e-6, 1 - 1e-6)
        prob = jax.nn.sigmoid((_logit(mu) + _logit(u)) / self.tau)
        hard = jax.random.bernoulli(jax.random.split(key, 3)[2], prob).astype(prob.dtype)
        return jnp.where(mask, prob + jax.lax.stop_gradient(hard - prob), 0)

    def elbo(
        self,
        model: AmortizedSetFunction,
        items: Float[ArrayLike, "n ..."] | PooledItems,
        mask: Bool[Array, " n"],
        *,
        key: PRNGKeyArray,
    ) -> Float[Array, ""]:
        """A `num_samples`-sample estimate of the ELBO
        $\\mathbb E_{S \\sim q}[F(S)] + H(\\mu)$ of one ground set."""
        check_amortized(model)
        readout, embedding = split_set_function(model.set_function, items)
        return self._elbo(model.recognition(items), readout, embedding, mask, key)

    def _elbo(self, recognised, readout, embedding, mask, key):
        """The ELBO of one set from its recognised $(\\mu, \\sigma, U)$ (used for the
        samples and the entropy) and the pooled split of the set function."""
        samples = self.relaxed_sample(recognised, mask, key)
        energy = jnp.mean(batched_readout(readout, samples @ embedding))
        mu = jnp.clip(recognised[0], 1e-6, 1 - 1e-6)
        entropy = -jnp.sum(jnp.where(mask, mu * jnp.log(mu) + (1 - mu) * jnp.log1p(-mu), 0))
        return energy + entropy

    def init(self, optimizer: optax.GradientTransformation, model: AmortizedSetFunction) -> PyTree:
        """Separate optimiser states for the set function and the recognition network."""
        check_amortized(model)
        return (optimizer.init(eqx.filter(model.set_function, eqx.is_inexact_array)),
                optimizer.init(eqx.filter(model.recognition, eqx.is_inexact_array)))

    def update(
        self,
        model: AmortizedSetFunction,
        opt_state: PyTree,
        inference: AbstractMethod,
        items: Float[Array, "b n ..."] | PooledItems,
        mask: Bool[Array, "b n"],
        target: Bool[Array, "b n"],
        negatives: Bool[Array, "b n"],
        *,
        key: PRNGKeyArray,
        optimizer: optax.GradientTransformation,
    ):
        check_amortized(model)
        elbo_key, solve_key = jax.random.split(key)
        state_f, state_q = opt_state
        frozen_f = stop_gradient_tree(model.set_function)
        keys = jax.random.split(elbo_key, mask.shape[0])
        # The frozen set function's split, once per batch (its encoder runs here).
        readout, embedding, _ = pooled_split(frozen_f, items, batched=True)

        def neg_elbo(recognition):
            elbo = lambda r, e, m, k: self._elbo(r, readout, e, m, k)  # noqa: E731
            return -jnp.mean(jax.vmap(elbo)(recognition.batched(items), embedding, mask,
                                            keys))

        q_loss, grads = eqx.filter_value_and_grad(neg_elbo)(model.recognition)
        recognition, state_q = apply_gradients(optimizer, grads, state_q, model.recognition)

        def f_loss(set_function):
            return MeanFieldNLL().loss(AmortizedSetFunction(set_function, recognition),
                                       inference, items, mask, target, negatives,
                                       key=solve_key)

        (loss, sol), grads = eqx.filter_value_and_grad(f_loss, has_aux=True)(
            model.set_function
        )
        set_function, state_f = apply_gradients(optimizer, grads, state_f, model.set_function)
        stats = dict(solution_stats(loss, sol), neg_elbo=q_loss)
        return AmortizedSetFunction(set_function, recognition), (state_f, state_q), stats


EquiVSetELBO.__init__.__doc__ = """**Arguments:**

- `noise`: the noise of the relaxed samples: [`setfix.CopulaNoise`][]`()` (the
    published EquiVSet$_{copula}$, default), `CopulaNoise(standardise=True)`, or
    [`setfix.IndependentNoise`][]`()` (EquiVSet$_{ind}$).
- `num_samples`: relaxed samples per set in the ELBO.
- `tau`: the temperature of the relaxed Bernoulli samples.
"""
