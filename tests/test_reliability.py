"""Faults and bad input: every one gets a clear error or a correct result, never a
non-finite or adopted result reported as valid (issue 32, one test per item)."""

import json
import os
import warnings

import equinox as eqx
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optax
import optimistix as optx
import pytest
from hypothesis import given, strategies as st

import setfix as sf
from setfix._fit import percent
from setfix.experiments import Experiment, main, run


TINY = ["--epochs", "1", "--train-sets", "16", "--val-sets", "8", "--test-sets", "8",
        "--batch-size", "8", "--quiet"]


@pytest.fixture(scope="module")
def data():
    train, val, _ = sf.datasets.moons(v_size=12, s_size=3, num_sets=16)
    return train, val


def _model(key=0, **kw):
    return sf.DeepSet(2, hidden=8, width=8, key=jax.random.key(key), **kw)


# 1. Divergence is detected in the step, named, and never kept.

@pytest.mark.user_defaults
@pytest.mark.slow
@pytest.mark.parametrize("method", ["diffmf", "idiffmf", "equivset_ind"])
def test_a_diverging_run_stops_with_a_clear_error(data, method):
    train, val = data
    config = Experiment(method=method)
    make = {"diffmf": lambda: sf.diffmf(num_samples=2),
            "idiffmf": lambda: sf.idiffmf(num_samples=2, max_steps=10),
            "equivset_ind": lambda: sf.equivset_ind(num_samples=2)}[method]
    from setfix.experiments import build_model
    model = build_model(config, (2,), jax.random.key(0))
    # 1e300, not 1e9: in float64 (this suite) a rate of 1e9 wrecks the model but keeps
    # it finite; in float32 (the CLI's default) 1e9 is enough.
    with pytest.raises(sf.DivergenceError, match=r"epoch 1, batch \d.*lower learning rate "
                       r"than 1e\+300"):
        sf.fit(model, make(), train, val, key=jax.random.key(1), learning_rate=1e300,
               batch_size=4, epochs=2, progress=False)


@pytest.mark.user_defaults
@pytest.mark.slow
def test_divergence_keeps_the_last_good_checkpoint(data, tmp_path):
    """A step size that explodes in epoch 2: the error names epoch 2, and the checkpoint
    and its manifest still hold epoch 1 only (which resumes cleanly)."""
    train, val = data
    steps_per_epoch = len(train) // 8
    schedule = lambda step: jnp.where(step < steps_per_epoch, 1e-3, jnp.inf)  # noqa: E731
    optimizer = optax.sgd(schedule)
    path = tmp_path / "ckpt.eqx"
    kw = dict(key=jax.random.key(1), batch_size=8, optimizer=optimizer, progress=False,
              checkpoint=path)
    with pytest.raises(sf.DivergenceError, match="epoch 2"):
        sf.fit(_model(), sf.diffmf(num_samples=2), train, val, epochs=3, **kw)
    manifest = json.loads((tmp_path / "ckpt.eqx.json").read_text())
    assert [r["epoch"] for r in manifest["history"]] == [1]
    resumed = sf.fit(_model(), sf.diffmf(num_samples=2), train, val, epochs=1, **kw)
    assert resumed.resumed_epochs == 1 and resumed.best_epoch == 1
    leaves = jax.tree.leaves(eqx.filter(resumed.model, eqx.is_inexact_array))
    assert all(np.isfinite(x).all() for x in leaves)


