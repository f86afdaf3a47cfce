"""Spectral norm of a Jacobian by power iteration (private)."""

import jax
import jax.numpy as jnp


def spectral_norm(fn, point, start, num_iterations: int):
    """Estimates |d fn / d y|_2 at `point` by `num_iterations` steps of power iteration
    on J^T J from `start`, using one linearisation and its transpose."""
    _, jvp = jax.linearize(fn, point)
    vjp = jax.linear_transpose(jvp, point)
    tiny = jnp.finfo(point.dtype).tiny

    def power_step(_, v):
        w = vjp(jvp(v))[0]
        return w / jnp.maximum(jnp.linalg.norm(w), tiny)

    v = start / jnp.maximum(jnp.linalg.norm(start), tiny)
    v = jax.lax.fori_loop(0, num_iterations, power_step, v)
    return jnp.linalg.norm(jvp(v))
