"""The benchmarks' re-implementation of the reference cost structure computes what it
claims to: the per-coordinate estimate of setfix's `MonteCarlo(per_coordinate=True)` on
the same uniforms, the batch-wide Frobenius scaling, and a training step that stops at
its tolerance or step budget; and the real-data table is what the recorded runs give."""

import json
import re
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import setfix as sf
from benchmarks import _reference, real_data
from benchmarks.__main__ import BENCHMARKS


def _problem():
    f = sf.DeepSet(2, hidden=4, width=6, key=jax.random.key(0))
    items = jax.random.normal(jax.random.key(1), (3, 5, 2))
    q = jax.random.uniform(jax.random.key(2), (3, 5), minval=0.1, maxval=0.9)
    return f, items, q


def test_reference_estimate_is_setfix_per_coordinate_estimate():
    f, items, q = _problem()
    u = jax.random.uniform(jax.random.key(3), (3, 4, 5, 5))  # (b, m, n, n)
    ours = jax.vmap(
        lambda x, p, noise: sf.MonteCarlo(4, per_coordinate=True).gradient(
            f.readout, f.embed(x), p, jnp.ones(5, bool), noise)
    )(items, q, u)
    np.testing.assert_allclose(_reference.gradient_estimate(f, items, q, u), ours,
                               rtol=1e-5, atol=1e-6)
    # The batch-wide Frobenius scaling is setfix's BatchNormScaling("fro").
    scaled = sf.BatchNormScaling("fro")(ours, jnp.ones((3, 5), bool))
    np.testing.assert_allclose(2 * ours / (5 * jnp.linalg.norm(ours)), scaled, rtol=1e-6)


@pytest.mark.user_defaults
@pytest.mark.slow
def test_reference_step_iterates_to_its_budget_and_learns():
    f, items, _ = _problem()
    key = jax.random.key(4)
    # Fresh draws every map: the step norm stays above 1e-6, so the budget is spent.
    _, steps = _reference.solve(f, items, key, num_samples=3, tol=1e-6, max_steps=7,
                                fixed_key=False)
    assert int(steps) == 7
    _, steps = _reference.solve(f, items, key, num_samples=3, tol=1e9, max_steps=7,
                                fixed_key=False)
    assert int(steps) == 1
    # The published code's fixed key: the map is piecewise constant in psi, so the
    # solve stops at a step of exactly zero, well inside the budget.
    q, steps = _reference.solve(f, items, key, num_samples=3, tol=0.0, max_steps=50)
    assert 1 < int(steps) < 50
    # (Outside the compiled loop the map may round differently in the last bit.)
    np.testing.assert_allclose(_reference.mean_field_map(f, items, q, key, 3), q, rtol=1e-6)
    target = jnp.zeros((3, 5), bool).at[:, :2].set(True)
    negatives = jnp.zeros((3, 5), bool).at[:, 2:4].set(True)
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(eqx.filter(f, eqx.is_inexact_array))
    loss = lambda model: _reference.loss(model, items, target, negatives, key)[0]  # noqa: E731
    before = loss(f)
    for _ in range(20):
        f, opt_state, _ = _reference.train_step(f, opt_state, items, target, negatives, key,
                                                optimizer)
    assert loss(f) < before


def _convolutions_in_loops(hlo: str) -> int:
    """Convolutions reachable from the body of any while loop of compiled HLO text."""
    computations = {}
    for block in re.split(r"\n(?=\S)", hlo):
        name = re.match(r"(?:ENTRY )?%?([\w.\-]+)", block)
        if name:
            computations[name.group(1)] = block
    seen = set()

    def count(name):
        if name in seen or name not in computations:
            return 0
        seen.add(name)
        block = computations[name]
        callees = re.findall(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)", block)
        return block.count("convolution(") + sum(map(count, callees))

    return sum(count(body) for body in re.findall(r"body=%?([\w.\-]+)", hlo))


@pytest.mark.parametrize("rerun_encoder", [False, True])
def test_reference_encoder_runs_in_the_loop_only_when_asked(rerun_encoder):
    """The published code is jitted JAX: XLA hoists its loop-invariant encoder out of
    the solver's loop, so the `published` variant does not time a CNN per map; the
    `fresh` variant's barrier keeps it there, as eager PyTorch runs it."""
    f = sf.DeepSet(encoder=sf.CNNEncoder(3, 8, key=jax.random.key(0)), hidden=8, width=8,
                   key=jax.random.key(1))
    items = jax.random.normal(jax.random.key(2), (2, 3, 3, 8, 8))
    params, static = eqx.partition(f, eqx.is_array)

    def solve(params):
        return _reference.solve(eqx.combine(params, static), items, jax.random.key(3),
                                num_samples=2, rerun_encoder=rerun_encoder)

    hlo = jax.jit(solve).lower(params).compile().as_text()
    assert "convolution(" in hlo
    assert (_convolutions_in_loops(hlo) > 0) == rerun_encoder