@pytest.mark.user_defaults
@pytest.mark.slow
def test_the_cli_reports_divergence_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match="training diverged at epoch 1.*learning rate"):
        main(["train", *TINY, "--method", "diffmf", "--lr", "1e300",
              "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run" / "best.eqx").exists()



@pytest.mark.user_defaults
@pytest.mark.slow
def test_a_failed_adjoint_solve_stops_with_a_clear_error(data):
    """The implicit adjoint's linear solve raises inside the step when it fails (here
    a GMRES allowed one restart and a tolerance float32 cannot meet): `fit` names the
    solve, the epoch and batch, and the direct solver that cannot break down."""
    train, val = data
    linear = lx.GMRES(rtol=1e-30, atol=1e-30, restart=1, max_steps=1)
    method = sf.idiffmf(sf.CertifiedScaling(), num_samples=2, linear_solver=linear)
    with pytest.raises(RuntimeError, match=r"adjoint's linear solve failed at epoch 1, "
                       r"batch 1 \(The maximum number of solver steps.*lineax.LU"):
        sf.fit(_model(smooth=True), method, train, val, key=jax.random.key(1),
               batch_size=8, epochs=1, progress=False)

# 2. and 10. Empty oracle subsets and empty datasets.

@pytest.mark.user_defaults
@pytest.mark.slow
def test_empty_targets_are_refused_or_counted(data):
    items = np.random.default_rng(0).normal(size=(3, 5, 2)).astype(np.float32)
    mask = np.ones((3, 5), bool)
    with pytest.raises(ValueError, match="every set's `target` is empty"):
        sf.SetDataset(items, mask, np.zeros((3, 5), bool))
    with pytest.raises(ValueError, match="no sets"):
        sf.SetDataset(items[:0], mask[:0], mask[:0])
    target = np.zeros((3, 5), bool)
    target[0, :2] = True
    some = sf.SetDataset(items, mask, target)
    assert some.num_empty_targets == 2
    method = sf.diffmf(num_samples=2)
    scores = sf.evaluate(_model(), method, some, key=jax.random.key(0))
    alone = sf.evaluate(_model(), method, some[:1], key=jax.random.key(0))
    assert scores["empty_targets"] == 2 and alone["empty_targets"] == 0
    # The Jaccard figures are those of the one set with an S*, not inflated by the two
    # empty ones (where predicting nothing would score 100).
    assert scores["jaccard"] == pytest.approx(alone["jaccard"])
    train, val = data
    with pytest.warns(RuntimeWarning, match="2 of the 3 sets of `val` have an empty"):
        sf.fit(_model(), method, train, some, key=jax.random.key(0), batch_size=8,
               epochs=1, progress=False)


# 3. and 12. Run directories: no adoption, a garbage config named.

def test_a_directory_with_run_files_but_no_config_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.eqx").write_bytes(b"\0")
    config = Experiment(epochs=1, train_sets=16, val_sets=8, test_sets=8, batch_size=8)
    with pytest.raises(ValueError, match="checkpoint.eqx.*no `config.json`"):
        run(config, out, progress=False)
    (out / "config.json").write_text("{not json")
    with pytest.raises(SystemExit, match="config.json` is not a valid setfix configuration"):
        main(["train", *TINY, "--out", str(out)])
    (out / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a valid setfix configuration"):
        run(config, out, progress=False)


# 4. The checkpoint and its manifest are one unit.

@pytest.mark.user_defaults
def test_a_checkpoint_that_its_manifest_does_not_vouch_for_is_named(data, tmp_path):
    train, val = data
    path = tmp_path / "ckpt.eqx"
    manifest = tmp_path / "ckpt.eqx.json"
    kw = dict(key=jax.random.key(1), batch_size=8, progress=False, checkpoint=path)
    method = sf.diffmf(num_samples=2)
    sf.fit(_model(), method, train, val, epochs=2, **kw)
    good = manifest.read_text()

    values = json.loads(good)
    values["history"] = values["history"][:1]  # a lost history entry
    manifest.write_text(json.dumps(values))
    with pytest.raises(ValueError, match="holds 2 epochs but its manifest .* records 1"):
        sf.fit(_model(), method, train, val, epochs=3, **kw)

    manifest.write_text('{"history": [1, 2')  # garbage
    with pytest.raises(ValueError, match="manifest `.*ckpt.eqx.json` of checkpoint"):
        sf.fit(_model(), method, train, val, epochs=3, **kw)

    manifest.write_text(good)
    data_bytes = path.read_bytes()
    path.write_bytes(data_bytes[:-1] + bytes([data_bytes[-1] ^ 0xFF]))  # another write
    with pytest.raises(ValueError, match="does not match its manifest"):
        sf.fit(_model(), method, train, val, epochs=3, **kw)

    manifest.unlink()
    with pytest.raises(ValueError, match="has no manifest"):
        sf.fit(_model(), method, train, val, epochs=3, **kw)


# 5. Tolerances.

@pytest.mark.parametrize("make", [
    lambda: sf.AndersonAcceleration(rtol=-1, atol=1e-5),
    lambda: sf.AndersonAcceleration(rtol=1e-5, atol=float("nan")),
    lambda: sf.idiffmf(tolerance=-1e-5),
    lambda: sf.onestep(tolerance=float("nan")),
    lambda: sf.MeanField(solver=optx.FixedPointIteration(rtol=-1.0, atol=1e-5)),
    lambda: sf.MeanField(adjoint=optx.ImplicitAdjoint(lx.GMRES(rtol=1e-5, atol=-1.0))),
])
@pytest.mark.bad_input
def test_negative_or_nan_tolerances_are_refused(make):
    with pytest.raises(ValueError, match="(?i)tol"):
        make()


# 6. The non-convergence advice points the right way.

@pytest.mark.user_defaults
@pytest.mark.slow
def test_the_non_convergence_warning_asks_for_a_larger_c(data):
    train, val = data
    method = sf.idiffmf(sf.ConstantScaling(1e-6), num_samples=2, max_steps=3)
    with pytest.warns(RuntimeWarning, match=r"a larger `c` in `ConstantScaling\(c\)`"):
        sf.fit(_model(), method, train, val, key=jax.random.key(0), batch_size=8,
               epochs=1, progress=False)


# 7. Unwritable outputs.

def test_an_out_that_is_a_file_is_named(tmp_path):
    out = tmp_path / "file"
    out.write_text("")
    with pytest.raises(SystemExit, match=f"`{out}` is an existing file"):
        main(["train", *TINY, "--out", str(out)])


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes through permissions")
def test_an_unwritable_out_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(SystemExit, match="cannot write to the run directory"):
        main(["train", *TINY, "--out", str(locked / "run")])


def test_a_full_disk_while_checkpointing_names_the_file(tmp_path, monkeypatch):
    path = sf.save_checkpoint(tmp_path / "ckpt.eqx", jnp.arange(3.0))
    before = path.read_bytes()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(eqx, "tree_serialise_leaves", full)
    with pytest.raises(OSError, match=r"could not write checkpoint .*ckpt.eqx.*No space"):
        sf.save_checkpoint(path, jnp.arange(3.0))
    assert path.read_bytes() == before
    assert not (tmp_path / "ckpt.eqx.partial").exists()


# 8. float32 models under jax_enable_x64 (on in this test suite).

@pytest.mark.parametrize("make", [
    lambda: sf.idiffmf(num_samples=2),
    lambda: sf.onestep(num_samples=2),
    lambda: sf.idiffmf(num_samples=2, solver=sf.AndersonAcceleration(1e-5, 1e-5)),
])
@pytest.mark.slow
@pytest.mark.standard_promotion
def test_float32_models_solve_and_differentiate_under_x64(make):
    """The solve runs in float64 (Optimistix's solver states are float64 there) and
    agrees with the float64 model's to float32 rounding. The float64 iterate meets the
    float32 model by JAX's standard promotion, by design, so this test runs under it
    (the rest of the suite runs under strict promotion)."""
    assert jax.config.jax_enable_x64
    model64 = _model()
    model = jax.tree.map(lambda x: x.astype(jnp.float32) if eqx.is_inexact_array(x) else x,
                         model64)
    items = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 2)), jnp.float32)
    method = make()
    sol = method(model, items, key=jax.random.key(0))
    ref = method(model64, items.astype(jnp.float64), key=jax.random.key(0))
    assert sol.psi.dtype == jnp.float64 and np.isfinite(sol.psi).all()
    assert np.array_equal(sol.converged, ref.converged)
    assert np.allclose(sol.psi, ref.psi, atol=1e-5)
    grads = eqx.filter_grad(lambda f: method(f, items, key=jax.random.key(0)).psi.sum())(model)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


