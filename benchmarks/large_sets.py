"""Large ground sets: the time and peak memory of one training gradient on one ground
set of n items (n = 10^2 ... 10^5), DeepSet defaults, `idiffmf()`, in a fresh process
per n, with the toggled readouts in blocks of items (`setfix._monte_carlo.
BLOCK_ENTRIES`, the default) and, for comparison, all at once (`unblocked`).

Time is the wall time of the gradient call after compilation (best of 2), and of the
first call (compilation included); memory is the process's peak resident set size.
The log-log slopes of time against n are reported between consecutive sizes.

    python -m benchmarks large_sets [--quick]
"""

import json
import math
import subprocess
import sys
import time

from ._common import pyplot, quick_flag, save, save_figure


def _child(n: int, blocked: bool) -> None:
    import resource

    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import setfix as sf
    import setfix._monte_carlo as monte_carlo

    if not blocked:
        monte_carlo.BLOCK_ENTRIES = 2**62
    key = jax.random.key(0)
    f = sf.DeepSet(2, key=key)
    items = jax.random.normal(jax.random.fold_in(key, 1), (1, n, 2))
    mask = jnp.ones((1, n), bool)
    target = jnp.zeros((1, n), bool).at[0, :10].set(True)
    negatives = sf.sample_negatives(jax.random.key(2), target, mask, 1)
    method = sf.idiffmf()

    @eqx.filter_jit
    def gradient(f):
        def loss(f):
            psi = method(f, items, mask, key=jax.random.key(3)).psi
            return jnp.sum(sf.mean_field_nll(psi, target, mask, negatives))

        return eqx.filter_grad(loss)(f)

    start = time.perf_counter()
    jax.block_until_ready(gradient(f))
    first = time.perf_counter() - start
    best = math.inf
    for _ in range(2):
        start = time.perf_counter()
        jax.block_until_ready(gradient(f))
        best = min(best, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"n": n, "blocked": blocked, "first_seconds": first,
                      "seconds": best, "peak_rss_bytes": peak}))


def measure(n: int, blocked: bool) -> dict:
    code = f"from benchmarks.large_sets import _child; _child({n}, {blocked})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def slopes(rows: list[dict]) -> list[float]:
    """d log(seconds) / d log(n) between consecutive sizes."""
    return [math.log(b["seconds"] / a["seconds"]) / math.log(b["n"] / a["n"])
            for a, b in zip(rows, rows[1:])]


def main(argv=None):
    quick = quick_flag(argv)
    sizes = [100, 1000] if quick else [100, 1000, 10_000, 100_000]
    results = []
    for blocked in (True, False):
        rows = []
        for n in sizes:
            row = measure(n, blocked)
            print(f"{'blocked' if blocked else 'unblocked':>9}  n = {n:>7}: "
                  f"{row['seconds']:7.2f} s ({row['first_seconds']:6.1f} s with "
                  f"compilation), peak {row['peak_rss_bytes'] / 2**30:5.2f} GiB", flush=True)
            rows.append(row)
        print(f"{'':>9}  log-log time slopes: "
              + ", ".join(f"{s:.2f}" for s in slopes(rows)), flush=True)
        results += rows
    config = {"sizes": sizes, "model": "DeepSet(2) defaults", "method": "idiffmf()",
              "dtype": "float32", "what": "one training gradient on one ground set"}
    name = "large_sets" + ("_quick" if quick else "")
    save(name, config, {"rows": results,
                        "slopes": {str(b): slopes([r for r in results if r["blocked"] == b])
                                   for b in (True, False)}})
    plot(results, name)


def plot(results, name):
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    for blocked, style in ((True, "o-"), (False, "s--")):
        rows = [r for r in results if r["blocked"] == blocked]
        label = "in blocks of items" if blocked else "all at once"
        left.plot([r["n"] for r in rows], [r["seconds"] for r in rows], style, label=label)
        right.plot([r["n"] for r in rows], [r["peak_rss_bytes"] / 2**30 for r in rows],
                   style, label=label)
    for ax, what in ((left, "seconds per gradient"), (right, "peak memory (GiB)")):
        ax.set_xscale("log")
        ax.set_xlabel("items in the ground set, n")
        ax.set_ylabel(what)
    left.set_yscale("log")
    left.legend()
    save_figure(fig, name)
