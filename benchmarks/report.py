"""Renders the performance tables of the documentation from `benchmarks/results/*.json`
into `docs/assets/performance.md`, so the page shows exactly what was measured.

    python -m benchmarks.report
"""

import json
from pathlib import Path

from ._common import RESULTS


OUT = Path(__file__).parent.parent / "docs" / "assets" / "performance.md"


def _load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(record):
    m = record["machine"]
    used = m.get("cpus_used", m["cpu_count"])
    cores = (f"{m['cpu_count']} CPU cores" if used == m["cpu_count"]
             else f"{used} of {m['cpu_count']} CPU cores")
    return (f"*{cores} ({m['processor']}), JAX {m['versions']['jax']} "
            f"on {m['jax_backend']}, {m['date']}.*")


def _table(headers, rows, footer):
    """A Markdown table of `rows` (lists of cells) and a footnote."""
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return lines + ["", footer]


def throughput(record):
    c = record["config"]
    refs = list(c["references"])
    names = {"published": "published code", "fresh": "fresh draws"}
    headers = ["shapes", "n", "setfix s/step"]
    for ref in refs:
        headers += [f"{names[ref]} s/step", "speed-up"]
    headers.append("iterations: " + " / ".join(["setfix", *(names[r] for r in refs)]))

    def row(r):
        cells = [f"{r['config']} ({'×'.join(map(str, r['item_shape']))}, {r['encoder']})",
                 r["n"], f"{r['setfix_seconds_per_step']:.3f}"]
        for ref in refs:
            cells += [f"{r[f'{ref}_seconds_per_step']:.3f}", f"**{r[f'{ref}_speedup']:.1f}×**"]
        cells.append(" / ".join(f"{r[f'{i}_iterations']:.1f}" for i in ["setfix", *refs]))
        return cells

    def draws(v):
        return f"fixed key PRNGKey({v['seed']})" if v["fixed_key"] else "fresh draws"

    settings = "; ".join(
        f"{names[k]}: {draws(v)}, "
        f"encoder {'in every call' if v['rerun_encoder'] else 'hoisted by XLA'}, "
        f"tol {v['tol']:g}, at most {v['max_steps']} maps"
        for k, v in c["references"].items())
    return _table(
        headers, map(row, record["results"]),
        f"Batch {c['batch']}, m = {c['num_samples']}; median over {c['rounds']} alternating "
        f"rounds of the best of {c['repeats']} steps. References ({c['reference_code']}): "
        f"{settings}. " + _machine(record),
    )


def floor(record):
    return _table(
        ["shapes", "n", "one iteration (s)", "floor: 2mn readouts (s)", "iteration / floor",
         "m(n+1) readouts (s)", "iteration / those"],
        ([r["config"], r["n"], f"{r['seconds_per_iteration']:.4f}",
          f"{r['floor_seconds']:.4f}", f"**{r['iteration_over_floor']:.2f}×**",
          f"{r['own_readouts_seconds']:.4f}", f"{r['iteration_over_own_readouts']:.2f}×"]
         for r in record["results"]),
        f"Batch {record['config']['batch']}. " + _machine(record),
    )


