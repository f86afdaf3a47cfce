"""Solver wrappers that record the fixed-point residual at every step (private)."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Float, Int


class _TraceState(eqx.Module):
    inner: Any
    trace: Float[Array, " length"]
    index: Int[Array, ""]


class _Traced(eqx.Module):
    """Runs `solver`, recording max|T(y) - y| at the point each step starts from;
    entries after the last step are NaN. Costs one extra map evaluation per step."""

    solver: Any
    residual_fn: Callable
    length: int

    @property
    def rtol(self):
        return self.solver.rtol

    @property
    def atol(self):
        return self.solver.atol

    @property
    def norm(self):
        return self.solver.norm

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        inner = self.solver.init(fn, y, args, options, f_struct, aux_struct, tags)
        trace = jnp.full(self.length, jnp.nan, jnp.result_type(y))
        return _TraceState(inner, trace, jnp.array(0))

    def step(self, fn, y, args, options, state, tags):
        value = jnp.max(jnp.abs(self.residual_fn(y, args)), axis=-1)
        trace = state.trace.at[state.index].set(jnp.max(value))
        new_y, inner, aux = self.solver.step(fn, y, args, options, state.inner, tags)
        return new_y, _TraceState(inner, trace, state.index + 1), aux

    def terminate(self, fn, y, args, options, state, tags):
        return self.solver.terminate(fn, y, args, options, state.inner, tags)

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        y, aux, stats = self.solver.postprocess(
            fn, y, aux, args, options, state.inner, tags, result
        )
        return y, aux, {**stats, "residual_trace": state.trace}


class TracedFixedPoint(_Traced, optx.AbstractFixedPointSolver):  # pyright: ignore
    pass


class TracedRootFinder(_Traced, optx.AbstractRootFinder):  # pyright: ignore
    pass


def traced(solver, residual_fn, length):
    if isinstance(solver, optx.AbstractFixedPointSolver):
        return TracedFixedPoint(solver, residual_fn, length)
    if isinstance(solver, optx.AbstractRootFinder):
        return TracedRootFinder(solver, residual_fn, length)
    raise TypeError(
        "A residual trace needs a fixed-point solver or a root finder, got "
        f"{type(solver).__name__}."
    )
