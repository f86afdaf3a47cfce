"""The mean-field problem of a ground set: its map T, residual and root form."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray, PyTree

from ._estimator import AbstractEstimator
from ._evaluator import pooled_split, scale_energy
from ._pooled_items import PooledItems
from ._scaling import AbstractScaling, NoScaling
from ._set_function import AbstractSetFunction, check_item_shape
from ._validate import check_items_and_mask, check_psi


class MeanFieldProblem(eqx.Module):
    r"""The mean-field problem of one ground set or a padded batch, with the work that
    does not depend on $\psi$ done once: the set function split into an energy readout
    and per-item embeddings (the per-item encoder runs here), the scaling's energy scale
    (and, for `CertifiedScaling(interactions_only=True)`, the singleton gains it adds
    back) and the estimator's samples. What remains is the map

    $$T(\psi) = \sigma\big(\text{scale}(\nabla_\psi \tilde F(\psi, \theta))\big),$$

    zero on padded items, and its residuals. [`setfix.MeanField`][],
    [`setfix.MeanFieldSteps`][], [`setfix.EquiVSet`][] and the theory functions all
    build their problem here; build one yourself to iterate $T$ with your own loop.

    On a batch whose scaling does not couple the sets, each set is its own problem:
    `jax.vmap` over [`setfix.MeanFieldProblem.in_axes`][] gives them one by one.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import setfix as sf

    f = sf.DeepSet(2, hidden=8, width=8, key=jax.random.key(0))
    items = jax.random.normal(jax.random.key(1), (10, 2))
    problem = sf.MeanFieldProblem(f, items, estimator=sf.Exact(),
                                  scaling=sf.NormScaling())
    psi = jnp.full(10, 0.5)
    for _ in range(3):
        psi = problem.fixed_point(psi)
    assert psi.shape == (10,)
    ```
    """

    readout: Any
    embedding: Float[Array, "*batch n h"]
    mask: Bool[Array, "*batch n"]
    noise: PyTree[Array] | None
    offset: Float[Array, "*batch n"] | None
    estimator: AbstractEstimator
    scaling: AbstractScaling
    readout_axes: Any = eqx.field(static=True)

    def __init__(
        self,
        f: AbstractSetFunction,
        items: Float[ArrayLike, "..."] | PooledItems,
        mask: Bool[ArrayLike, "*batch n"] | None = None,
        *,
        estimator: AbstractEstimator,
        scaling: AbstractScaling = NoScaling(),
        key: PRNGKeyArray | None = None,
    ):
        if not isinstance(f, AbstractSetFunction):
            raise TypeError(
                f"`f` must be a setfix.AbstractSetFunction, got {type(f).__name__}.")
        if not isinstance(estimator, AbstractEstimator):
            raise TypeError(
                "`estimator` must be a setfix estimator such as `setfix.MonteCarlo()`, "
                f"got {estimator!r}.")
        if not isinstance(scaling, AbstractScaling):
            raise TypeError(
                "`scaling` must be a setfix scaling such as `setfix.NormScaling()`, "
                f"got {scaling!r}.")
        items, mask = check_items_and_mask(items, mask)
        if isinstance(items, PooledItems):
            check_item_shape(f, items.pool.shape[1:], items.pool.dtype)
        else:
            check_item_shape(f, items.shape[mask.ndim:], items.dtype)
        key = checked_key(estimator, key)
        readout, embedding, axes = pooled_split(f, items, batched=mask.ndim == 2, mask=mask)
        self.readout, self.readout_axes, self.offset = scale_energy(
            scaling, readout, embedding, mask, axes)
        self.embedding = embedding
        self.mask = mask
        self.estimator = estimator
        self.scaling = scaling
        self.noise = _draw(estimator, key, mask)

    @property
    def batched(self) -> bool:
        """Whether this is a batch of sets (else one set)."""
        return self.mask.ndim == 2

    def in_axes(self) -> "MeanFieldProblem":
        """The `in_axes` that `jax.vmap` (or `eqx.filter_vmap`) needs to map over the
        sets of a batch, each then a problem of one set."""
        return eqx.tree_at(
            lambda p: (p.readout, p.embedding, p.mask, p.noise, p.offset, p.estimator,
                       p.scaling),
            self, (self.readout_axes, 0, 0, 0, 0, None, None),
            is_leaf=lambda x: x is None)

    def redrawn(self, key: PRNGKeyArray) -> "MeanFieldProblem":
        """The same problem with the estimator's samples drawn afresh from `key`."""
        return eqx.tree_at(lambda p: p.noise, self, _draw(self.estimator, key, self.mask),
                           is_leaf=lambda x: x is None)

    def scaled_gradient(self, psi: Float[Array, "*batch n"]) -> Float[Array, "*batch n"]:
        r"""$\text{scale}(\nabla_\psi \tilde F(\psi))$, as the estimator estimates it;
        on a batch the scaling sees every set at once (so that it may couple them).
        Plus the scaling's offset, if it has one (see
        [`setfix.AbstractScaling.gain_weight`][])."""
        if self.batched:
            grad = eqx.filter_vmap(
                self.estimator.gradient, in_axes=(self.readout_axes, 0, 0, 0, 0)
            )(self.readout, self.embedding, psi, self.mask, self.noise)
        else:
            grad = self.estimator.gradient(self.readout, self.embedding, psi, self.mask,
                                           self.noise)
        scaled = self.scaling(grad, self.mask)
        return scaled if self.offset is None else scaled + self.offset

    def fixed_point(self, psi: Float[Array, "*batch n"]) -> Float[Array, "*batch n"]:
        r"""The map $T(\psi) = \sigma(\text{scale}(\nabla \tilde F(\psi)))$, zero on
        padded items."""
        return jnp.where(self.mask, jax.nn.sigmoid(self.scaled_gradient(psi)), 0)

    def residual(self, psi: Float[Array, "*batch n"]) -> Float[Array, "*batch n"]:
        r"""The fixed-point residual $G(\psi) = T(\psi) - \psi$."""
        return self.fixed_point(psi) - psi

    def logit_residual(self, psi: Float[Array, "*batch n"]) -> Float[Array, "*batch n"]:
        r"""The root form $R(\psi) = \text{scale}(\nabla \tilde F(\psi)) -
        \operatorname{logit}(\psi)$, with the same roots as $G$ on real items and
        $-\psi$ on padded ones."""
        eps = jnp.finfo(psi.dtype).eps
        inner = jnp.clip(psi, eps, 1 - eps)
        logit = jnp.log(inner) - jnp.log1p(-inner)
        return jnp.where(self.mask, self.scaled_gradient(psi) - logit, -psi)


MeanFieldProblem.__init__.__doc__ = """**Arguments:**

- `f`: the set function $F_\\theta$.
- `items`: item features, `(n, d)` for one set or `(b, n, d)` for a padded batch, or
    their rows of a shared table as [`setfix.PooledItems`][].
- `mask`: boolean, false for padded items (`None`: all items are real).
- `estimator`: estimator of $\\nabla \\tilde F$; its samples are drawn here, once (for a
    batch, from `key` split per set).
- `scaling`: scaling of the gradient before the sigmoid (default none).
- `key`: the PRNG key of the estimator's samples (not needed by `Exact`).
"""


def checked_key(estimator: AbstractEstimator, key: PRNGKeyArray | None) -> PRNGKeyArray:
    """`key`, or a placeholder where the estimator draws nothing (else a clear error)."""
    if key is None:
        if estimator.needs_key:
            raise ValueError(
                f"`key` is required by the estimator {type(estimator).__name__}; pass "
                "`key=jax.random.key(...)`."
            )
        return jax.random.key(0)  # unused by the estimator
    return key


def initial_point(psi0: Float[Array, "*batch n"] | None, mask: Bool[Array, "*batch n"],
                  dtype) -> Float[Array, "*batch n"]:
    """The solve's starting point: `psi0` (checked; default 1/2), zero on padded items,
    in at least JAX's default float (with `jax_enable_x64` a float32 model solves in
    float64, as Optimistix's solver states are float64 there)."""
    default = jax.dtypes.canonicalize_dtype(jnp.float64)
    if jnp.finfo(dtype).bits < jnp.finfo(default).bits:
        dtype = default
    if psi0 is None:
        psi0 = jnp.full(mask.shape, 0.5, dtype=dtype)
    else:
        psi0 = check_psi(psi0, mask.shape, "psi0").astype(dtype)
    return jnp.where(mask, psi0, 0)


def _draw(estimator, key, mask):
    n = mask.shape[-1]
    if mask.ndim == 1:
        return estimator.noise(key, n)
    keys = jax.random.split(key, mask.shape[0])
    return jax.vmap(lambda k: estimator.noise(k, n))(keys)
