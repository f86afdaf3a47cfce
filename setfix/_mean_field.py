"""The mean-field fixed point psi = sigma(scale(grad F~(psi))) and its solve."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._estimator import AbstractEstimator
from ._evaluator import _PooledReadout, _SubsetReadout, scale_energy, split_set_function
from ._method import AbstractMethod
from ._misc import stop_gradient_tree
from ._monte_carlo import MonteCarlo
from ._pooled_items import embed_items, gathered, PooledItems
from ._scaling import AbstractScaling, NormScaling
from ._set_function import AbstractPooledSetFunction, AbstractSetFunction, check_item_shape
from ._solution import MeanFieldSolution, per_set_result
from ._spectral import spectral_norm
from ._trace import traced
from ._validate import check_items_and_mask, check_psi, check_tolerances


class _AbstractMap(eqx.Module):
    """The mean-field problem on `args = (readout, embedding, mask, noise)`.

    Called as the solver's function: the map T in fixed-point form, the residual
    R(psi) = scale(grad F~(psi)) - logit(psi) in root form. Padded entries are fixed at 0.
    """

    estimator: eqx.AbstractVar[AbstractEstimator]
    scaling: eqx.AbstractVar[AbstractScaling]
    root_form: eqx.AbstractVar[bool]

    def scaled_gradient(self, psi, args):
        raise NotImplementedError

    def fixed_point(self, psi, args):
        """T(psi) = sigma(scale(grad F~(psi)))."""
        _, _, mask, _ = args
        return jnp.where(mask, jax.nn.sigmoid(self.scaled_gradient(psi, args)), 0)

    def residual(self, psi, args):
        """T(psi) - psi, the fixed-point residual G in either form."""
        return self.fixed_point(psi, args) - psi

    def __call__(self, psi, args):
        if not self.root_form:
            return self.fixed_point(psi, args)
        _, _, mask, _ = args
        eps = jnp.finfo(psi.dtype).eps
        inner = jnp.clip(psi, eps, 1 - eps)
        logit = jnp.log(inner) - jnp.log1p(-inner)
        return jnp.where(mask, self.scaled_gradient(psi, args) - logit, -psi)


class _SetMap(_AbstractMap):
    """The problem of one set."""

    estimator: AbstractEstimator
    scaling: AbstractScaling
    root_form: bool = False

    def scaled_gradient(self, psi, args):
        readout, embedding, mask, noise = args
        grad = self.estimator.gradient(readout, embedding, psi, mask, noise)
        return self.scaling(grad, mask)


class _BatchMap(_AbstractMap):
    """A batch solved jointly (a scaling that couples the batch)."""

    estimator: AbstractEstimator
    scaling: AbstractScaling
    readout_axes: Any
    root_form: bool = False

    def scaled_gradient(self, psi, args):
        readout, embedding, mask, noise = args
        grad = eqx.filter_vmap(
            self.estimator.gradient, in_axes=(self.readout_axes, 0, 0, 0, 0)
        )(readout, embedding, psi, mask, noise)
        return self.scaling(grad, mask)


def _split(f, items, batched):
    """(readout, embedding, readout_axes): the pooled form of f on one set or a batch;
    the per-item encoder runs here, once per ground set (on `PooledItems`, once per
    pool row)."""
    if not batched:
        readout, embedding = split_set_function(f, items)
        return readout, embedding, None
    if isinstance(f, AbstractPooledSetFunction):
        f = f.folded()
        return _PooledReadout(f), embed_items(f.embed, items, batched=True), None
    items = gathered(items)
    eye = jnp.eye(items.shape[1], dtype=items.dtype)
    embedding = jnp.broadcast_to(eye, (items.shape[0],) + eye.shape)
    return _SubsetReadout(f, items), embedding, _SubsetReadout(None, 0)  # pyright: ignore


def _check_fits(f, items, mask):
    """The per-item encoder of `f` accepts the items' features (else a clear error)."""
    if isinstance(items, PooledItems):
        check_item_shape(f, items.pool.shape[1:], items.pool.dtype)
    else:
        check_item_shape(f, items.shape[mask.ndim:], items.dtype)


