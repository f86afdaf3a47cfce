"""Forms of the mean-field equation handed to Optimistix: the fixed point
psi = T(psi), or the root of scale(grad F~(psi)) - logit(psi)."""

import abc
import typing

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import optimistix as optx
from jaxtyping import Array, Float, PyTree

from ._misc import stop_gradient_tree
from ._problem import MeanFieldProblem


def _fixed_point(psi, problem):
    return problem.fixed_point(psi)


# Both take `inputs` as `ImplicitAdjoint.apply` passes them on: ours, then a while loop.
# Optimistix needs them as plain global functions: `no_type_check` keeps a jaxtyping
# import hook (the test suite's) from wrapping them in a closure.
@typing.no_type_check
def _logits_at(inputs):
    psi, problem, _ = inputs
    return jnp.where(problem.mask, problem.scaled_gradient(psi), 0), None


@typing.no_type_check
def _logit_fixed_point(logits, _, inputs):
    """The mean-field equation in the logits: $z - \\text{scale}(\\nabla \\tilde
    F(\\sigma(z)))$ on real items, $z$ on padded ones."""
    _, problem, _ = inputs
    psi = jnp.where(problem.mask, jax.nn.sigmoid(logits), 0)
    return logits - jnp.where(problem.mask, problem.scaled_gradient(psi), 0)


def _logit_residual(psi, problem):
    return problem.logit_residual(psi)


class AbstractForm(eqx.Module):
    """How [`setfix.MeanField`][] poses the mean-field equation to its solver. Every
    form has the same solution $\\psi^*$; they differ in which solvers apply and in the
    structure of the Jacobian the adjoint solves with."""

    @abc.abstractmethod
    def check_solver(self, solver: optx.AbstractFixedPointSolver | optx.AbstractRootFinder
                     ) -> None:
        """Raises `TypeError` when `solver` cannot solve this form."""

    @abc.abstractmethod
    def solve(
        self,
        problem: MeanFieldProblem,
        solver: optx.AbstractFixedPointSolver | optx.AbstractRootFinder,
        psi0: Float[Array, "*batch n"],
        *,
        max_steps: int,
        adjoint: optx.AbstractAdjoint,
        throw: bool,
        symmetric: bool,
    ) -> optx.Solution:
        """The Optimistix solution of `problem` from `psi0`, differentiable by
        `adjoint`, with the logits of $\\psi^*$ as its `aux` where the form has them
        (else `None`); `symmetric` says whether the estimator's Hessian and the scaling
        keep the problem's Jacobian symmetric."""


@jax.custom_jvp
def _value_with_tangent_of(value, other):
    """`value`, with the tangent of `other`: the solver's psi* carries the gradient of
    sigma(z*) = T(psi*), while a caller that only reads psi* never computes z*."""
    del other
    return value


@_value_with_tangent_of.defjvp
def _value_with_tangent_of_jvp(primals, tangents):
    return primals[0], tangents[1]