def _run_record(dataset, method, seed, jaccard, seconds):
    # The table protocol's records: standardised noise, shared draws, the last batch
    # dropped (the recorded columns' behaviour).
    config = {"dataset": dataset, "method": method, "seed": seed, "root": "data",
              "learning_rate": 1e-3, "patience": 6, "weight_decay": 0.0,
              "copula": "standardised", "draws": "shared", "drop_last": True}
    return {"config": config, "name": f"{dataset}-{method}-s{seed}",
            "test_jaccard": jaccard, "epochs_run": 3, "seconds_per_epoch": seconds,
            "history": [{"train_seconds": seconds}] * 3}


def test_real_data_table_is_the_documented_one():
    """`docs/assets/real_data.md` is what the recorded runs give, so the figures in the
    documentation cannot drift from the records they come from."""
    documented = (Path(__file__).parents[1] / "docs/assets/real_data.md").read_text()
    assert real_data.table() == documented


def test_energies_table_is_the_documented_one():
    """`docs/assets/energies.md` is what the recorded runs of each energy give."""
    documented = (Path(__file__).parents[1] / "docs/assets/energies.md").read_text()
    assert real_data.energies_table() == documented


def test_energies_table_marks_the_cells_trained_before_274819d():
    """Each cell still trained before the tighter certified bound carries the dagger,
    and so does the Amazon mean of a column that averages one; no other cell does."""
    from benchmarks import real_data

    table = real_data.energies_table()
    labels = list(real_data.ENERGIES)
    for dataset, label in real_data.BEFORE_274819D:
        row = next(line for line in table.splitlines() if line.startswith(f"| {dataset} |"))
        assert real_data.STALE in row.split("|")[labels.index(label) + 2]
    stale_means = {label for dataset, label in real_data.BEFORE_274819D
                   if dataset.startswith("amazon:")}
    assert table.count(real_data.STALE) == len(real_data.BEFORE_274819D) + len(stale_means)


def test_interactions_table_is_the_documented_one():
    """`docs/assets/interactions.md` is what the recorded interaction runs give."""
    from benchmarks import interactions

    documented = (Path(__file__).parents[1] / "docs/assets/interactions.md").read_text()
    assert interactions.documented_table() == documented


def test_size_free_table_is_the_documented_one():
    """`docs/assets/size_free.md` is what the rescored runs give."""
    from benchmarks import size_free

    documented = (Path(__file__).parents[1] / "docs/assets/size_free.md").read_text()
    assert size_free.table() == documented


def test_size_free_rescore_refuses_another_model(tmp_path, monkeypatch):
    """A run whose best model no longer gives its recorded top-|S*| Jaccard is not the
    run recorded (or not deterministic): refused, not mixed into the records; one that
    does is kept beside its recorded figures."""
    from benchmarks import size_free

    monkeypatch.setattr(size_free, "RECORDS", tmp_path / "records")
    record = _run_record("amazon:toys", "idiffmf", 0, 60.0, 1.0)
    record["config"].update(copula="published", draws="fresh")
    record["test_scores"] = {"jaccard": 60.0}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(record))
    scores = {name: 1.0 for name in size_free.COLUMNS}
    monkeypatch.setattr(size_free, "evaluate_run", lambda path, split: {**scores,
                                                                         "jaccard": 59.0})
    with pytest.raises(ValueError, match="59.0000 top-|S\\*| now against 60.0000"):
        size_free.rescore(tmp_path)
    monkeypatch.setattr(size_free, "evaluate_run", lambda path, split: {**scores,
                                                                         "jaccard": 60.0})
    written, skipped = size_free.rescore(tmp_path)
    assert len(written) == 1 and not skipped
    kept = json.loads(written[0].read_text())
    assert kept["recorded"] == {"jaccard": 60.0} and kept["rescored"]["jaccard"] == 60.0