# 9. and 11. Shapes checked before any work, naming both sides.

@pytest.mark.user_defaults
def test_mismatched_feature_widths_are_named_before_training(data):
    train, val = data
    wide = sf.SetDataset(np.concatenate([val.items, val.items[..., :1]], axis=-1),
                         val.mask, val.target)
    with pytest.raises(ValueError, match=r"`train` items have feature shape \(2,\) but "
                       r"`val` items \(3,\)"):
        sf.fit(_model(), sf.diffmf(), train, wide, key=jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match=r"feature shape \(3,\).*takes 2 features"):
        sf.fit(_model(), sf.diffmf(), wide, wide, key=jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match=r"feature shape \(3,\).*takes 2 features"):
        sf.idiffmf()(_model(), jnp.ones((5, 3)), key=jax.random.key(0))


@pytest.mark.bad_input
def test_one_dimensional_items_are_asked_for_a_feature_axis():
    with pytest.raises(ValueError, match=r"one row of features per item.*items\[\.\.\., "
                       r"None\]"):
        sf.idiffmf()(sf.DeepSet(1, key=jax.random.key(0)), jnp.ones(30),
                     jnp.ones(30, bool), key=jax.random.key(0))


# Small things: percentages, --help, evaluating the validation split, extending a run.

def test_percentages_never_round_up_to_complete():
    assert percent(1.0) == "100.0%"
    assert percent(0.9978) == "99.8%"
    assert percent(0.99996) == ">99.9%"