def _noise(estimator, key, mask):
    n = mask.shape[-1]
    if mask.ndim == 1:
        return estimator.noise(key, n)
    keys = jax.random.split(key, mask.shape[0])
    return jax.vmap(lambda k: estimator.noise(k, n))(keys)


def _initial(psi0, mask, dtype):
    # At least JAX's default float: with `jax_enable_x64`, a float32 model solves in
    # float64, as Optimistix's solver states are float64 there.
    dtype = jnp.promote_types(dtype, jax.dtypes.canonicalize_dtype(jnp.float64))
    if psi0 is None:
        psi0 = jnp.full(mask.shape, 0.5, dtype=dtype)
    else:
        psi0 = check_psi(psi0, mask.shape, "psi0").astype(dtype)
    return jnp.where(mask, psi0, 0)


def _check_key(estimator, key):
    if key is None:
        if estimator.needs_key:
            raise ValueError(
                f"`key` is required by the estimator {type(estimator).__name__}; pass "
                "`key=jax.random.key(...)`."
            )
        return jax.random.key(0)  # unused by the estimator
    return key


def _prepare(f, items, mask, estimator, key, scaling):
    """Checks the input and does the per-ground-set work of a solve: the pooled split of
    `f` (its encoder runs here, once), the scaling's energy scale and the estimator's
    noise."""
    if not isinstance(f, AbstractSetFunction):
        raise TypeError(f"`f` must be a setfix.AbstractSetFunction, got {type(f).__name__}.")
    items, mask = check_items_and_mask(items, mask)
    _check_fits(f, items, mask)
    key = _check_key(estimator, key)
    batched = mask.ndim == 2
    readout, embedding, axes = _split(f, items, batched)
    readout, axes = scale_energy(scaling, readout, embedding, mask, axes)
    return mask, key, batched, readout, embedding, axes, _noise(estimator, key, mask)


def fixed_point_map(
    f: AbstractSetFunction,
    items: Float[Array, "*batch n d"] | PooledItems,
    mask: Bool[Array, "*batch n"] | None,
    psi: Float[Array, "*batch n"],
    *,
    estimator: AbstractEstimator,
    scaling: AbstractScaling,
    key: PRNGKeyArray | None = None,
) -> Float[Array, "*batch n"]:
    r"""The mean-field map $T(\psi) = \sigma\big(\text{scale}(\nabla_\psi
    \tilde F(\psi, \theta))\big)$, zero on padded items.

    **Arguments:**

    - `f`: the set function.
    - `items`: item features, `(n, d)` for one set or `(b, n, d)` for a batch, or their
        rows of a shared table as [`setfix.PooledItems`][].
    - `mask`: which items are real (`None`: all of them).
    - `psi`: the mean-field parameters, one per item.
    - `estimator`: how $\nabla \tilde F$ is estimated.
    - `scaling`: how the gradient is scaled before the sigmoid.
    - `key`: the PRNG key of the estimator's samples (not needed by `Exact`).
    """
    items, mask = check_items_and_mask(items, mask)
    _check_fits(f, items, mask)
    psi = check_psi(psi, mask.shape)
    key = _check_key(estimator, key)
    batched = mask.ndim == 2
    readout, embedding, axes = _split(f, items, batched)
    readout, axes = scale_energy(scaling, readout, embedding, mask, axes)
    args = (readout, embedding, mask, _noise(estimator, key, mask))
    psi = jnp.where(mask, psi.astype(embedding.dtype), 0)
    if batched:
        return _BatchMap(estimator, scaling, axes).fixed_point(psi, args)
    return _SetMap(estimator, scaling).fixed_point(psi, args)


