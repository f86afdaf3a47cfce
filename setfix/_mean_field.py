"""The mean-field fixed point psi = sigma(scale(grad F~(psi))) and its solve."""


import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from ._diagnostics import AbstractDiagnostic
from ._estimator import AbstractEstimator
from ._forms import AbstractForm, FixedPointForm
from ._method import AbstractMethod
from ._misc import stop_gradient_tree
from ._monte_carlo import MonteCarlo
from ._objective import MeanFieldNLL
from ._pooled_items import PooledItems
from ._problem import checked_key, initial_point, MeanFieldProblem
from ._scaling import AbstractScaling, NormScaling
from ._set_function import AbstractSetFunction
from ._solution import MeanFieldSolution, per_set_result
from ._validate import check_psi, check_tolerances


def fixed_point_map(
    f: AbstractSetFunction,
    items: Float[ArrayLike, "..."] | PooledItems,
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
    problem = MeanFieldProblem(f, items, mask, estimator=estimator, scaling=scaling,
                               key=key)
    psi = check_psi(psi, problem.mask.shape)
    return problem.fixed_point(jnp.where(problem.mask, psi.astype(problem.embedding.dtype),
                                         0))


def residual(
    f: AbstractSetFunction,
    items: Float[ArrayLike, "..."] | PooledItems,
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

    With `form=setfix.LogitRootForm()` a root finder finds the root of
    $R(\psi) = \text{scale}(\nabla \tilde F(\psi)) - \operatorname{logit}(\psi)$,
    the same $\psi^*$, whose Jacobian can be symmetric (see
    [`setfix.LogitRootForm`][]).

    Called on one set (`items` of shape `(n, d)`) or a padded batch (`(b, n, d)`). For
    a batch each set is solved on its own (as under `jax.vmap`), except with a scaling
    that couples the batch, where the batch is one joint fixed point.

    **Example:**

    ```python
    import jax
    import setfix as sf

    f = sf.DeepSet(2, hidden=8, width=8, key=jax.random.key(0))
    items = jax.random.normal(jax.random.key(1), (10, 2))
    sol = sf.MeanField(sf.MonteCarlo(5), sf.NormScaling())(f, items, key=jax.random.key(2))
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
    form: AbstractForm = eqx.field(default=FixedPointForm(), kw_only=True)
    diagnostics: tuple[AbstractDiagnostic, ...] = eqx.field(
        default=(), kw_only=True, converter=lambda d: tuple(d) if isinstance(d, list) else d
    )
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
        if not isinstance(self.form, AbstractForm):
            raise TypeError(
                "`form` must be a setfix form of the mean-field equation, "
                f"`setfix.FixedPointForm()` or `setfix.LogitRootForm()`, got {self.form!r}."
            )
        self.form.check_solver(self.solver)
        if not isinstance(self.adjoint, optx.AbstractAdjoint):
            raise TypeError(
                "`adjoint` must be an Optimistix adjoint such as "
                f"`optx.ImplicitAdjoint(...)`, got {self.adjoint!r}."
            )
        if not (isinstance(self.diagnostics, tuple)
                and all(isinstance(d, AbstractDiagnostic) for d in self.diagnostics)):
            raise TypeError(
                "`diagnostics` must be a tuple of setfix diagnostics such as "
                "`(setfix.ResidualTrace(), setfix.ContractionEstimate())`, got "
                f"{self.diagnostics!r}.")
        fields = [d.field for d in self.diagnostics]
        for field in fields:
            if fields.count(field) > 1:
                raise ValueError(f"`diagnostics` measures `{field}` more than once.")
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(
                f"`max_steps` must be a positive integer, got {self.max_steps!r}."
            )

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
        - `key`: the PRNG key of the estimator's samples, drawn once per solve (for a
            batch, split per set). Not needed by `Exact`.
        - `psi0`: the initial point (default 0.5 on every real item), e.g. the previous
            epoch's solution for a warm start.

        **Returns:** a [`setfix.MeanFieldSolution`][].
        """
        problem = MeanFieldProblem(f, items, mask, estimator=self.estimator,
                                   scaling=self.scaling, key=key)
        key = checked_key(self.estimator, key)
        mask = problem.mask
        psi0 = initial_point(psi0, mask, problem.embedding.dtype)
        if not problem.batched:
            return self._solve(problem, psi0, key)
        if self.scaling.couples_batch:
            # One solve for the whole batch: its step count, trace and omega are
            # shared by every set (`_solve` broadcasts them to the batch).
            return self._solve(problem, psi0, key)
        keys = jax.random.split(key, mask.shape[0])
        return eqx.filter_vmap(self._solve, in_axes=(problem.in_axes(), 0, 0))(
            problem, psi0, keys
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
        """The same as calling the method: the solved fixed point from $\\psi = 0.5$."""
        return self(model, items, mask, key=key)

    def _solve(self, problem, psi0, key):
        solver = self.solver
        for diagnostic in self.diagnostics:
            solver = diagnostic.solver(solver, self.max_steps)
        symmetric = self.estimator.symmetric_hessian and self.scaling.preserves_symmetry
        sol = self.form.solve(problem, solver, psi0, max_steps=self.max_steps,
                              adjoint=self.adjoint, throw=self.throw, symmetric=symmetric)
        psi, logits = sol.value, sol.aux
        point, frozen = stop_gradient_tree((psi, problem))
        if logits is None:
            mapped = frozen.fixed_point(point)
        else:  # T(psi) is the logits' sigmoid: no second estimate for the residual
            mapped = jnp.where(problem.mask, jax.nn.sigmoid(jax.lax.stop_gradient(logits)),
                               0)
        res = jnp.max(jnp.abs(mapped - point), axis=-1)
        finite = jnp.all(jnp.isfinite(psi), axis=-1)
        result = per_set_result(sol.result, finite)
        converged = result == optx.RESULTS.successful
        # Per set; a batch-coupled solve's step count and diagnostics are shared.
        per_set = lambda x: jnp.broadcast_to(x, converged.shape + jnp.shape(x))  # noqa: E731
        measured = {d.field: per_set(d.measure(frozen, point, sol.stats, key))
                    for d in self.diagnostics}
        return MeanFieldSolution(
            psi=psi,
            num_steps=per_set(sol.stats["num_steps"]),
            residual=res,
            converged=converged,
            result=result,
            logits=logits,
            **measured,
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
- `form`: how the equation is posed to `solver`: [`setfix.FixedPointForm`][]
    $\\psi = T(\\psi)$ (the default) or [`setfix.LogitRootForm`][]
    $\\text{scale}(\\nabla \\tilde F(\\psi)) - \\operatorname{logit}(\\psi) = 0$, for a
    root finder.
- `diagnostics`: what to measure besides the solution, a tuple of
    [`setfix.AbstractDiagnostic`][]s: [`setfix.ResidualTrace`][] (the residual at
    every step), [`setfix.ContractionEstimate`][] (the local contraction factor at the
    solution). None by default: each costs work the solve does not need.
- `neg_num`: negatives per member of $S^*$ in the training loss of [`setfix.fit`][]
    (`None`: every non-member; default 1, as the published code).
- `throw`: raise (an `EquinoxRuntimeError` naming the reason) when a solve fails, as
    Optimistix's `throw=True`, instead of reporting it per set in
    `MeanFieldSolution.converged` and `.result` (the default, so that training can
    leave failed sets out).
"""
