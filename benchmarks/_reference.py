"""The cost structure of the published iDiffMF code (LearnSetsImplicit,
`ImplicitEquiVSetFlax`), re-implemented in JAX for the benchmarks only (DESIGN.md §2.4);
never used by setfix itself.

What it keeps from the reference, because that is what costs time:

- per-coordinate subsets: an m×n×n Bernoulli mask per set and an O(m·n²·h) matmul
  pooling it;
- 2·m·n readouts per iteration, for F(S ∪ i) and F(S \\ i);
- float64 throughout (the caller enables x64 and casts model and data);
- the batch-wide Frobenius scaling ψ ← σ(2ĝ / (n‖ĝ‖_F)) over the whole b×n batch;
- iteration without gradients until the batch-wide step norm ‖ψ_{t+1} − ψ_t‖_F is at
  most `tol` or `max_steps` maps have run (jaxopt's `FixedPointIteration`), then one more
  map with gradients: the Bernoulli draws pass no gradient to ψ, so jaxopt's implicit
  differentiation reduces to that one-step gradient (DESIGN.md §2.1); and the masked
  cross-entropy of EquiVSet with negatives.

The item encoder is called inside both calls of F in every map, but the published code
is JAX under `jit`: XLA merges the two calls' encoders and hoists them out of the solver's
`while_loop` (checked on the compiled HLO of a CNN encoder: no convolution is left in the
loop body), so the published code runs it once per step. `rerun_encoder=True` puts a
barrier in the way so the encoder really runs in every call, as eager PyTorch (EquiVSet)
does.

How the masks are drawn is `fixed_key`:

- `fixed_key=True` (the published code): `jax.random.bernoulli(PRNGKey(seed), q)` with
  the same key in every call (`MFVI.MC_sampling`). The map is then deterministic and
  piecewise constant in ψ, and a solve stops once no draw changes side. Its forward
  solver defaults are `fwd_maxiter=10`, `fwd_tol=1e-7` (`main_flax.py`;
  `run_implicit.sh` passes 20 and 1e-6).
- `fixed_key=False`: fresh draws every iteration, as EquiVSet's unseeded
  `torch.bernoulli` does. The step norm then stays above any small tolerance and a
  solve runs all `max_steps` maps.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax


# The published forward-solver defaults (main_flax.py: --fwd_tol, --fwd_maxiter).
PUBLISHED_TOL = 1e-7
PUBLISHED_MAX_STEPS = 10
# The published code's key is PRNGKey(params.seed); run_implicit.sh's first seed is 1.
PUBLISHED_SEED = 1


def set_values(model, items, subsets, rerun_encoder=False):
    """F(S) for every subset: `items` (b, n, ...), `subsets` (b, m, n, n) -> (b, m, n).
    The encoder is called on every call, as in the reference's `F_S`."""
    if rerun_encoder:
        # The barrier ties the items to this call's subsets, so XLA can neither share
        # the encoder between the two calls of a map nor hoist it out of the loop.
        items, subsets = jax.lax.optimization_barrier((items, subsets))
    features = jax.vmap(model.embed)(items)  # (b, n, h)
    pooled = subsets @ features[:, None]  # (b, m, n, h): O(m n^2 h)
    flat = pooled.reshape(-1, pooled.shape[-1])
    return jax.vmap(model.readout)(flat).reshape(pooled.shape[:-1])


def gradient_estimate(model, items, q, u, rerun_encoder=False):
    """ĝ[b, i] = mean_k F(S_k^(i) ∪ i) − F(S_k^(i) \\ i) with per-coordinate subsets
    S_k^(i) = {j : u[b, k, i, j] < q[b, j]}; `u` (b, m, n, n)."""
    n = q.shape[1]
    sample = (u < q[:, None, None, :]).astype(q.dtype)
    eye = jnp.eye(n, dtype=q.dtype)
    without = sample * (1 - eye)
    with_ = without + eye
    return jnp.mean(set_values(model, items, with_, rerun_encoder)
                    - set_values(model, items, without, rerun_encoder), axis=1)


def mean_field_map(model, items, q, key, num_samples, rerun_encoder=False):
    """One map of the reference: per-coordinate masks drawn with `key`, the two calls of
    F and the batch-wide Frobenius scaling. (`bernoulli(key, p)` is `uniform(key) < p`.)"""
    b, n = q.shape
    u = jax.random.uniform(key, (b, num_samples, n, n), dtype=q.dtype)
    g = gradient_estimate(model, items, q, u, rerun_encoder)
    return jax.nn.sigmoid(2 * g / (n * jnp.linalg.norm(g)))


def _map_key(key, step, fixed_key):
    return key if fixed_key else jax.random.fold_in(key, step)


def solve(model, items, key, *, num_samples=5, tol=PUBLISHED_TOL,
          max_steps=PUBLISHED_MAX_STEPS, fixed_key=True, rerun_encoder=False):
    """Iterates from ψ = 0.5 without gradients while ‖ψ_{t+1} − ψ_t‖_F > tol over the
    batch and fewer than `max_steps` maps have run; returns (ψ, maps run)."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    model = eqx.combine(jax.lax.stop_gradient(params), static)
    b, n = items.shape[:2]
    q0 = jnp.full((b, n), 0.5, dtype=items.dtype)

    def cond(carry):
        _, step, delta = carry
        return (step < max_steps) & (delta > tol)

    def body(carry):
        q, step, _ = carry
        new = mean_field_map(model, items, q, _map_key(key, step, fixed_key), num_samples,
                             rerun_encoder)
        return new, step + 1, jnp.linalg.norm(new - q)

    q, steps, _ = jax.lax.while_loop(cond, body, (q0, jnp.array(0), jnp.array(jnp.inf, q0.dtype)))
    return q, steps


def loss(model, items, target, negatives, key, *, num_samples=5, tol=PUBLISHED_TOL,
         max_steps=PUBLISHED_MAX_STEPS, fixed_key=True, rerun_encoder=False):
    """EquiVSet's masked cross-entropy at one map from the solution, whose gradient is
    the reference's (one-step) gradient. With `fixed_key` that map uses the solve's key."""
    solve_key, step_key = (key, key) if fixed_key else jax.random.split(key)
    q, steps = solve(model, items, solve_key, num_samples=num_samples, tol=tol,
                     max_steps=max_steps, fixed_key=fixed_key, rerun_encoder=rerun_encoder)
    q = mean_field_map(model, items, q, step_key, num_samples, rerun_encoder)
    target = target.astype(q.dtype)
    weight = (target.astype(bool) | negatives).astype(q.dtype)
    nll = -jnp.sum((target * jnp.log(q + 1e-12) + (1 - target) * jnp.log(1 - q + 1e-12))
                   * weight, axis=-1)
    return jnp.mean(nll), steps


@eqx.filter_jit
def train_step(model, opt_state, items, target, negatives, key, optimizer, *,
               tol=PUBLISHED_TOL, max_steps=PUBLISHED_MAX_STEPS, fixed_key=True,
               rerun_encoder=False):
    """One optimiser step of the reference structure; returns the new model, optimiser
    state and the number of maps the solve ran (the gradient's map not counted)."""
    (value, steps), grads = eqx.filter_value_and_grad(loss, has_aux=True)(
        model, items, target, negatives, key, tol=tol, max_steps=max_steps,
        fixed_key=fixed_key, rerun_encoder=rerun_encoder,
    )
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    return eqx.apply_updates(model, updates), opt_state, steps


def optimizer():
    """The references' optimiser: clip the global norm to 10, then Adam."""
    return optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-4))