def test_real_data_cells_merge_recorded_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(real_data, "RECORDS", tmp_path)
    monkeypatch.setattr(real_data, "EARLIER", tmp_path / "earlier.json")
    earlier = [
        {"dataset": "amazon:toys", "label": "diffmf-shared", "mean": 51.0, "std": 1.0,
         "runs": 2, "seconds_per_epoch": 40.0, "scores": [50.0, 52.0]},
        {"dataset": "amazon:toys", "label": "idiffmf-fro", "mean": 64.0, "std": 0.5,
         "runs": 5, "seconds_per_epoch": 8.0},
    ]
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    runs = tmp_path / "runs"
    for i, (method, seed, score) in enumerate(
            [("diffmf", 2, 54.0), ("equivset_copula", 0, 57.0)]):
        (runs / str(i)).mkdir(parents=True)
        (runs / str(i) / "results.json").write_text(
            json.dumps(_run_record("amazon:toys", method, seed, score, 20.0 + i)))
    # A run at another learning rate than the table's is left out, and says why.
    other = _run_record("amazon:toys", "diffmf", 3, 40.0, 20.0)
    other["config"]["learning_rate"] = 1e-4
    (runs / "other").mkdir()
    (runs / "other" / "results.json").write_text(json.dumps(other))
    copied, skipped = real_data.collect(runs)
    assert len(copied) == 2
    assert len(skipped) == 1 and "learning_rate: 0.0001 there, 0.001 here" in skipped[0]
    found = real_data.cells()
    merged = found["amazon:toys", "diffmf-shared"]
    assert merged["runs"] == 3 and merged["scores"] == [50.0, 52.0, 54.0]
    assert merged["mean"] == pytest.approx(52.0)
    assert merged["std"] == pytest.approx(np.std([50.0, 52.0, 54.0]))
    assert merged["seconds_per_epoch"] == 20.0  # the recorded run's own timing
    assert found["amazon:toys", "equivset_copula-standardised"]["mean"] == 57.0
    row = real_data.table().splitlines()[2]
    assert row.startswith("| amazon:toys | 64.00 ± 0.50 (5, 8.0 s) | 52.00 ± 1.63 (3, 20 s)")
    assert row.endswith("| 57.00 (1, 21 s) |  | 61.47 | 67.62 |")
    # A cell whose seeds' scores were not kept cannot take more runs.
    (tmp_path / "extra.json").write_text(
        json.dumps(_run_record("amazon:toys", "idiffmf", 5, 63.0, 8.0)))
    with pytest.raises(ValueError, match="no per-seed scores"):
        real_data.cells()
    (tmp_path / "extra.json").unlink()
    # Nor can a cell count a seed twice: its earlier scores are seeds 0 and 1.
    (tmp_path / "again.json").write_text(
        json.dumps(_run_record("amazon:toys", "diffmf", 1, 51.0, 20.0)))
    with pytest.raises(ValueError, match=r"already counts seed\(s\) \[1\]"):
        real_data.cells()
    (tmp_path / "again.json").unlink()
    # Nor can two records be the same run.
    twice = _run_record("amazon:toys", "diffmf", 2, 55.0, 20.0)
    twice["name"] = "copy"
    (tmp_path / "twice.json").write_text(json.dumps(twice))
    with pytest.raises(ValueError, match="are both the amazon:toys diffmf-shared run of seed 2"):
        real_data.cells()


