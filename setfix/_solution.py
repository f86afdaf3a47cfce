"""What a mean-field method returns per set, and averaging over converged sets."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, Int


class MeanFieldSolution(eqx.Module):
    """The result of [`setfix.MeanField`][], per set.

    **Attributes:**

    - `psi`: the fixed point $\\psi^*$ (zero on padded items).
    - `num_steps`: the number of solver steps taken.
    - `residual`: $\\max_i |T(\\psi^*)_i - \\psi^*_i|$ at the returned point.
    - `converged`: whether the solver met its tolerance within `max_steps` and the
        result is finite. Never raised (unless `MeanField(throw=True)`): see
        [`setfix.mean_over_converged`][].
    - `result`: why each solve stopped, as Optimistix reports it: an
        `optx.RESULTS` item per set, `successful` exactly where `converged`; else
        e.g. `nonlinear_max_steps_reached`, or `nonlinear_divergence` where $\\psi$ is
        not finite. Compare per set with
        `sol.result == optx.RESULTS.nonlinear_max_steps_reached`; read the message of
        one set with `optx.RESULTS[sol.result]`.
    - `residual_trace`: with [`setfix.ResidualTrace`][] among `MeanField`'s
        `diagnostics`, $\\max_i |T(\\psi_k) -
        \\psi_k|_i$ at the start of each step $k$ (NaN after the last step); else `None`.
    - `omega`: with [`setfix.ContractionEstimate`][] among the `diagnostics`, an
        estimate of
        $\\lVert \\partial T / \\partial \\psi \\rVert_2$ at $\\psi^*$ (the local
        contraction factor); else `None`.
    - `logits`: the logits $z^* = \\text{scale}(\\nabla \\tilde F(\\psi^*))$ at the
        returned point, so that $\\sigma(z^*) = T(\\psi^*)$, which is $\\psi^*$ at the
        fixed point (zero on padded items); differentiable, through the implicit
        function theorem in the logits. From [`setfix.MeanField`][] with the
        [`setfix.FixedPointForm`][] and an `optx.ImplicitAdjoint` (as
        [`setfix.idiffmf`][]); else `None`. The training likelihood is taken from them
        where they are given ([`setfix.MeanFieldNLL`][]).
    """

    psi: Float[Array, "*batch n"]
    num_steps: Int[Array, "*batch"]
    residual: Float[Array, "*batch"]
    converged: Bool[Array, "*batch"]
    residual_trace: Float[Array, "*batch max_steps"] | None = None
    omega: Float[Array, "*batch"] | None = None
    result: optx.RESULTS | None = None
    logits: Float[Array, "*batch n"] | None = None


def per_set_result(result: optx.RESULTS, finite: Bool[Array, "*batch"]) -> optx.RESULTS:
    """`result` where `finite`, else `RESULTS.nonlinear_divergence`, per set (`result`
    is one solve's, shared by the batch of a coupled solve, or already per set)."""
    finite = jnp.asarray(finite)
    result = jax.tree.map(lambda v: jnp.broadcast_to(v, finite.shape), result)

    def where(ok, r):
        return optx.RESULTS.where(ok, r, optx.RESULTS.nonlinear_divergence)

    for _ in range(finite.ndim):
        where = jax.vmap(where)
    return where(finite, result)


def mean_over_converged(
    values: Float[ArrayLike, " *batch"], converged: Bool[ArrayLike, " *batch"]
) -> Float[Array, ""]:
    """The mean of per-set `values` (e.g. losses) over the sets whose solve converged;
    zero when none did. Unconverged sets contribute neither value nor gradient.

    **Arguments:**

    - `values`: one value per set.
    - `converged`: `MeanFieldSolution.converged`, of the same shape.
    """
    values = jnp.asarray(values)
    converged = jnp.asarray(converged)
    if values.shape != converged.shape:
        raise ValueError(
            f"`values` of shape {values.shape} and `converged` of shape "
            f"{converged.shape} must match."
        )
    kept = jnp.where(converged, values, 0)
    return jnp.sum(kept) / jnp.maximum(jnp.sum(converged, dtype=kept.dtype), 1)


MeanFieldSolution.__init__.__doc__ = """**Arguments:** the attributes, in order (made by
the solvers, not usually by hand)."""
