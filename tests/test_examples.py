"""Every example runs with --quick."""

import pathlib
import subprocess
import sys

import pytest


EXAMPLES = sorted((pathlib.Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.name != "bayes_limit.py"],
                         ids=lambda p: p.name)  # bayes_limit.py: its own test below
def test_example_runs(path):
    out = subprocess.run([sys.executable, str(path), "--quick"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_bayes_limit_separates_the_moons():
    """The generative densities of examples/bayes_limit.py match the generators: with
    them, the anomalies of 100 two-moons sets are found almost without error, and the
    overlapping Gaussians stay near 90 (the published figures' level)."""
    path = next(p for p in EXAMPLES if p.name == "bayes_limit.py")
    out = subprocess.run([sys.executable, str(path), "--quick"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    figures = {tuple(line.split(":")[:2]): [float(x) for x in line.split(":")[-1].split("/")]
               for line in out.stdout.strip().splitlines()}
    bayes, linear = " Bayes-optimal top-|S*| Jaccard, train / val / test", \
        " best linear per-item score, train / val / test"
    assert min(figures["moons", bayes]) > 99
    assert all(85 < x < 93 for x in figures["gaussian", bayes])
    # A linear per-item rule is all but Bayes-optimal on the Gaussians (whose likelihood
    # ratio is linear) and far from it on the moons.
    assert all(abs(a - b) < 2 for a, b in zip(figures["gaussian", linear],
                                               figures["gaussian", bayes]))
    assert max(figures["moons", linear]) < 70
