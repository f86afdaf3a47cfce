"""The paper's Section 4 as functions: Assumption 4.1, the Lipschitz constant of the
mean-field map, and the iteration bound of Section 4.4."""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from ._estimator import AbstractEstimator
from ._evaluator import batched_readout, pooled_split, scale_energy, split_set_function
from ._exact import all_subsets, Exact
from ._pooled_items import PooledItems
from ._problem import MeanFieldProblem
from ._scaling import AbstractScaling, NoScaling
from ._set_function import AbstractSetFunction
from ._spectral import spectral_norm
from ._validate import check_items_and_mask, check_psi


def assumption_4_1(
    f: AbstractSetFunction,
    items: Float[ArrayLike, "n ..."] | PooledItems,
    mask: Bool[ArrayLike, " n"] | None = None,
) -> Float[Array, ""]:
    r"""Returns $n \cdot \max_{S \subseteq V} |F(S, V)|$, by enumerating every subset
    of the real items ($n \le 20$).

    Assumption 4.1 of the paper, $\sup_\psi |\tilde F(\psi)| < 1/n$, holds exactly when
    the result is below 1; Theorem 4.2 then makes the mean-field map a contraction.
    """
    items, mask = check_items_and_mask(items, mask, allow_batch=False)
    readout, embedding = split_set_function(f, items, mask)
    subsets = jnp.where(mask, all_subsets(items.shape[0], embedding.dtype), 0)
    values = batched_readout(readout, subsets @ embedding)
    return jnp.sum(mask, dtype=values.dtype) * jnp.max(jnp.abs(values))


def lipschitz_estimate(
    f: AbstractSetFunction,
    items: Float[ArrayLike, "n ..."] | PooledItems,
    mask: Bool[ArrayLike, " n"] | None = None,
    *,
    estimator: AbstractEstimator = Exact(),
    scaling: AbstractScaling = NoScaling(),
    key: PRNGKeyArray,
    psi: Float[Array, "p n"] | None = None,
    num_points: int = 16,
    num_iterations: int = 50,
) -> Float[Array, ""]:
    r"""Estimates $\omega$, the Lipschitz constant (in the Euclidean norm) of the
    mean-field map $T(\psi) = \sigma(\text{scale}(\nabla \tilde F(\psi)))$.

    Returns the largest spectral norm $\lVert \partial T / \partial \psi \rVert_2$ found
    over the points `psi` (default: `num_points` uniform random points of $[0,1]^n$, plus
    the centre), each by `num_iterations` steps of power iteration on
    $J^\top J$. This is a lower bound on the supremum over the cube that tightens with
    more points; $\omega < 1$ on it is evidence (not proof) of a contraction. For a
    proof use [`setfix.assumption_4_1`][].

    **Arguments:**

    - `f`, `items`, `mask`: the set function and one ground set.
    - `estimator`, `scaling`: as in [`setfix.MeanField`][] (default: exact, unscaled).
    - `key`: PRNG key for the random points, the power-iteration start and the
        estimator's samples.
    - `psi`: the points to evaluate at, shape `(p, n)`, instead of random ones.
    - `num_points`, `num_iterations`: the number of random points and of power steps.
    """
    items, mask = check_items_and_mask(items, mask, allow_batch=False)
    n = items.shape[0]
    if num_iterations < 1:
        raise ValueError(f"`num_iterations` must be positive, got {num_iterations}.")
    point_key, start_key, noise_key = jax.random.split(key, 3)
    problem = MeanFieldProblem(f, items, mask, estimator=estimator, scaling=scaling,
                               key=noise_key)
    dtype = problem.embedding.dtype
    if psi is None:
        if num_points < 0:
            raise ValueError(f"`num_points` must be non-negative, got {num_points}.")
        random = jax.random.uniform(point_key, (num_points, n), dtype)
        psi = jnp.concatenate([jnp.full((1, n), 0.5, dtype), random])
    else:
        psi = jnp.asarray(psi)
        if psi.ndim != 2:
            raise ValueError(f"`psi` must have shape (p, {n}), got {psi.shape}.")
        psi = check_psi(psi, (psi.shape[0], n)).astype(dtype)
    psi = jnp.where(mask, psi, 0)

    def norm_at(point, start):
        return spectral_norm(problem.fixed_point, point, jnp.where(mask, start, 0),
                             num_iterations)

    starts = jax.random.normal(start_key, psi.shape, dtype)
    return jnp.max(jax.vmap(norm_at)(psi, starts))


