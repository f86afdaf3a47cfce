"""Compile time of the training step `fit` runs, at the default `setfix train` shapes
(Moons: batch 128, n = 100, DeepSet 256/500/500, m = 5, at most 20 steps), in a fresh
process per method: tracing and lowering, then XLA compilation (ahead of time, so the
figure does not depend on how long the step itself runs). Beside it the first call of
the step (compile and run) and the median of three later calls, and the same for the
first validation batch (`evaluate`'s jitted solve, batch 256).

    python -m benchmarks compile_time [--quick]
"""

import json
import statistics
import subprocess
import sys
import time

import jax

from ._common import quick_flag, save


METHODS = ("idiffmf", "diffmf", "equivset_copula")


def _child(method_name: str, batch: int) -> dict:
    import setfix as sf
    from setfix._fit import evaluate_batch, train_step
    from setfix.experiments import build_method, build_model, Experiment

    train, val, _ = sf.datasets.moons(num_sets=max(4 * batch, 256))
    experiment = Experiment(dataset="moons", method=method_name)
    model = build_model(experiment, train.feature_shape, jax.random.key(0))
    method = build_method(experiment)
    optimizer = sf.default_optimizer(1e-3)
    opt_state = method.objective.init(optimizer, model)
    batches = train.batches(batch)

    args = [next(batches) for _ in range(4)]

    def step(i):
        items, mask, target = args[i]
        out = train_step(model, opt_state, items, mask, target, jax.random.key(i), method,
                         method.objective, optimizer, 1)
        return jax.block_until_ready(out)

    start = time.perf_counter()
    lowered = train_step.lower(model, opt_state, *args[0], jax.random.key(0), method,
                               method.objective, optimizer, 1)
    lower = time.perf_counter() - start
    start = time.perf_counter()
    lowered.compile()
    compile_ = time.perf_counter() - start

    start = time.perf_counter()
    step(0)
    first = time.perf_counter() - start
    later = []
    for i in (1, 2, 3):
        start = time.perf_counter()
        step(i)
        later.append(time.perf_counter() - start)

    items, mask, target = next(val.batches(256))
    timings = []
    for key in range(2):
        start = time.perf_counter()
        jax.block_until_ready(evaluate_batch(model, method, items, mask, target,
                                             jax.random.key(key)))
        timings.append(time.perf_counter() - start)
    return {
        "method": method_name,
        "trace_and_lower_seconds": lower,
        "compile_seconds": compile_,
        "first_step_seconds": first,
        "later_step_seconds": statistics.median(later),
        "first_validation_seconds": timings[0],
        "later_validation_seconds": timings[1],
        "validation_compile_seconds": timings[0] - timings[1],
    }


def main(argv):
    quick = quick_flag(argv)
    batch = 16 if quick else 128
    rows = []
    for method in METHODS:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.compile_time", "--child", method, str(batch)],
            check=True, capture_output=True, text=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{method:16s} trace+lower {row['trace_and_lower_seconds']:4.1f} s, compile "
              f"{row['compile_seconds']:5.1f} s (first step {row['first_step_seconds']:.1f} s, "
              f"later {row['later_step_seconds']:.2f} s); "
              f"validation compile {row['validation_compile_seconds']:.1f} s", flush=True)
    save("compile_time_quick" if quick else "compile_time",
         {"dataset": "moons", "batch": batch, "n": 100, "methods": METHODS}, rows)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]))))
    else:
        main(sys.argv[1:])