class FixedPointForm(AbstractForm):
    r"""The fixed point $\psi = T(\psi) = \sigma(\text{scale}(\nabla \tilde F(\psi)))$:
    for Optimistix fixed-point solvers, or root finders (which then find the root of
    $T(\psi) - \psi$). The default.

    With `in_logits=True` and an `optx.ImplicitAdjoint`, the implicit function theorem
    is applied in the logits $z = \text{scale}(\nabla \tilde F(\psi))$, $\psi =
    \sigma(z)$, rather than in $\psi$. The solve is the same; then $z^*$ at its
    solution is differentiated through $z = \text{scale}(\nabla \tilde
    F(\sigma(z)))$, whose adjoint solves

    $$(I - D K^\top) u = \partial L / \partial z, \qquad
    D = \operatorname{diag}(\psi(1 - \psi)),\ K = \partial z / \partial \psi,$$

    in place of $(I - K^\top D) v = \partial L / \partial \psi$ (the same gradient,
    $u = D v$). A likelihood's $\partial L / \partial \psi_j$ grows as $1 / \psi_j$
    near 0 (and $1/(1 - \psi_j)$ near 1), where $\partial L / \partial z_j = \psi_j
    - y_j$ is bounded. With marginals near 0 and 1, as a [`setfix.CertifiedScaling`][]
    allows, the $\psi$ form handed GMRES a right-hand side with an entry of $6 \cdot
    10^5$ beside entries of order 1, and its elementwise tolerance failed with an
    iterative breakdown (a compound training run). The solution's `aux` is then $z^*$
    (`MeanFieldSolution.logits`), and its `value` is the solver's $\psi^*$, carrying
    the gradient of $\sigma(z^*)$. The cost: one more estimate of the gradient, at
    $\psi^*$, where a gradient is taken. [`setfix.idiffmf`][] sets it with a
    [`setfix.CertifiedScaling`][].
    """

    in_logits: bool = eqx.field(default=False, static=True)

    def __check_init__(self):
        if not isinstance(self.in_logits, bool):
            raise TypeError(f"`in_logits` must be True or False, got {self.in_logits!r}.")

    def check_solver(self, solver) -> None:
        pass

    def solve(self, problem, solver, psi0, *, max_steps, adjoint, throw, symmetric):
        if not (self.in_logits and isinstance(adjoint, optx.ImplicitAdjoint)):
            return optx.fixed_point(_fixed_point, solver, psi0, problem,
                                    max_steps=max_steps, adjoint=adjoint, throw=throw)
        sol = optx.fixed_point(_fixed_point, solver, psi0, stop_gradient_tree(problem),
                               max_steps=max_steps, adjoint=adjoint, throw=throw)
        psi = jax.lax.stop_gradient(sol.value)
        logits, _ = adjoint.apply(_logits_at, _logit_fixed_point, (psi, problem),
                                  frozenset())
        mapped = jnp.where(problem.mask, jax.nn.sigmoid(logits), 0)
        psi = _value_with_tangent_of(psi, mapped)
        return eqx.tree_at(lambda s: (s.value, s.aux), sol, (psi, logits),
                           is_leaf=lambda x: x is None)


class LogitRootForm(AbstractForm):
    r"""The root of $R(\psi) = \text{scale}(\nabla \tilde F(\psi)) -
    \operatorname{logit}(\psi)$, for Optimistix root finders (`optx.Newton`,
    `optx.Chord`). Its Jacobian $\nabla^2 \tilde F - \operatorname{diag}(1/(\psi(1 -
    \psi)))$ is symmetric with a symmetric Hessian estimate (`Exact`, or `MonteCarlo`
    with `hessian=PairwiseHessian()`) and no or constant scaling, and negative definite
    under Assumption 4.1 ($\lVert \nabla^2 \tilde F \rVert < 4 \le 1/(\psi(1-\psi))$);
    the solve is then tagged so, and `lx.CG` or `lx.Cholesky` may be used in
    `optx.ImplicitAdjoint`."""

    def check_solver(self, solver) -> None:
        if not isinstance(solver, optx.AbstractRootFinder):
            raise TypeError(
                "`LogitRootForm()` needs a root finder as `solver` (e.g. `optx.Newton`), "
                f"got {type(solver).__name__}."
            )

    def solve(self, problem, solver, psi0, *, max_steps, adjoint, throw, symmetric):
        tags: PyTree = (frozenset({lx.symmetric_tag, lx.negative_semidefinite_tag})
                        if symmetric else frozenset())
        return optx.root_find(_logit_residual, solver, psi0, problem, max_steps=max_steps,
                              adjoint=adjoint, throw=throw, tags=tags)


FixedPointForm.__init__.__doc__ = """**Arguments:**

- `in_logits`: with an `optx.ImplicitAdjoint`, differentiate the solution in the
    logits (see above) and return them; default `False`, the adjoint in $\\psi$ as
    Optimistix poses it.
"""
LogitRootForm.__init__.__doc__ = """**Arguments:** none."""
