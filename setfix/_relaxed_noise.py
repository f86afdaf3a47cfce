"""The noise of EquiVSet's relaxed Bernoulli samples: independent (EquiVSet_ind) or a
Gaussian copula (EquiVSet_copula), as values."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class AbstractRelaxedNoise(eqx.Module):
    r"""The noise $u \in (0, 1)^n$ of a relaxed Bernoulli sample of mean $\mu$: item
    $i$ is relaxed as $\sigma\big((\operatorname{logit}\mu_i + \operatorname{logit}
    u_i)/\tau\big)$, so that with uniform $u_i$ it enters with probability $\mu_i$ as
    $\tau \to 0$."""

    @abc.abstractmethod
    def uniforms(
        self,
        key: PRNGKeyArray,
        scale: Float[Array, " n"],
        factors: Float[Array, "n rank"],
        num_samples: int,
    ) -> Float[Array, "num_samples n"]:
        """`num_samples` draws of $u$, from the recognition network's per-item scale
        $\\sigma$ and copula factors $U$ (which independent noise ignores). `key` is
        the sample's key: noises use `jax.random.split(key, 3)[:2]`, the Bernoulli
        draw the third (the split every recorded EquiVSet run used)."""


class IndependentNoise(AbstractRelaxedNoise):
    r"""Independent uniforms, $u_i \sim U(0, 1)$ (logistic noise after the logit):
    EquiVSet$_{ind}$."""

    def uniforms(self, key, scale, factors, num_samples):
        eps = jnp.finfo(scale.dtype).eps
        key = jax.random.split(key, 3)[0]
        return jax.random.uniform(key, (num_samples,) + scale.shape, scale.dtype, eps, 1 - eps)


IndependentNoise.__init__.__doc__ = """**Arguments:** none."""


class CopulaNoise(AbstractRelaxedNoise):
    r"""A Gaussian copula: $u = \Phi(g)$ with $g = \sigma \odot \epsilon + U \eta$,
    $\epsilon \sim N(0, I_n)$, $\eta \sim N(0, I_r)$: EquiVSet$_{copula}$.

    As the published code (the default), $g_i$ has variance
    $\sigma_i^2 + \lVert u_i \rVert^2$, so $u_i$ is not uniform and item $i$ enters a
    sample with probability $\Phi\big(\Phi^{-1}(\mu_i) / \sqrt{\sigma_i^2 +
    \lVert u_i \rVert^2}\big)$ rather than $\mu_i$; the recognition network then learns
    to shrink the noise, so that a sample is close to thresholding $\mu$ at ½.
    `standardise=True` divides $g_i$ by its standard deviation first: $u_i$ is uniform
    and samples follow $\mu$ (setfix's variant, not the papers' baseline)."""

    standardise: bool = eqx.field(default=False, static=True)

    def __check_init__(self):
        if not isinstance(self.standardise, bool):
            raise TypeError(f"`standardise` must be True or False, got {self.standardise!r}.")

    def uniforms(self, key, scale, factors, num_samples):
        eps = jnp.finfo(scale.dtype).eps
        noise_key, factor_key, _ = jax.random.split(key, 3)
        e = jax.random.normal(noise_key, (num_samples,) + scale.shape, scale.dtype)
        z = jax.random.normal(factor_key, (num_samples, factors.shape[-1]), scale.dtype)
        g = e * scale + z @ factors.T
        if self.standardise:
            g = g / jnp.sqrt(scale**2 + jnp.sum(factors**2, axis=-1))
        return jnp.clip(jax.scipy.stats.norm.cdf(g), eps, 1 - eps)


CopulaNoise.__init__.__doc__ = """**Arguments:**

- `standardise`: divide $g_i$ by $\\sqrt{\\sigma_i^2 + \\lVert u_i \\rVert^2}$ before
    $\\Phi$, so that item $i$ is sampled with probability $\\mu_i$ (default `False`:
    the published code's noise).
"""
