"""Adjoints for the mean-field solve besides `optx.ImplicitAdjoint`: unrolling (DiffMF)
and one-step / phantom gradients (what the published iDiffMF code computes)."""

import functools as ft

import equinox.internal as eqxi
import jax
import jax.tree_util as jtu
import optimistix as optx

from ._misc import stop_gradient_tree


def _unrolled_loop(cond_fun, body_fun, init_val, max_steps=None, *, steps):
    """A 'while loop' that ignores its condition and runs exactly `steps` bodies, as a
    `lax.scan`, so reverse-mode autodiff stores every step."""
    del cond_fun, max_steps
    return jax.lax.scan(lambda carry, _: (body_fun(carry), None), init_val, length=steps)[0]


class Unrolled(optx.AbstractAdjoint):
    r"""Runs exactly `steps` solver steps from the initial point and backpropagates
    through all of them (DiffMF of Ou et al. 2022; memory $O(K)$).

    The tolerance and `max_steps` of the solve are ignored: the result is the $K$-th
    iterate, reported as converged only if the solver's own test passed at the end.
    """

    steps: int

    def __check_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"`steps` must be a positive integer, got {self.steps!r}.")

    def apply(self, primal_fn, rewrite_fn, inputs, tags):
        del rewrite_fn, tags
        return primal_fn(inputs + (ft.partial(_unrolled_loop, steps=self.steps),))


Unrolled.__init__.__doc__ = """**Arguments:**

- `steps`: the number $K$ of solver steps to run and differentiate through.
"""


class OneStep(optx.AbstractAdjoint):
    r"""Solves without tracking gradients, then differentiates `steps` damped steps of
    the problem's residual $G$ taken from the solution $y^*$:

    $$y_{j+1} = y_j + \text{damp}\cdot G(y_j), \qquad y_0 = \text{stop\_gradient}(y^*).$$

    For the fixed-point form $G(\psi) = T(\psi) - \psi$, so with `damp=1` each step is
    one application of the mean-field map: the phantom gradient / Jacobian-free
    backpropagation. With `steps=1` it is the gradient $\partial_\theta T(\psi^*)$,
    which is what an implicit adjoint computes from an estimator without a
    $\psi$-Jacobian, i.e. the published iDiffMF code.
    """

    steps: int = 1
    damp: float = 1.0

    def __check_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"`steps` must be a positive integer, got {self.steps!r}.")
        if not 0 < self.damp <= 1:
            raise ValueError(f"`damp` must lie in (0, 1], got {self.damp!r}.")

    def apply(self, primal_fn, rewrite_fn, inputs, tags):
        del tags
        loop = ft.partial(eqxi.while_loop, kind="lax")
        y, out = primal_fn(stop_gradient_tree(inputs) + (loop,))
        y = stop_gradient_tree(y)

        def damped_step(_, y):
            residual = rewrite_fn(y, None, inputs)
            return jtu.tree_map(lambda a, g: a + self.damp * g, y, residual)

        return jax.lax.fori_loop(0, self.steps, damped_step, y), out


OneStep.__init__.__doc__ = """**Arguments:**

- `steps`: the number $k$ of steps differentiated at the solution.
- `damp`: the step size of each step; 1 is a full application of the map.
"""
