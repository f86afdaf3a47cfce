"""The size-free rule `setfix.predict_expected_jaccard` beside what it decides on: the
seconds per set of the rule, of the same rule with the exact node count
$\\lceil n/2 \\rceil$ (what the reduced count $\\lceil 3\\sqrt n\\rceil + 8$ saves), of
top-|S*| (`setfix.predict`, a sort) and of the iDiffMF solve that produces ψ
(`idiffmf()`, DeepSet(2) defaults, forward only, as `evaluate` runs it), for
n = 30 ... 10^4 items per set.

Batches hold `min(128, 38400 // n)` sets, about as many items as a training batch of
300-item sets (8 sets at most with `--quick`); ψ is drawn uniformly in (0, 1), which
the rule's cost does not depend on. A figure is the best of 3 jitted calls after one
that compiles, divided by the number of sets. A batch's solves share one vmapped loop,
so one set that does not converge keeps the whole batch iterating (see "Performance");
the most steps and the share of converged sets are recorded beside the solve's time.
The exact node count is skipped above 1000 items (its `(sets, n, n/2)` table grows
quadratically).

    python -m benchmarks expected_jaccard [--quick]
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp

import setfix as sf
import setfix._expected_jaccard as expected_jaccard

from ._common import pyplot, quick_flag, save, save_figure, timed


def _rule(num_nodes):
    """`predict_expected_jaccard` traced with `num_nodes` as its node count."""
    default = expected_jaccard.num_nodes

    @jax.jit
    def rule(psi, mask):
        expected_jaccard.num_nodes = num_nodes
        try:
            return sf.predict_expected_jaccard(psi, mask)
        finally:
            expected_jaccard.num_nodes = default

    return rule


def measure(n: int, most_sets: int = 128) -> dict:
    sets = min(most_sets, 38400 // n)
    key = jax.random.key(0)
    items = jax.random.normal(key, (sets, n, 2))
    mask = jnp.ones((sets, n), bool)
    psi = jax.random.uniform(jax.random.fold_in(key, 1), (sets, n))
    f, method = sf.DeepSet(2, key=key), sf.idiffmf()
    solve = eqx.filter_jit(lambda f, items, mask: method(f, items, mask,
                                                         key=jax.random.key(2)))
    top_k = jax.jit(lambda psi, mask: sf.predict(psi, mask, jnp.full(sets, 10)))
    row = {"n": n, "sets": sets, "nodes": expected_jaccard.num_nodes(n)}
    row["rule"] = timed(_rule(expected_jaccard.num_nodes), psi, mask)[1] / sets
    if n <= 1000:
        row["rule_exact_nodes"] = timed(_rule(lambda n: math.ceil(n / 2)), psi, mask)[1] / sets
    row["top_k"] = timed(top_k, psi, mask)[1] / sets
    solution, seconds = timed(solve, f, items, mask)
    row["solve"] = seconds / sets
    # The batch's solves share one vmapped loop: the slowest set sets the pace.
    row["solve_steps"] = int(jnp.max(solution.num_steps))
    row["solve_converged"] = float(jnp.mean(solution.converged))
    return row


def main(argv=None):
    quick = quick_flag(argv)
    sizes = [30, 100] if quick else [30, 100, 300, 1000, 3000, 10_000]
    most_sets = 8 if quick else 128
    rows = []
    for n in sizes:
        row = measure(n, most_sets)
        exact = (f", exact nodes {row['rule_exact_nodes'] * 1e6:9.1f} us"
                 if "rule_exact_nodes" in row else "")
        print(f"n = {n:>6} ({row['sets']:>3} sets, {row['nodes']:>3} nodes): rule "
              f"{row['rule'] * 1e6:8.1f} us{exact}, top-k {row['top_k'] * 1e6:7.1f} us, "
              f"solve {row['solve'] * 1e6:9.1f} us per set ({row['solve_steps']} steps, "
              f"{row['solve_converged']:.1%} converged) "
              f"(rule / solve {row['rule'] / row['solve']:.3f})", flush=True)
        rows.append(row)
    config = {"sizes": sizes, "most_sets": most_sets, "model": "DeepSet(2) defaults",
              "method": "idiffmf()", "dtype": "float32", "what": "seconds per set, forward only"}
    name = "expected_jaccard" + ("_quick" if quick else "")
    save(name, config, {"rows": rows})
    plot(rows, name)


def plot(rows, name):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for key, label, style in (("solve", "iDiffMF solve", "o-"),
                              ("rule", "E[J] rule", "s-"),
                              ("rule_exact_nodes", "E[J] rule, n/2 nodes", "s--"),
                              ("top_k", "top-k (sort)", "^:")):
        picked = [r for r in rows if key in r]
        ax.plot([r["n"] for r in picked], [r[key] for r in picked], style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("items per set, n")
    ax.set_ylabel("seconds per set")
    ax.legend()
    save_figure(fig, name)
