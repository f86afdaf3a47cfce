"""EquiVSet (Ou et al. 2022): a recognition network amortises the mean field, trained on
the ELBO, alternating with the set function trained through one mean-field step."""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from ._encoders import AbstractEncoder, item_encoder
from ._estimator import AbstractEstimator
from ._evaluator import batched_readout, pooled_split, split_set_function
from ._hessian import ZeroHessian
from ._losses import mean_field_nll
from ._mean_field_steps import MeanFieldSteps
from ._method import AbstractMethod
from ._misc import stop_gradient_tree
from ._monte_carlo import MonteCarlo
from ._pooled_items import per_item, PooledItems
from ._scaling import NoScaling
from ._set_function import AbstractPooledSetFunction, AbstractSetFunction
from ._solution import mean_over_converged, MeanFieldSolution
from ._validate import check_items_and_mask


class RecognitionNetwork(eqx.Module):
    r"""The variational distribution $q(S \mid V)$ of EquiVSet, item by item: a
    Bernoulli mean $\mu_i \in (0, 1)$, and for the copula a scale $\sigma_i > 0$ and
    $r$ low-rank factors $u_i \in (-1, 1)^r$ of the Gaussian copula's covariance
    $\operatorname{diag}(\sigma^2) + U U^\top$.
    """

    encoder: eqx.nn.Linear | AbstractEncoder
    body: eqx.nn.MLP
    mean_head: eqx.nn.Linear
    scale_head: eqx.nn.Linear
    factor_head: eqx.nn.Linear

    def __init__(
        self,
        in_features: int | None = None,
        *,
        encoder: AbstractEncoder | None = None,
        rank: int = 5,
        hidden: int | None = None,
        width: int = 500,
        depth: int = 2,
        key: PRNGKeyArray,
    ):
        if min(rank, width, depth) < 1:
            raise ValueError(
                f"`rank`, `width` and `depth` must be positive, got {rank}, {width}, {depth}."
            )
        keys = jax.random.split(key, 5)
        self.encoder, hidden = item_encoder(in_features, encoder, hidden, keys[0])
        self.body = eqx.nn.MLP(hidden, width, width, depth - 1, activation=jax.nn.relu,
                               key=keys[1])
        self.mean_head = eqx.nn.Linear(width, "scalar", key=keys[2])
        self.scale_head = eqx.nn.Linear(width, "scalar", key=keys[3])
        self.factor_head = eqx.nn.Linear(width, rank, key=keys[4])

    def __call__(
        self, items: Float[Array, "n ..."] | PooledItems
    ) -> tuple[Float[Array, " n"], Float[Array, " n"], Float[Array, "n rank"]]:
        """Returns $(\\mu, \\sigma, U)$ for the items of one ground set (or, for
        `PooledItems` with `(b, n)` rows, of each set of the batch)."""
        return per_item(self._one, items, batched=False)

    def _one(self, x):
        h = jax.nn.relu(self.body(self.encoder(x)))
        return (jax.nn.sigmoid(self.mean_head(h)), jax.nn.softplus(self.scale_head(h)),
                jnp.tanh(self.factor_head(h)))

    def batched(
        self, items: Float[Array, "b n ..."] | PooledItems
    ) -> tuple[Float[Array, "b n"], Float[Array, "b n"], Float[Array, "b n rank"]]:
        """$(\\mu, \\sigma, U)$ of every set of a padded batch."""
        return per_item(self._one, items, batched=True)


RecognitionNetwork.__init__.__doc__ = """**Arguments:**

- `in_features`: the dimension $d$ of each item's feature vector (a linear encoder).
- `encoder`: instead of `in_features`, a per-item [`setfix.AbstractEncoder`][].
- `rank`: the rank $r$ of the copula's low-rank covariance term.
- `hidden`: the dimension of the item embedding (256 by default; with an `encoder`,
    its `out_features`).
- `width`, `depth`: the width and number of layers of the network after the embedding.
- `key`: a JAX PRNG key for the initialisation.
"""


class AmortizedSetFunction(AbstractPooledSetFunction):
    """A pooled set function together with the recognition network that amortises its
    mean-field inference; evaluates as `set_function`. What [`setfix.EquiVSet`][]
    trains."""

    set_function: AbstractPooledSetFunction
    recognition: RecognitionNetwork

    def __check_init__(self):
        if not isinstance(self.set_function, AbstractPooledSetFunction):
            raise TypeError(
                "`set_function` must be a setfix.AbstractPooledSetFunction (e.g. a "
                f"DeepSet), got {type(self.set_function).__name__}."
            )
        if not isinstance(self.recognition, RecognitionNetwork):
            raise TypeError(
                "`recognition` must be a setfix.RecognitionNetwork, got "
                f"{type(self.recognition).__name__}."
            )

    def embed(self, items: Float[Array, "n d"]) -> Float[Array, "n h"]:
        return self.set_function.embed(items)

    def readout(self, pooled: Float[Array, " h"]) -> Float[Array, ""]:
        return self.set_function.readout(pooled)

    def folded(self) -> AbstractPooledSetFunction:
        return self.set_function.folded()


