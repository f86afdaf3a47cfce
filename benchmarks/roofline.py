"""Roofline: how close setfix's training step comes to the machine's matrix-multiply rate.

For each shape of `throughput.py` (batch 16) and for Moons at batch 128, in one process:

- **FLOPs of the step** from XLA's cost analysis of the compiled training step
  (`jax.stages.Compiled.cost_analysis`). XLA counts the body of a loop once, so this is
  a lower bound; the forward solve's loop runs `trips` times (the most steps any set of
  the batch takes, since the batch's solves run in one vmapped loop), and one map costs
  `map_flops` (XLA's count of one application of the batched map, compiled alone), so
  the estimate adds (trips − 1) × map_flops. The adjoint's GMRES loop is still counted
  once.
- **Seconds per step**: best of `--repeats` after a warm-up.
- **Matmul rate**: the best f32 rate of a 2048 × 2048 by 2048 × 2048 product
  (2·2048³ FLOPs) on this machine, measured in the same process before and after the
  steps (the lower of the two bests is not used: the higher is the machine's rate).

Achieved rate = estimated FLOPs / seconds; the table gives it as a fraction of the
matmul rate, and the same for XLA's count alone.

**Profile.** For the last shape (Moons at batch 128), two steps run under
`jax.profiler.trace`; the time of each compiled operation (XLA's thunks, named after
their fusions: `ynn_fusion` the matrix products, `copy_bitcast_fusion` layout copies,
...) is summed by kind and reported per step.

    python -m benchmarks roofline [--quick] [--repeats K]
"""

import argparse
import collections
import gzip
import json
import re
import tempfile
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

import setfix as sf

from ._common import save, timed
from .throughput import BATCH, CONFIGS, QUICK, setfix_step


MATMUL_SIZE = 2048
# name: (n, item shape, encoder, batch); the throughput shapes, and Moons at batch 128.
SHAPES = {**{name: (*spec, BATCH) for name, spec in CONFIGS.items()},
          "moons-128": (*CONFIGS["moons"], 128)}
QUICK_SHAPES = {name: (*spec, 4) for name, spec in QUICK.items()}


def matmul_rate(size: int = MATMUL_SIZE, repeats: int = 10) -> float:
    """The best f32 FLOP/s of one size × size matrix product on the default device."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    product = jax.jit(jnp.matmul)
    _, seconds = timed(product, a, b, repeats=repeats)
    return 2 * size**3 / seconds


def _flops(fn, *args) -> float:
    """XLA's FLOP count of `fn(*args)` compiled (array leaves traced, the rest static)."""
    dynamic, static = eqx.partition(args, eqx.is_array)
    def arrays(d):
        return eqx.filter(fn(*eqx.combine(d, static)), eqx.is_array)

    compiled = jax.jit(arrays).lower(dynamic).compile()
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older JAX: one dict per device program
        analysis = analysis[0]
    return float(analysis["flops"])


def map_flops(model, items, mask) -> float:
    """XLA's FLOPs of one application of the default iDiffMF map to a batch."""
    method = sf.idiffmf()
    problem = sf.MeanFieldProblem(model, items, mask, estimator=method.estimator,
                                  scaling=method.scaling, key=jax.random.key(2))
    apply = eqx.filter_vmap(lambda q, p: q.fixed_point(p), in_axes=(problem.in_axes(), 0))
    return _flops(apply, problem, jnp.full(mask.shape, 0.5))


def solve_trips(model, items, mask, keys) -> list[int]:
    """How often the batch's vmapped solve loop runs in the training step with each of
    `keys`: the most steps of any set (the step solves with the first half of its key)."""
    solve = eqx.filter_jit(sf.idiffmf(tolerance=1e-6, max_steps=20).solve)
    return [int(solve(model, items, mask, key=jax.random.split(k)[0]).num_steps.max())
            for k in keys]


