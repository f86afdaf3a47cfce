"""The cost structure of the published iDiffMF / EquiVSet code, re-implemented in JAX for
the benchmarks only (DESIGN.md §2.4); never used by setfix itself.

What it keeps from the reference, because that is what costs time:

- per-coordinate subsets: an m×n×n Bernoulli mask per set, drawn afresh every
  iteration, and an O(m·n²·h) matmul pooling it;
- the item encoder run inside every call of F, twice per iteration
  (for F(S ∪ i) and F(S \\ i)), 2·m·n readouts per iteration;
- float64 throughout (the caller enables x64 and casts model and data);
- the batch-wide Frobenius scaling ψ ← σ(2ĝ / (n‖ĝ‖_F)) over the whole b×n batch;
- iteration without gradients until the batch-wide step norm is below `tol`
  (at most `max_steps`), then one more step with gradients (the one-step gradient),
  and the masked cross-entropy of EquiVSet with negatives.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax


def set_values(model, items, subsets):
    """F(S) for every subset: `items` (b, n, ...), `subsets` (b, m, n, n) -> (b, m, n).
    The encoder runs on every call, as in the reference's `F_S`."""
    # The barrier ties the items to this call's subsets, so XLA can neither share the
    # encoder between the two calls of an iteration nor hoist it out of the loop:
    # the work the reference does is the work that is timed.
    items, subsets = jax.lax.optimization_barrier((items, subsets))
    features = jax.vmap(model.embed)(items)  # (b, n, h)
    pooled = subsets @ features[:, None]  # (b, m, n, h): O(m n^2 h)
    flat = pooled.reshape(-1, pooled.shape[-1])
    return jax.vmap(model.readout)(flat).reshape(pooled.shape[:-1])


def gradient_estimate(model, items, q, u):
    """ĝ[b, i] = mean_k F(S_k^(i) ∪ i) − F(S_k^(i) \\ i) with per-coordinate subsets
    S_k^(i) = {j : u[b, k, i, j] < q[b, j]}; `u` (b, m, n, n)."""
    n = q.shape[1]
    sample = (u < q[:, None, None, :]).astype(q.dtype)
    eye = jnp.eye(n, dtype=q.dtype)
    without = sample * (1 - eye)
    with_ = without + eye
    return jnp.mean(set_values(model, items, with_) - set_values(model, items, without),
                    axis=1)


def mean_field_map(model, items, q, key, num_samples):
    """One iteration of the reference: fresh per-coordinate samples, the two calls of F
    and the batch-wide Frobenius scaling."""
    b, n = q.shape
    u = jax.random.uniform(key, (b, num_samples, n, n), dtype=q.dtype)
    g = gradient_estimate(model, items, q, u)
    return jax.nn.sigmoid(2 * g / (n * jnp.linalg.norm(g)))


def solve(model, items, key, *, num_samples=5, tol=1e-6, max_steps=20):
    """Iterates from ψ = 0.5 without gradients until ‖ψ_{t+1} − ψ_t‖_F < tol over the
    batch or `max_steps`; returns (ψ, iterations)."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    model = eqx.combine(jax.lax.stop_gradient(params), static)
    b, n = items.shape[:2]
    q0 = jnp.full((b, n), 0.5, dtype=items.dtype)

    def cond(carry):
        _, step, delta = carry
        return (step < max_steps) & (delta >= tol)

    def body(carry):
        q, step, _ = carry
        new = mean_field_map(model, items, q, jax.random.fold_in(key, step), num_samples)
        return new, step + 1, jnp.linalg.norm(new - q)

    q, steps, _ = jax.lax.while_loop(cond, body, (q0, jnp.array(0), jnp.array(jnp.inf, q0.dtype)))
    return q, steps


def loss(model, items, target, negatives, key, *, num_samples=5, tol=1e-6, max_steps=20):
    """EquiVSet's masked cross-entropy at one map step from the solution, whose gradient
    is the reference's one-step gradient."""
    solve_key, step_key = jax.random.split(key)
    q, steps = solve(model, items, solve_key, num_samples=num_samples, tol=tol,
                     max_steps=max_steps)
    q = mean_field_map(model, items, q, step_key, num_samples)
    target = target.astype(q.dtype)
    weight = (target.astype(bool) | negatives).astype(q.dtype)
    nll = -jnp.sum((target * jnp.log(q + 1e-12) + (1 - target) * jnp.log(1 - q + 1e-12))
                   * weight, axis=-1)
    return jnp.mean(nll), steps


@eqx.filter_jit
def train_step(model, opt_state, items, target, negatives, key, optimizer):
    """One optimiser step of the reference structure; returns the new model, optimiser
    state and the number of solver iterations."""
    (value, steps), grads = eqx.filter_value_and_grad(loss, has_aux=True)(
        model, items, target, negatives, key
    )
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    return eqx.apply_updates(model, updates), opt_state, steps


def optimizer():
    """The references' optimiser: clip the global norm to 10, then Adam."""
    return optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-4))