def interaction_certificate(
    f: AbstractSetFunction,
    items: Float[ArrayLike, "..."] | PooledItems,
    mask: Bool[ArrayLike, "*batch n"] | None = None,
    scaling: AbstractScaling = NoScaling(),
) -> Float[Array, " *batch"]:
    r"""A certified upper bound, per ground set, on the Lipschitz constant $\omega$ of the
    mean-field map $T(\psi) = \sigma(\text{scale}(\nabla \tilde F(\psi)))$ with the
    exact multilinear extension, over the whole cube $[0,1]^n$:

    $$\omega \le \frac{k}{4} \sup_\psi \lVert H(\psi) \rVert_2 \le \frac{k}{4} B(V),$$

    $k$ the scaling's factor (for [`setfix.CertifiedScaling`][], its energy scale),
    $H$ the multilinear Hessian, $B$ the set function's
    [`interaction_bound`][setfix.AbstractSetFunction.interaction_bound]. Below 1 it
    proves the map a contraction (unique fixed point, iteration converges from any
    start within [`setfix.iteration_bound`][]`(certificate, tol, n)` steps), with no
    bound on the magnitude of $F$. Compare [`setfix.lipschitz_estimate`][], a lower
    estimate at sampled points.

    **Arguments:**

    - `f`: a set function with an interaction bound (`setfix.DeepSet(...,
        smooth=True)`, [`setfix.TableSetFunction`][]).
    - `items`, `mask`: one ground set `(n, d)` or a padded batch `(b, n, d)`.
    - `scaling`: a scaling whose factor does not depend on the gradient
        (`NoScaling`, `ConstantScaling`, `CertifiedScaling`); `NormScaling` divides by
        the gradient's norm and has no such certificate.
    """
    if not isinstance(f, AbstractSetFunction):
        raise TypeError(f"`f` must be a setfix.AbstractSetFunction, got {type(f).__name__}.")
    if not isinstance(scaling, AbstractScaling):
        raise TypeError(f"`scaling` must be a setfix scaling, got {scaling!r}.")
    items, mask = check_items_and_mask(items, mask)
    factor = scaling.linear_factor(mask)
    if factor is None:
        raise TypeError(
            f"{type(scaling).__name__} scales by a factor that depends on the gradient; "
            "the certificate needs NoScaling, ConstantScaling or CertifiedScaling.")
    # The energy alone (no estimator samples): the bound is on the exact extension.
    readout, embedding, axes = pooled_split(f, items, batched=mask.ndim == 2, mask=mask)
    # The offset of `gain_weight` does not depend on psi: the bound is the same.
    readout, _, _ = scale_energy(scaling, readout, embedding, mask, axes)
    return factor * readout.interaction_bound(embedding, mask) / 4


def iteration_bound(omega: float, tol: float, n: int) -> int:
    r"""The number of fixed-point iterations that guarantees
    $\lVert \psi_k - \psi^* \rVert_2 \le \varepsilon$ for a contraction with Lipschitz
    constant $\omega < 1$ on $[0,1]^n$ (Section 4.4):

    $$k = \left\lceil \frac{\log\big(\varepsilon (1 - \omega) / \sqrt n\big)}
    {\log \omega} \right\rceil.$$

    **Arguments:**

    - `omega`: the Lipschitz constant, in $(0, 1)$.
    - `tol`: the tolerance $\varepsilon > 0$.
    - `n`: the number of items.
    """
    omega, tol = float(omega), float(tol)
    if not 0 < omega < 1:
        raise ValueError(f"`omega` must lie in (0, 1) for a contraction, got {omega}.")
    if not tol > 0:
        raise ValueError(f"`tol` must be positive, got {tol}.")
    if int(n) < 1:
        raise ValueError(f"`n` must be a positive integer, got {n}.")
    bound = math.log(tol * (1 - omega) / math.sqrt(n)) / math.log(omega)
    return max(0, math.ceil(bound))