def test_help_shows_the_defaults_of_method_and_seed(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "learning method [idiffmf]" in text and "samples [0]" in text


@pytest.mark.user_defaults
@pytest.mark.slow
def test_evaluate_val_repeats_the_best_validation_figure_and_epochs_extend(tmp_path,
                                                                         capsys):
    out = tmp_path / "run"
    main(["train", *TINY, "--method", "diffmf", "--out", str(out)])
    main(["train", *TINY[2:], "--epochs", "2", "--method", "diffmf", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_run"] == 2 and results["resumed_epochs"] == 1
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    capsys.readouterr()
    main(["evaluate", str(out), "--split", "val"])
    shown = float(capsys.readouterr().out.split()[2])
    assert shown == pytest.approx(results["best_val_jaccard"], abs=0.005)
    with pytest.raises(SystemExit, match="epochs: 2 there, 1 here"):
        main(["train", *TINY, "--method", "diffmf", "--out", str(out)])


# Fuzz: a clear error or a valid result, never a non-finite result reported as valid.

@given(
    items=hnp.arrays(np.float32, st.tuples(st.integers(0, 3), st.integers(0, 4),
                                           st.integers(1, 2)),
                     elements=st.floats(-3, 3, width=32) | st.just(np.nan)),
    mask_bits=st.integers(0, 2**12 - 1),
    target_bits=st.integers(0, 2**12 - 1),
)
def test_set_dataset_fuzz(items, mask_bits, target_bits):
    size = items.shape[0] * items.shape[1]
    bits = lambda b: ((b >> np.arange(size)) & 1).astype(bool).reshape(items.shape[:2])  # noqa: E731
    mask, target = bits(mask_bits), bits(target_bits)
    try:
        data = sf.SetDataset(items, mask, target)
    except ValueError:
        return
    assert len(data) >= 1 and data.mask.any(axis=1).all() and data.target.any()
    assert np.isfinite(data.items).all() and not (data.target & ~data.mask).any()


@pytest.mark.slow
@given(
    n=st.integers(1, 5),
    batch=st.sampled_from([None, 2]),
    poison=st.sampled_from(["none", "nan", "inf", "padded_nan", "int"]),
    empty_mask=st.booleans(),
)
def test_mean_field_call_fuzz(n, batch, poison, empty_mask):
    shape = (n, 2) if batch is None else (batch, n, 2)
    items = np.random.default_rng(n).normal(size=shape).astype(np.float32)
    mask = np.ones(shape[:-1], bool)
    if poison in ("nan", "inf"):
        items[..., 0, 0] = np.nan if poison == "nan" else np.inf
    if poison == "padded_nan" and n > 1:
        mask[..., -1] = False
        items[..., -1, :] = np.nan
    if poison == "int":
        items = items.astype(np.int32)
    if empty_mask:
        mask[...] = False
    try:
        sol = sf.idiffmf(num_samples=2, max_steps=10)(_model(), jnp.asarray(items),
                                                     jnp.asarray(mask),
                                                     key=jax.random.key(0))
        sol.psi.block_until_ready()
    except (ValueError, TypeError, eqx.EquinoxRuntimeError):
        return
    psi, converged = np.asarray(sol.psi), np.asarray(sol.converged)
    finite = np.isfinite(psi).all(axis=-1)
    assert (finite | ~converged).all()  # a converged set has finite psi in [0, 1]
    assert ((psi[finite] >= 0) & (psi[finite] <= 1)).all()


@given(
    batch_size=st.sampled_from([0, -1, 8, 2.5]),
    epochs=st.sampled_from([0, 1, None]),
    patience=st.sampled_from([0, 3]),
    neg_num=st.sampled_from([0, -2, 1, None, 1.5]),
)
def test_fit_argument_fuzz(data, batch_size, epochs, patience, neg_num):
    """Bad arguments are refused before any training step (valid ones are not run)."""
    train, val = data
    values = dict(batch_size=batch_size, epochs=epochs, patience=patience, neg_num=neg_num)
    valid = (batch_size == 8 and epochs == 1 and patience == 3
             and neg_num in (1, None))
    if valid:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing runs far enough to warn
        with pytest.raises((ValueError, TypeError)):
            sf.fit(_model(), sf.diffmf(), train, val, key=jax.random.key(0),
                   progress=False, **values)