def roofline(record):
    c, r = record["config"], record["results"]
    lines = _table(
        ["shapes", "n", "batch", "s/step", "GFLOP (XLA, loops once)",
         "GFLOP (solve loop × trips)", "GFLOP/s", "of the matmul rate",
         "XLA's count only"],
        ([s["config"], s["n"], s["batch"], f"{s['seconds_per_step']:.3f}",
          f"{s['xla_flops'] / 1e9:.1f}",
          f"{s['estimated_flops'] / 1e9:.1f} ({s['solve_trips']} trips)",
          f"{s['achieved_flops_per_second'] / 1e9:.0f}",
          f"**{s['fraction_of_matmul_rate']:.2f}**", f"{s['xla_fraction_of_matmul_rate']:.2f}"]
         for s in r["shapes"]),
        f"Matmul rate: {c['matmul_flops_per_second'] / 1e9:.0f} GFLOP/s (f32, "
        f"{c['matmul_size']}² by {c['matmul_size']}², best of the runs before and after), "
        f"setfix's default `{c['method']}`, best of {c['repeats']} steps. "
        + _machine(record),
    )
    kinds = r["profile"]["seconds_per_step_by_kind"]
    total = sum(kinds.values())
    shown = list(kinds.items())[:6]
    rest = total - sum(v for _, v in shown)
    lines += ["", f"Where a step's time goes ({r['profile']['shape']}, `jax.profiler` trace "
              "of two steps, compiled operations summed by kind):", ""]
    lines += _table(["operations", "s/step", "share"],
                    [[f"`{k}`", f"{v:.3f}", f"{v / total:.0%}"] for k, v in shown]
                    + [["the rest", f"{rest:.3f}", f"{rest / total:.0%}"]], "")[:-2]
    return lines


def iterations(record):
    c = record["config"]
    return _table(
        ["scaling", "ω at the solution", "solver", "steps, cold", "steps, warm",
         "converged, cold / warm"],
        ([r["scaling"], f"{r['omega']:.2g}", r["solver"], f"{r['cold_steps']:.1f}",
          f"{r['warm_steps']:.1f}", f"{r['cold_converged']:.0%} / {r['warm_converged']:.0%}"]
         for r in record["results"]),
        f"{c['sets']} validation sets of n = {c['n']}, tolerance {c['tol']}, at most "
        f"{c['max_steps']} steps. " + _machine(record),
    )


def compile_time(record):
    return _table(
        ["method", "trace + lower (s)", "XLA compile (s)", "first step (s)",
         "later steps (s)", "validation: first / later batch (s)"],
        ([r["method"], f"{r['trace_and_lower_seconds']:.1f}",
          f"**{r['compile_seconds']:.1f}**", f"{r['first_step_seconds']:.1f}",
          f"{r['later_step_seconds']:.2f}",
          f"{r['first_validation_seconds']:.1f} / {r['later_validation_seconds']:.1f}"]
         for r in record["results"]),
        f"Moons, batch {record['config']['batch']}, n = 100. " + _machine(record),
    )


def _minutes(seconds):
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s"


def end_to_end(record):
    return _table(
        ["command", "wall time", "s/epoch", "epochs", "test Jaccard"],
        ([f"`{r['command']}`", _minutes(r["wall_seconds"]), f"{r['seconds_per_epoch']:.1f}",
          r["epochs_run"], f"{r['test_jaccard']:.2f}"] for r in record["results"]),
        _machine(record),
    )


def pooled_items(record):
    c, r = record["config"], record["results"]
    return _table(
        ["items", "s/batch"],
        [["gathered on the host, encoded per (set, item)",
          f"{r['gathered_seconds_per_batch']:.2f}"],
         ["`PooledItems`: pool encoded once per step",
          f"{r['pooled_seconds_per_batch']:.2f} (**{r['speedup']:.2f}×**)"]],
        f"Batch {c['batch']} of n = {c['n']} from a pool of {c['pool']} fingerprints of "
        f"{c['bits']} bits; iDiffMF, MLP encoder. " + _machine(record),
    )


SECTIONS = {
    "throughput": ("Seconds per training step", throughput),
    "floor": ("One iteration against the floor", floor),
    "roofline": ("FLOP rate of a training step", roofline),
    "iterations": ("Iterations per solve", iterations),
    "compile_time": ("Compile time", compile_time),
    "end_to_end": ("End to end", end_to_end),
    "pooled_items": ("Items shared by the sets of a batch", pooled_items),
}


def main():
    lines = ["<!-- Generated by `python -m benchmarks.report` from benchmarks/results; "
             "do not edit. -->", ""]
    for name, (title, render) in SECTIONS.items():
        record = _load(name)
        lines += [f"#### {title}", "",
                  f"`python -m benchmarks {name}`", ""]
        lines += render(record) if record else ["*Not measured yet.*"]
        lines.append("")
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