AmortizedSetFunction.__init__.__doc__ = """**Arguments:**

- `set_function`: the energy $F_\\theta$, a pooled set function such as a DeepSet.
- `recognition`: a [`setfix.RecognitionNetwork`][] on the same item features.
"""


def _logit(p):
    return jnp.log(p) - jnp.log1p(-p)


class EquiVSet(AbstractMethod):
    r"""EquiVSet of Ou et al. (2022): a [`setfix.RecognitionNetwork`][] gives
    $\psi^0 = \mu(V)$, from which `steps` mean-field steps (unscaled, from
    $\text{stop\_gradient}(\psi^0)$) give the $\psi$ used for the loss and for
    prediction. Each training step first updates the recognition network on the
    negative ELBO

    $$-\mathbb E_{S \sim q}[F_\theta(S, V)] - H(\mu),$$

    with $S$ a relaxed Bernoulli sample at temperature $\tau$ (straight-through), then
    updates $F_\theta$ on the mean-field negative log-likelihood (with its own optimiser
    state: the two are alternated, as in the reference). With `mode="ind"` the
    Bernoulli noise is independent (Gumbel / logistic); with `mode="copula"` it comes
    from a Gaussian copula $g = \sigma \odot \epsilon + U \eta$ passed through $\Phi$
    as the published code does (the default): its uniforms are then not uniform, and an
    item enters a sample with probability
    $\Phi\big(\Phi^{-1}(\mu_i) / \sqrt{\sigma_i^2 + \lVert u_i \rVert^2}\big)$ rather
    than $\mu_i$; the recognition network learns to shrink the noise, so that a sample
    is close to thresholding $\mu$ at ½. `standardise=True` divides $g_i$ by
    $\sqrt{\sigma_i^2 + \lVert u_i \rVert^2}$ first, so that samples follow $\mu$.

    The model must be an [`setfix.AmortizedSetFunction`][]. After training, its
    `set_function` can also be solved to its fixed point with [`setfix.MeanField`][].
    """

    mode: Literal["ind", "copula"] = "copula"
    estimator: AbstractEstimator = MonteCarlo(5, hessian=ZeroHessian())
    steps: int = 1
    num_samples: int = 5
    tau: float = 0.1
    neg_num: int | None = eqx.field(default=1, kw_only=True, static=True)
    standardise: bool = eqx.field(default=False, kw_only=True, static=True)

    def __check_init__(self):
        if not isinstance(self.standardise, bool):
            raise TypeError(f"`standardise` must be True or False, got {self.standardise!r}.")
        if self.mode not in ("ind", "copula"):
            raise ValueError(f"`mode` must be 'ind' or 'copula', got {self.mode!r}.")
        for name in ("steps", "num_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if not self.tau > 0:
            raise ValueError(f"`tau` must be positive, got {self.tau!r}.")

    def _check_model(self, model):
        if not isinstance(model, AmortizedSetFunction):
            raise TypeError(
                "EquiVSet trains a setfix.AmortizedSetFunction(set_function, recognition),"
                f" got {type(model).__name__}."
            )

    def solve(
        self,
        model: AbstractSetFunction,
        items: Float[Array, "*batch n d"] | PooledItems,
        mask: Bool[Array, "*batch n"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ) -> MeanFieldSolution:
        """$\\psi$ after `steps` mean-field steps from the recognition network's
        $\\mu$ (`converged` says only that it is finite)."""
        self._check_model(model)
        items, mask = check_items_and_mask(items, mask)
        recognition = model.recognition
        mean = (recognition.batched(items) if mask.ndim == 2 else recognition(items))[0]
        steps = MeanFieldSteps(self.estimator, NoScaling(), self.steps)
        return steps(model.set_function, items, mask, key=key,
                     psi0=jax.lax.stop_gradient(mean))

    def sample(
        self,
        model: AmortizedSetFunction,
        items: Float[Array, "n d"] | PooledItems,
        mask: Bool[Array, " n"],
        *,
        key: PRNGKeyArray,
    ) -> Float[Array, "num_samples n"]:
        """`num_samples` relaxed subsets of one ground set from the recognition network:
        hard 0/1 values forward, the relaxed sample's gradient backward (straight
        through). As `tau` goes to 0, item $i$ is in a sample with probability
        $\\mu_i$ in both modes when the copula's noise is standardised
        (`standardise=True`)."""
        return self._relaxed_sample(model.recognition(items), mask, key)

    def _relaxed_sample(self, recognised, mask, key):
        mean, scale, factors = recognised
        eps = jnp.finfo(mean.dtype).eps
        noise_key, factor_key, bernoulli_key = jax.random.split(key, 3)
        shape = (self.num_samples,) + mean.shape
        if self.mode == "ind":
            u = jax.random.uniform(noise_key, shape, mean.dtype, eps, 1 - eps)
        else:
            e = jax.random.normal(noise_key, shape, mean.dtype)
            z = jax.random.normal(factor_key, (self.num_samples, factors.shape[-1]),
                                  mean.dtype)
            g = e * scale + z @ factors.T
            if self.standardise:
                g = g / jnp.sqrt(scale**2 + jnp.sum(factors**2, axis=-1))
            u = jnp.clip(jax.scipy.stats.norm.cdf(g), eps, 1 - eps)
        mu = jnp.clip(mean, 1e-6, 1 - 1e-6)
        prob = jax.nn.sigmoid((_logit(mu) + _logit(u)) / self.tau)
        hard = jax.random.bernoulli(bernoulli_key, prob).astype(prob.dtype)
        return jnp.where(mask, prob + jax.lax.stop_gradient(hard - prob), 0)

    def elbo(
        self,
        model: AmortizedSetFunction,
        items: Float[Array, "n d"] | PooledItems,
        mask: Bool[Array, " n"],
        *,
        key: PRNGKeyArray,
    ) -> Float[Array, ""]:
        """A `num_samples`-sample estimate of the ELBO
        $\\mathbb E_{S \\sim q}[F(S)] + H(\\mu)$ of one ground set."""
        readout, embedding = split_set_function(model.set_function, items)
        return self._elbo(model.recognition(items), readout, embedding, mask, key)

    def _elbo(self, recognised, readout, embedding, mask, key):
        """The ELBO of one set from its recognised $(\\mu, \\sigma, U)$ (used for the
        samples and the entropy) and the pooled split of the set function."""
        samples = self._relaxed_sample(recognised, mask, key)
        energy = jnp.mean(batched_readout(readout, samples @ embedding))
        mu = jnp.clip(recognised[0], 1e-6, 1 - 1e-6)
        entropy = -jnp.sum(jnp.where(mask, mu * jnp.log(mu) + (1 - mu) * jnp.log1p(-mu), 0))
        return energy + entropy

    def init_optimizer(
        self, optimizer: optax.GradientTransformation, model: AbstractSetFunction
    ) -> PyTree:
        """Separate optimiser states for the set function and the recognition network."""
        self._check_model(model)
        return (optimizer.init(eqx.filter(model.set_function, eqx.is_inexact_array)),
                optimizer.init(eqx.filter(model.recognition, eqx.is_inexact_array)))

    def update(self, model, opt_state, items, mask, target, negatives, *, key, optimizer):
        self._check_model(model)
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
        params = eqx.filter(model.recognition, eqx.is_inexact_array)
        updates, state_q = optimizer.update(grads, state_q, params)
        recognition = eqx.apply_updates(model.recognition, updates)

        def f_loss(set_function):
            m = AmortizedSetFunction(set_function, recognition)
            sol = self.solve(m, items, mask, key=solve_key)
            nll = mean_field_nll(sol.psi, target, mask, negatives)
            return mean_over_converged(nll, sol.converged), sol

        (loss, sol), grads = eqx.filter_value_and_grad(f_loss, has_aux=True)(
            model.set_function
        )
        params = eqx.filter(model.set_function, eqx.is_inexact_array)
        updates, state_f = optimizer.update(grads, state_f, params)
        set_function = eqx.apply_updates(model.set_function, updates)
        stats = {"loss": loss, "num_steps": sol.num_steps.mean(),
                 "converged": sol.converged.mean(), "neg_elbo": q_loss}
        return AmortizedSetFunction(set_function, recognition), (state_f, state_q), stats


EquiVSet.__init__.__doc__ = """**Arguments:**

- `mode`: `"ind"` (independent relaxed Bernoulli samples, EquiVSet$_{ind}$) or
    `"copula"` (Gaussian copula, EquiVSet$_{copula}$).
- `estimator`: the estimator of $\\nabla \\tilde F$ in the mean-field steps.
- `steps`: mean-field steps from the recognition network's output (the reference: 1).
- `num_samples`: relaxed samples per set in the ELBO.
- `tau`: the temperature of the relaxed Bernoulli samples.
- `neg_num`: negatives per member of $S^*$ in the training loss of [`setfix.fit`][]
    (`None`: every non-member; default 1, as the published code).
- `standardise`: with `mode="copula"`, divide the copula's $g_i$ by its standard
    deviation before $\\Phi$, so that item $i$ is sampled with probability $\\mu_i$
    (default `False`: the published code's noise).
"""