def measure(n, shape, encoder, batch, repeats):
    """Seconds per step, XLA's FLOPs and the loop-corrected estimate for one shape."""
    step, model, opt_state, items = setfix_step(n, shape, encoder, batch)
    mask = jnp.ones((batch, n), bool)
    step_flops = _flops(step, model, opt_state, jax.random.key(2))
    keys = list(jax.random.split(jax.random.key(3), repeats + 1))
    timed_keys = iter(keys)
    (_, _, stats), seconds = timed(lambda: step(model, opt_state, next(timed_keys)),
                                   repeats=repeats)
    per_map = map_flops(model, items, mask)
    trips = solve_trips(model, items, mask, keys[1:])
    # The fewest trips of the timed steps: the estimate errs low, as XLA's count does.
    estimate = step_flops + max(min(trips) - 1, 0) * per_map
    return {"seconds_per_step": seconds, "xla_flops": step_flops, "map_flops": per_map,
            "solve_trips": min(trips), "trips_of_timed_steps": trips,
            "mean_steps": float(stats["num_steps"]),
            "estimated_flops": estimate, "achieved_flops_per_second": estimate / seconds}


# Trace events of compiled operations are named after their HLO instruction
# (`ynn_fusion.4`, `copy_bitcast_fusion`, `geqrf.9`, ...); loops and conditionals
# only wrap other operations, and compiling is not running.
_OPERATION = re.compile(r"^[a-z][a-z0-9_\-]*(\.\d+)?$")
_WRAPPERS = re.compile(r"^(while|cond|call|conditional)(\.\d+)?$"
                       r"|compile|lower_sharding|shard_args")


def profile(n, shape, encoder, batch, steps=2) -> dict[str, float]:
    """Seconds per step spent in each kind of compiled operation, from a
    `jax.profiler` trace of `steps` training steps (after a warm-up step)."""
    step, model, opt_state, _ = setfix_step(n, shape, encoder, batch)
    keys = list(jax.random.split(jax.random.key(5), steps + 1))
    jax.block_until_ready(step(model, opt_state, keys[0]))
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            for key in keys[1:]:
                jax.block_until_ready(step(model, opt_state, key))
        (path,) = Path(folder).glob("**/perfetto_trace.json.gz")
        with gzip.open(path) as file:
            events = json.load(file)
    events = events["traceEvents"] if isinstance(events, dict) else events
    kinds = collections.Counter()
    for event in events:
        name = event.get("name", "")
        if event.get("ph") == "X" and _OPERATION.match(name) and not _WRAPPERS.match(name):
            kinds[re.sub(r"\.\d+$", "", name)] += event["dur"] / 1e6 / steps
    return dict(kinds.most_common())


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks roofline")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    size = 256 if args.quick else MATMUL_SIZE
    before = matmul_rate(size)
    print(f"matmul rate: {before / 1e9:.1f} GFLOP/s", flush=True)
    rows = []
    for name, (n, shape, encoder, batch) in shapes.items():
        row = {"config": name, "n": n, "item_shape": list(shape), "encoder": encoder,
               "batch": batch, **measure(n, shape, encoder, batch, args.repeats)}
        rows.append(row)
        print(f"{name:12s} n={n:4d} b={batch:3d} {row['seconds_per_step']:8.3f} s "
              f"{row['xla_flops'] / 1e9:8.2f} GFLOP (XLA) "
              f"{row['estimated_flops'] / 1e9:8.2f} GFLOP (est., {row['solve_trips']} trips) "
              f"{row['achieved_flops_per_second'] / 1e9:7.1f} GFLOP/s", flush=True)
    after = matmul_rate(size)
    rate = max(before, after)
    for row in rows:
        row["fraction_of_matmul_rate"] = row["achieved_flops_per_second"] / rate
        print(f"{row['config']:12s} {row['fraction_of_matmul_rate']:.2f} of the matmul rate")
        row["xla_fraction_of_matmul_rate"] = row["xla_flops"] / row["seconds_per_step"] / rate
    name, (n, shape, encoder, batch) = list(shapes.items())[-1]
    kinds = profile(n, shape, encoder, batch)
    total = sum(kinds.values())
    print(f"profile of {name}: {total:.3f} s per step in compiled operations")
    for kind, seconds in list(kinds.items())[:8]:
        print(f"  {seconds:8.3f} s {seconds / total:6.1%}  {kind}")
    save("roofline_quick" if args.quick else "roofline",
         {"matmul_size": size, "matmul_flops_per_second": rate,
          "matmul_before_after": [before, after], "repeats": args.repeats,
          "method": "idiffmf(tolerance=1e-6, max_steps=20)"},
         {"shapes": rows, "profile": {"shape": name, "seconds_per_step_by_kind": kinds}})