def residual(
    f: AbstractSetFunction,
    items: Float[Array, "*batch n d"] | PooledItems,
    mask: Bool[Array, "*batch n"] | None,
    psi: Float[Array, "*batch n"],
    *,
    estimator: AbstractEstimator,
    scaling: AbstractScaling,
    key: PRNGKeyArray | None = None,
) -> Float[Array, "*batch n"]:
    r"""The fixed-point residual $G(\psi, \theta) = T(\psi) - \psi$, whose root is the
    mean-field solution. Arguments as for [`setfix.fixed_point_map`][]."""
    mapped = fixed_point_map(
        f, items, mask, psi, estimator=estimator, scaling=scaling, key=key
    )
    return mapped - jnp.where(mask if mask is not None else True, psi, 0)


class MeanField(AbstractMethod):
    r"""Solves the mean-field fixed point $\psi^* = \sigma(\text{scale}(\nabla_\psi
    \tilde F(\psi^*, \theta)))$ of a set function on a ground set, differentiably.

    The per-item encoder runs once per ground set, outside the solve. The fixed point is
    found by any Optimistix fixed-point solver or root finder, and gradients flow by the
    Optimistix `adjoint`: with `optx.ImplicitAdjoint(linear_solver)` the implicit
    function theorem gives

    $$\frac{\partial \psi^*}{\partial \theta} = (I - \partial_\psi T)^{-1}
    \partial_\theta T,$$

    a Lineax solve whose operator uses the estimator's multilinear-Hessian JVP.
    [`setfix.Unrolled`][] and [`setfix.OneStep`][] give DiffMF's and the phantom
    gradients instead.

    With `root_form=True` the solver finds the root of
    $R(\psi) = \text{scale}(\nabla \tilde F(\psi)) - \operatorname{logit}(\psi)$,
    the same $\psi^*$. With a symmetric Hessian estimate (`Exact`, or `MonteCarlo`
    with `hessian=PairwiseHessian()`) and no or constant scaling, its Jacobian
    $\nabla^2 \tilde F - \operatorname{diag}(1/(\psi(1-\psi)))$ is symmetric, and
    negative definite under Assumption 4.1 (then $\lVert \nabla^2 \tilde F \rVert < 4
    \le 1/(\psi(1-\psi))$); the solve is tagged so, and `lx.CG` or `lx.Cholesky` may be
    used in `optx.ImplicitAdjoint`.

    Called on one set (`items` of shape `(n, d)`) or a padded batch (`(b, n, d)`). For
    a batch each set is solved on its own (as under `jax.vmap`), except with a scaling
    that couples the batch, where the batch is one joint fixed point.

    **Example:**

    ```python
    import jax
    import setfix as sf

    f = sf.DeepSet(2, hidden=8, width=8, key=jax.random.key(0))
    items = jax.random.normal(jax.random.key(1), (10, 2))
    sol = sf.MeanField(sf.MonteCarlo(5), sf.NormScaling("fro"))(f, items, key=jax.random.key(2))
    assert sol.psi.shape == (10,) and bool(sol.converged)
    ```
    """

    estimator: AbstractEstimator = MonteCarlo()
    scaling: AbstractScaling = NormScaling()
    solver: optx.AbstractFixedPointSolver | optx.AbstractRootFinder = (
        optx.FixedPointIteration(rtol=1e-5, atol=1e-5)
    )
    adjoint: optx.AbstractAdjoint = optx.ImplicitAdjoint(
        lx.GMRES(rtol=1e-5, atol=1e-5)
    )
    max_steps: int = 100
    root_form: bool = eqx.field(default=False, kw_only=True)
    trace: bool = eqx.field(default=False, kw_only=True)
    estimate_omega: bool = eqx.field(default=False, kw_only=True)
    neg_num: int | None = eqx.field(default=1, kw_only=True, static=True)
    throw: bool = eqx.field(default=False, kw_only=True, static=True)

    def __check_init__(self):
        if not isinstance(self.throw, bool):
            raise TypeError(f"`throw` must be a bool, got {self.throw!r}.")
        if not isinstance(self.estimator, AbstractEstimator):
            raise TypeError(
                "`estimator` must be a setfix estimator such as `setfix.MonteCarlo()`, "
                f"got {self.estimator!r}."
            )
        if not isinstance(self.scaling, AbstractScaling):
            raise TypeError(
                "`scaling` must be a setfix scaling such as `setfix.NormScaling()`, "
                f"got {self.scaling!r}."
            )
        solver_types = (optx.AbstractFixedPointSolver, optx.AbstractRootFinder)
        if not isinstance(self.solver, solver_types):
            raise TypeError(
                "`solver` must be an Optimistix fixed-point solver or root finder, such "
                f"as `optx.FixedPointIteration(rtol, atol)`, got {self.solver!r}."
            )
        check_tolerances(self.solver, "solver")
        check_tolerances(getattr(self.adjoint, "linear_solver", None), "adjoint.linear_solver")
        if self.root_form and not isinstance(self.solver, optx.AbstractRootFinder):
            raise TypeError(
                "`root_form=True` needs a root finder as `solver` (e.g. `optx.Newton`), "
                f"got {type(self.solver).__name__}."
            )
        if not isinstance(self.adjoint, optx.AbstractAdjoint):
            raise TypeError(
                "`adjoint` must be an Optimistix adjoint such as "
                f"`optx.ImplicitAdjoint(...)`, got {self.adjoint!r}."
            )
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(
                f"`max_steps` must be a positive integer, got {self.max_steps!r}."
            )

    def __call__(
        self,
        f: AbstractSetFunction,
        items: Float[Array, "*batch n d"] | PooledItems,
        mask: Bool[Array, "*batch n"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
        psi0: Float[Array, "*batch n"] | None = None,
    ) -> MeanFieldSolution:
        """**Arguments:**

        - `f`: the set function $F_\\theta$.
        - `items`: item features, `(n, d)` for one set or `(b, n, d)` for a batch, or
            their rows of a shared table as [`setfix.PooledItems`][].
        - `mask`: boolean, false for padded items (`None`: all items are real).
        - `key`: the PRNG key of the estimator's samples, drawn once per solve (for a
            batch, split per set). Not needed by `Exact`.
        - `psi0`: the initial point (default 0.5 on every real item), e.g. the previous
            epoch's solution for a warm start.

        **Returns:** a [`setfix.MeanFieldSolution`][].
        """
        mask, key, batched, readout, embedding, axes, noise = _prepare(
            f, items, mask, self.estimator, key, self.scaling
        )
        psi0 = _initial(psi0, mask, embedding.dtype)
        if batched and self.scaling.couples_batch:
            fn = _BatchMap(self.estimator, self.scaling, axes, self.root_form)
            sol = self._solve(fn, readout, embedding, mask, noise, psi0, key)
            # One solve for the whole batch: its step count, trace and omega are
            # shared by every set (`converged` and `residual` are already per set).
            b = mask.shape[0]
            broadcast = lambda x: jnp.broadcast_to(x, (b,) + jnp.shape(x))  # noqa: E731
            return eqx.tree_at(
                lambda s: (s.num_steps, s.residual_trace, s.omega),
                sol,
                jax.tree.map(broadcast, (sol.num_steps, sol.residual_trace, sol.omega)),
                is_leaf=lambda x: x is None,
            )
        fn = _SetMap(self.estimator, self.scaling, self.root_form)
        if not batched:
            return self._solve(fn, readout, embedding, mask, noise, psi0, key)
        keys = jax.random.split(key, mask.shape[0])
        solve = lambda r, z, m, u, p, k: self._solve(fn, r, z, m, u, p, k)  # noqa: E731
        return eqx.filter_vmap(solve, in_axes=(axes, 0, 0, 0, 0, 0))(
            readout, embedding, mask, noise, psi0, keys
        )

    def solve(
        self,
        model: AbstractSetFunction,
        items: Float[Array, "*batch n d"] | PooledItems,
        mask: Bool[Array, "*batch n"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ) -> MeanFieldSolution:
        """The same as calling the method: the solved fixed point from $\\psi = 0.5$."""
        return self(model, items, mask, key=key)

    def _solve(self, fn, readout, embedding, mask, noise, psi0, key):
        args = (readout, embedding, mask, noise)
        solver = self.solver
        if self.trace:
            solver = traced(solver, fn.residual, self.max_steps)
        if self.root_form:
            # dR/dpsi = scale'(Hessian) - diag(1 / (psi (1 - psi))): symmetric negative
            # definite when the Hessian estimate is symmetric and small, so the
            # adjoint may use CG-type solvers.
            symmetric = self.estimator.symmetric_hessian and self.scaling.preserves_symmetry
            tags = (
                frozenset({lx.symmetric_tag, lx.negative_semidefinite_tag})
                if symmetric
                else frozenset()
            )
            sol = optx.root_find(
                fn, solver, psi0, args, max_steps=self.max_steps, adjoint=self.adjoint,
                throw=self.throw, tags=tags,
            )
        else:
            sol = optx.fixed_point(
                fn, solver, psi0, args, max_steps=self.max_steps, adjoint=self.adjoint,
                throw=self.throw,
            )
        psi = sol.value
        frozen = stop_gradient_tree((psi, args))
        res = jnp.max(jnp.abs(fn.residual(*frozen)), axis=-1)
        finite = jnp.all(jnp.isfinite(psi), axis=-1)
        result = per_set_result(sol.result, finite)
        converged = result == optx.RESULTS.successful
        omega = None
        if self.estimate_omega:
            point, frozen_args = frozen
            start = jnp.where(mask, jax.random.normal(key, psi.shape, psi.dtype), 0)
            omega = spectral_norm(
                lambda p: fn.fixed_point(p, frozen_args), point, start, 30
            )
        return MeanFieldSolution(
            psi=psi,
            num_steps=sol.stats["num_steps"],
            residual=res,
            converged=converged,
            residual_trace=sol.stats.get("residual_trace"),
            omega=omega,
            result=result,
        )


MeanField.__init__.__doc__ = """**Arguments:**

- `estimator`: estimator of $\\nabla \\tilde F$ and its $\\psi$-JVP, e.g.
    `setfix.MonteCarlo(num_samples=5)` or `setfix.Exact()`.
- `scaling`: scaling of the gradient before the sigmoid, e.g. `setfix.NormScaling()`.
- `solver`: any Optimistix fixed-point solver (`optx.FixedPointIteration`,
    [`setfix.AndersonAcceleration`][], ...) or root finder (`optx.Newton`,
    `optx.Chord`, ...), which then finds the root of $T(\\psi) - \\psi$.
- `adjoint`: how gradients flow through the solve, e.g.
    `optx.ImplicitAdjoint(lx.GMRES(rtol, atol))`, [`setfix.Unrolled`][] or
    [`setfix.OneStep`][].
- `max_steps`: the most solver steps per solve; a solve that needs more is reported as
    not converged.
- `root_form`: solve $\\text{scale}(\\nabla \\tilde F(\\psi)) -
    \\operatorname{logit}(\\psi) = 0$ with a root finder instead of the fixed-point form.
- `trace`: record the residual at every solver step (one extra map evaluation per step).
- `estimate_omega`: estimate the local contraction factor at the solution (30 power
    iterations).
- `neg_num`: negatives per member of $S^*$ in the training loss of [`setfix.fit`][]
    (`None`: every non-member; default 1, as the published code).
- `throw`: raise (an `EquinoxRuntimeError` naming the reason) when a solve fails, as
    Optimistix's `throw=True`, instead of reporting it per set in
    `MeanFieldSolution.converged` and `.result` (the default, so that training can
    leave failed sets out).
"""
