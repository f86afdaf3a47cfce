"""A fixed number of mean-field steps, differentiated by unrolling (DiffMF)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from ._estimator import AbstractEstimator
from ._method import AbstractMethod
from ._misc import stop_gradient_tree
from ._monte_carlo import MonteCarlo
from ._objective import MeanFieldNLL
from ._pooled_items import PooledItems
from ._problem import checked_key, initial_point, MeanFieldProblem
from ._scaling import AbstractScaling, NoScaling
from ._set_function import AbstractSetFunction
from ._solution import MeanFieldSolution, per_set_result


class MeanFieldSteps(AbstractMethod):
    r"""Exactly $K$ applications of the mean-field map from an initial point,
    $\psi_{k+1} = T(\psi_k) = \sigma(\text{scale}(\nabla_\psi \tilde F(\psi_k)))$,
    differentiated by backpropagating through all of them (memory $O(K)$).

    This is DiffMF of Ou et al. (2022) with $K = 5$ from $\psi_0 = 0.5$ and no
    scaling, and, with $K = 1$, the prediction rule of the published iDiffMF code (one
    step from $\psi = 0.5$, see [`setfix.reference_prediction`][]). The $K$-th iterate
    *is* the method's output, so it is not a solve to a tolerance: `converged` only
    says that it is finite, and `residual` reports how far it is from a fixed point.
    To solve to a tolerance, use [`setfix.MeanField`][] (with [`setfix.Unrolled`][]
    for DiffMF-style gradients).
    """

    estimator: AbstractEstimator = MonteCarlo()
    scaling: AbstractScaling = NoScaling()
    steps: int = 5
    initial: float = 0.5
    neg_num: int | None = eqx.field(default=1, kw_only=True, static=True)
    redraw: bool = eqx.field(default=False, kw_only=True, static=True)

    def __check_init__(self):
        if not isinstance(self.redraw, bool):
            raise TypeError(f"`redraw` must be True or False, got {self.redraw!r}.")
        if not isinstance(self.estimator, AbstractEstimator):
            raise TypeError(f"`estimator` must be a setfix estimator, got {self.estimator!r}.")
        if not isinstance(self.scaling, AbstractScaling):
            raise TypeError(f"`scaling` must be a setfix scaling, got {self.scaling!r}.")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"`steps` must be a positive integer, got {self.steps!r}.")
        if not 0 <= self.initial <= 1:
            raise ValueError(f"`initial` must lie in [0, 1], got {self.initial!r}.")

    def __call__(
        self,
        f: AbstractSetFunction,
        items: Float[ArrayLike, "..."] | PooledItems,
        mask: Bool[ArrayLike, "*batch n"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
        psi0: Float[Array, "*batch n"] | None = None,
    ) -> MeanFieldSolution:
        """**Arguments:**

        - `f`: the set function $F_\\theta$.
        - `items`: item features, `(n, d)` for one set or `(b, n, d)` for a batch, or
            their rows of a shared table as [`setfix.PooledItems`][].
        - `mask`: boolean, false for padded items (`None`: all items are real).
        - `key`: the PRNG key of the estimator's samples (common to all $K$ steps;
            with `redraw`, step $k$ draws with `jax.random.fold_in(key, k)`).
        - `psi0`: the initial point (default `initial` on every real item).

        **Returns:** a [`setfix.MeanFieldSolution`][] holding $\\psi_K$.
        """
        problem = MeanFieldProblem(f, items, mask, estimator=self.estimator,
                                   scaling=self.scaling, key=key)
        key = checked_key(self.estimator, key)
        mask = problem.mask
        if psi0 is None:
            psi0 = jnp.full(mask.shape, self.initial, problem.embedding.dtype)
        psi = initial_point(psi0, mask, problem.embedding.dtype)
        if self.redraw:
            def step(p, k):
                return problem.redrawn(jax.random.fold_in(key, k)).fixed_point(p), None
        else:
            def step(p, k):
                return problem.fixed_point(p), None
        psi = jax.lax.scan(step, psi, jnp.arange(self.steps))[0]
        point, frozen = stop_gradient_tree((psi, problem))
        res = jnp.max(jnp.abs(frozen.residual(point)), axis=-1)
        finite = jnp.all(jnp.isfinite(psi), axis=-1)
        return MeanFieldSolution(
            psi=psi,
            num_steps=jnp.full(mask.shape[:-1], self.steps),
            residual=res,
            converged=finite,
            result=per_set_result(optx.RESULTS.successful, finite),
        )

    @property
    def objective(self) -> MeanFieldNLL:
        """[`setfix.MeanFieldNLL`][], the objective of the mean-field methods."""
        return MeanFieldNLL()

    def solve(
        self,
        model: AbstractSetFunction,
        items: Float[ArrayLike, "..."] | PooledItems,
        mask: Bool[ArrayLike, "*batch n"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ) -> MeanFieldSolution:
        """The same as calling the method with the default initial point."""
        return self(model, items, mask, key=key)


MeanFieldSteps.__init__.__doc__ = """**Arguments:**

- `estimator`: estimator of $\\nabla \\tilde F$, e.g. `setfix.MonteCarlo(num_samples=5)`.
- `scaling`: scaling of the gradient before the sigmoid (DiffMF: `setfix.NoScaling()`).
- `steps`: the number $K$ of map applications.
- `initial`: the initial value of $\\psi$ on every item (when no `psi0` is passed).
- `neg_num`: negatives per member of $S^*$ in the training loss of [`setfix.fit`][]
    (`None`: every non-member; default 1, as the published code).
- `redraw`: draw the estimator's samples afresh at every step, as the published
    DiffMF code, instead of holding them fixed across the $K$ steps (the default, so
    that the $K$ steps iterate one deterministic map).
"""

