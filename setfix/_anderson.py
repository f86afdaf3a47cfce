"""Anderson acceleration as an Optimistix fixed-point solver."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int, PyTree, Scalar

from ._validate import check_tolerances


class _AndersonState(eqx.Module):
    iterates: Float[Array, "m dim"]  # past points y_k
    images: Float[Array, "m dim"]  # past T(y_k)
    count: Int[Array, ""]  # number of map evaluations so far
    relative_error: Scalar  # scaled |T(y) - y| at `checked`
    checked: PyTree[Array]  # the last point whose residual was measured


class AndersonAcceleration(optx.AbstractFixedPointSolver):
    r"""Anderson acceleration (type II) of the fixed-point iteration $y \mapsto T(y)$.

    Keeps the last `history_length` points $y_i$ and images $T(y_i)$, with residuals
    $g_i = T(y_i) - y_i$, and steps to

    $$y_{k+1} = \sum_i \alpha_i \big((1 - \text{damp})\,T(y_i) + \text{damp}\;y_i\big),
    \qquad \alpha = \arg\min_{\sum_i \alpha_i = 1}
    \Big\lVert \sum_i \alpha_i g_i \Big\rVert_2^2 + \lambda \lVert \alpha \rVert_2^2,$$

    solved through the $m \times m$ Gram matrix $G^\top G$ of the residuals, with ridge
    $\lambda = \text{ridge} \cdot \operatorname{tr}(G^\top G) / m$ relative to its scale.
    With `history_length=1` this is (damped) fixed-point iteration.

    It terminates like `optx.FixedPointIteration`, when
    $\lVert (T(y) - y) / (\text{atol} + \text{rtol}\,|T(y)|) \rVert < 1$, and returns
    that point $y$: the residual it reports is the residual of what it returns. Works
    under `jax.vmap` and with any Optimistix adjoint.
    """

    rtol: float
    atol: float
    norm: Callable[[PyTree], Scalar] = optx.max_norm
    history_length: int = 5
    damp: float = 0.0
    ridge: float = 1e-10

    def __check_init__(self):
        check_tolerances(self, "solver")
        if not isinstance(self.history_length, int) or self.history_length < 1:
            raise ValueError(
                f"`history_length` must be a positive integer, got {self.history_length!r}."
            )
        if not 0 <= self.damp < 1:
            raise ValueError(f"`damp` must lie in [0, 1), got {self.damp!r}.")
        if not self.ridge >= 0:
            raise ValueError(f"`ridge` must be non-negative, got {self.ridge!r}.")

    def init(self, fn, y, args, options, f_struct, aux_struct, tags) -> _AndersonState:
        del fn, args, options, f_struct, aux_struct, tags
        flat, _ = ravel_pytree(y)
        history = jnp.zeros((self.history_length, flat.size), flat.dtype)
        return _AndersonState(
            iterates=history,
            images=history,
            count=jnp.array(0),
            relative_error=jnp.array(jnp.inf, flat.dtype),
            checked=y,
        )

    def step(self, fn, y, args, options, state, tags):
        del options, tags
        image, aux = fn(y, args)
        flat_y, unravel = ravel_pytree(y)
        flat_image, _ = ravel_pytree(image)
        m = self.history_length
        slot = state.count % m
        iterates = state.iterates.at[slot].set(flat_y)
        images = state.images.at[slot].set(flat_image)
        valid = jnp.arange(m) < jnp.minimum(state.count + 1, m)

        residuals = jnp.where(valid[:, None], images - iterates, 0)
        gram = residuals @ residuals.T
        scale = jnp.trace(gram) / jnp.sum(valid, dtype=gram.dtype)
        ridge = self.ridge * jnp.where(scale > 0, scale, 1)
        both = valid[:, None] & valid[None, :]
        system = jnp.where(both, gram, 0) + jnp.diag(jnp.where(valid, ridge, 1))
        weights = jnp.linalg.solve(system, valid.astype(gram.dtype))
        total = jnp.sum(weights)
        # A degenerate system falls back to a plain step from y.
        ok = jnp.isfinite(total) & (jnp.abs(total) > 0)
        plain = jnp.zeros(m, gram.dtype).at[slot].set(1)
        weights = jnp.where(ok, weights / jnp.where(ok, total, 1), plain)
        mixed = (1 - self.damp) * images + self.damp * iterates
        new_y = unravel(weights @ mixed)

        error = flat_image - flat_y
        tolerance = self.atol + self.rtol * jnp.abs(flat_image)
        new_state = _AndersonState(
            iterates=iterates,
            images=images,
            count=state.count + 1,
            relative_error=self.norm(error / tolerance),
            checked=y,
        )
        return new_y, new_state, aux

    def terminate(
        self, fn, y, args, options, state, tags
    ) -> tuple[Bool[Array, ""], optx.RESULTS]:
        return state.relative_error < 1, optx.RESULTS.successful

    def postprocess(
        self, fn, y, aux, args, options, state, tags, result
    ) -> tuple[PyTree, Any, dict[str, Any]]:
        # Before any step `checked` is y0 itself.
        return state.checked, aux, {}


AndersonAcceleration.__init__.__doc__ = """**Arguments:**

- `rtol`: relative tolerance for terminating the solve.
- `atol`: absolute tolerance for terminating the solve.
- `norm`: the norm of the scaled residual in the termination test, e.g.
    `optx.max_norm`, `optx.rms_norm` or `optx.two_norm`.
- `history_length`: the number $m$ of past points mixed at each step.
- `damp`: the weight of the past points $y_i$ against their images $T(y_i)$.
- `ridge`: Tikhonov regularisation of the mixing least-squares problem, relative to the
    mean diagonal of the residual Gram matrix.
"""