def test_real_data_records_are_named_by_variant(tmp_path, monkeypatch):
    """Runs of two variants with the same run name (`equivset_copula` meant the
    standardised noise before it meant the published) are kept in two records named by
    their labels; a record is never overwritten by a different run."""
    monkeypatch.setattr(real_data, "RECORDS", tmp_path)
    monkeypatch.setattr(real_data, "EARLIER", tmp_path / "earlier.json")
    old = _run_record("amazon:toys", "equivset_copula", 0, 57.0, 5.0)
    new = _run_record("amazon:toys", "equivset_copula", 0, 63.0, 3.0)
    new["config"].update(copula="published", draws="fresh", drop_last=True)
    runs = tmp_path / "runs"
    for name, record in (("old", old), ("new", new)):
        (runs / name).mkdir(parents=True)
        (runs / name / "results.json").write_text(json.dumps(record))
    copied, _ = real_data.collect(runs)
    assert sorted(p.name for p in copied) == [
        "amazon-toys-equivset_copula-s0.json",
        "amazon-toys-equivset_copula-standardised-s0.json"]
    found = real_data.cells()
    assert found["amazon:toys", "equivset_copula"]["mean"] == 63.0
    assert found["amazon:toys", "equivset_copula-standardised"]["mean"] == 57.0
    other = dict(new, config={**new["config"], "root": "elsewhere"})
    (runs / "new" / "results.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="holds another run.*not overwritten"):
        real_data.collect(runs)


def test_real_data_compound_rows_have_their_own_protocol(tmp_path, monkeypatch):
    """Compound runs enter the table at the reduced training protocol and no other, and
    their row says so."""
    monkeypatch.setattr(real_data, "RECORDS", tmp_path)
    monkeypatch.setattr(real_data, "EARLIER", tmp_path / "earlier.json")
    runs = tmp_path / "runs"
    full = _run_record("compounds:CHEMBL214_Ki", "idiffmf", 0, 91.0, 100.0)
    reduced = _run_record("compounds:CHEMBL214_Ki", "idiffmf", 1, 89.0, 25.0)
    reduced["config"].update(real_data.REDUCED["compounds"])
    reduced["name"] += "-reduced"
    for name, record in (("full", full), ("reduced", reduced)):
        (runs / name).mkdir(parents=True)
        (runs / name / "results.json").write_text(json.dumps(record))
    copied, skipped = real_data.collect(runs)
    assert [p.name for p in copied] == ["compounds-CHEMBL214_Ki-idiffmf-fro-s1.json"]
    assert len(skipped) == 1 and "train_sets: None there, 250 here" in skipped[0]
    row = real_data.table().splitlines()[2]
    assert row.startswith("| compounds:CHEMBL214_Ki (250 training sets, batch 32) "
                          "| 89.00 (1, 25 s) |")
    # A record of another protocol among the table's records is an error, not a cell.
    (tmp_path / "full.json").write_text(json.dumps(full))
    with pytest.raises(ValueError, match="not the table's protocol.*belong in"):
        real_data.cells()


@pytest.mark.user_defaults
@pytest.mark.slow
def test_interaction_benchmarks_run_quick(tmp_path, monkeypatch):
    """`interactions` and `pairwise_ceiling` run with --quick and write their records
    (redirected to a temporary folder)."""
    from benchmarks import _common, interactions, pairwise_ceiling

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(interactions, "RESULTS", tmp_path)
    interactions.main(["--quick", "--tasks", "substitutes", "--variants", "certified"])
    record = json.loads((tmp_path / "interactions-quick.json").read_text())
    cell = record["results"]["summary"]["substitutes"]["certified"]
    assert cell["converged"][0] == 1 and 0 <= cell["jaccard"][0] <= 100
    pairwise_ceiling.main(["--quick"])
    ceiling = json.loads((tmp_path / "pairwise_ceiling-quick.json").read_text())["results"]
    assert all(0 <= r["solved"] <= 100 for r in ceiling.values())


@pytest.mark.slow
def test_large_sets_benchmark_runs_quick(tmp_path, monkeypatch):
    """`large_sets --quick` measures each size in a fresh process, blocked and not, and
    writes its record and plot (redirected to a temporary folder)."""
    from benchmarks import _common, large_sets

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    large_sets.main(["--quick"])
    record = json.loads((tmp_path / "large_sets_quick.json").read_text())["results"]
    assert [(r["n"], r["blocked"]) for r in record["rows"]] == [
        (100, True), (1000, True), (100, False), (1000, False)]
    assert all(r["seconds"] > 0 and r["peak_rss_bytes"] > 0 for r in record["rows"])
    assert (tmp_path / "large_sets_quick.png").exists()


@pytest.mark.user_defaults
@pytest.mark.slow
def test_floor_energies_runs_quick(tmp_path, monkeypatch):
    """`floor --energies --quick` times the map of every energy and writes the ratios
    to the DeepSet's (redirected to a temporary folder)."""
    from benchmarks import _common, floor

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    floor.main(["--quick", "--energies"])
    rows = json.loads((tmp_path / "floor_energies_quick.json").read_text())["results"]
    assert [r["config"] for r in rows] == list(floor.QUICK)
    for row in rows:
        assert set(row["over_deepset"]) == {"deepset", "superset", "attention"}
        assert row["over_deepset"]["deepset"] == 1
        assert all(t > 0 for t in row["seconds_per_iteration"].values())


# The benchmarks with a test of their own above.
_TESTED_ABOVE = ("interactions", "pairwise_ceiling", "large_sets")
# Those that turn x64 on themselves (their exact references are float64); the others
# run under JAX's defaults, as from the command line.
_FLOAT64 = ("solvers", "gradients", "implicit_fd")


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.standard_promotion if n in _FLOAT64
                 else pytest.mark.user_defaults)
    for n in BENCHMARKS if n not in _TESTED_ABOVE])
def test_benchmark_runs_quick(name, tmp_path, monkeypatch):
    """`python -m benchmarks NAME --quick` runs and writes its record (redirected to a
    temporary folder), for every registered benchmark."""
    from benchmarks import _common

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    BENCHMARKS[name](["--quick"])
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert records and all(r["results"] for r in records)
    assert all(r["config"] is not None for r in records)
