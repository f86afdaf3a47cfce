import json

import equinox as eqx
import jax
import numpy as np
import optax
import optimistix as optx
import pytest

import setfix as sf

from .helpers import unchecked


# Training runs as users run it (float32, standard promotion: optax's Adam needs it).
pytestmark = pytest.mark.user_defaults


@pytest.fixture(scope="module")
def data():
    train, val, _ = sf.datasets.moons(v_size=20, s_size=3, num_sets=32)
    return train, val


def _setup():
    model = sf.DeepSet(2, hidden=16, width=16, key=jax.random.key(0))
    method = sf.MeanField(sf.MonteCarlo(4), sf.NormScaling(),
                          optx.FixedPointIteration(1e-5, 1e-5), max_steps=20)
    return model, method


@pytest.mark.slow
def test_fit_keeps_the_best_parameters(data):
    train, val = data
    model, method = _setup()
    before = sf.evaluate(model, method, val, key=jax.random.key(1))
    result = sf.fit(model, method, train, val, key=jax.random.key(2), batch_size=8,
                    epochs=3, optimizer=optax.adam(3e-3), progress=False)
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    best = max(r["val_jaccard"] for r in result.history)
    assert result.best_val_jaccard == best
    assert result.history[result.best_epoch - 1]["val_jaccard"] == best
    val_key = jax.random.split(jax.random.fold_in(jax.random.key(2), result.best_epoch), 3)[2]
    after = sf.evaluate(result.model, method, val, key=val_key)
    assert np.isclose(after["jaccard"], best)
    assert 0 <= before["jaccard"] <= 100


@pytest.mark.slow
def test_resume_repeats_an_uninterrupted_run(data, tmp_path):
    train, val = data
    model, method = _setup()
    kw = dict(key=jax.random.key(3), batch_size=8, optimizer=optax.adam(3e-3),
              progress=False, patience=100)
    full = sf.fit(model, method, train, val, epochs=2, **kw)
    path = tmp_path / "ckpt.eqx"
    sf.fit(model, method, train, val, epochs=1, checkpoint=path, **kw)
    resumed = sf.fit(model, method, train, val, epochs=2, checkpoint=path, **kw)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert resumed.best_epoch == full.best_epoch >= 1
    assert resumed.best_val_jaccard == full.best_val_jaccard
    assert (full.resumed_epochs, resumed.resumed_epochs) == (0, 1)
    again = sf.fit(model, method, train, val, epochs=2, checkpoint=path, **kw)  # finished
    assert again.best_epoch == full.best_epoch and len(again.history) == 2
    assert again.resumed_epochs == 2
    assert np.isclose(resumed.history[1]["loss"], full.history[1]["loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(eqx.filter(full.model, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(resumed.model, eqx.is_array))):
        assert np.allclose(a, b, atol=1e-6)


def test_fit_bad_arguments(data):
    train, val = data
    model, method = _setup()
    with pytest.raises(ValueError, match="`batch_size`"):
        sf.fit(model, method, train, val, key=jax.random.key(0), batch_size=0)


@pytest.mark.bad_input
def test_fit_rejects_bad_learning_rates_and_methods(data):
    train, val = data
    model, method = _setup()
    with pytest.raises(ValueError, match="`learning_rate`"):
        sf.fit(model, method, train, val, key=jax.random.key(0), learning_rate=-1e-3)
    with pytest.raises(ValueError, match="`weight_decay`"):
        sf.default_optimizer(1e-3, weight_decay=-1.0)
    with pytest.raises(TypeError, match="`method`"):
        sf.fit(model, "idiffmf", train, val, key=jax.random.key(0))  # pyright: ignore
    with pytest.raises(TypeError, match="`inference`"):
        sf.fit(model, method, train, val, key=jax.random.key(0), inference=optax.adam(1.0))


def test_evaluate_with_the_reference_rule(data):
    """The reference rule (one step from 0.5) differs from the solved fixed point on an
    untrained model only through psi; both give valid Jaccard figures and are
    deterministic for a key."""
    _, val = data
    model, method = _setup()
    rule = sf.reference_prediction(method)
    a = sf.evaluate(model, rule, val, key=jax.random.key(4))
    b = sf.evaluate(model, rule, val, key=jax.random.key(4))
    assert a == b and 0 <= a["jaccard"] <= 100 and a["converged"] == 1.0


@pytest.mark.slow
def test_cross_validation_protocol(data):
    train, val = data
    _, method = _setup()
    result = sf.cross_validate(
        lambda k: sf.DeepSet(2, hidden=8, width=8, key=k), method,
        sf.concatenate(train, val), val, key=jax.random.key(5),
        learning_rates=(1e-2, 1e-3), folds=2, epochs=1, batch_size=8, progress=False,
    )
    assert result["learning_rate"] in (1e-2, 1e-3)
    assert len(result["test"]) == 2 and set(result["val"]) == {"0.01", "0.001"}
    chosen = str(result["learning_rate"])
    assert np.mean(result["val"][chosen]) == max(np.mean(v) for v in result["val"].values())
    assert np.isclose(result["test_mean"], np.mean(result["test_by_rate"][chosen]))
    with pytest.raises(ValueError, match="`folds`"):
        sf.cross_validate(lambda k: None, method, train, val, key=jax.random.key(0), folds=1)
    with pytest.raises(ValueError, match="`learning_rate`"):
        sf.cross_validate(lambda k: None, method, train, val, key=jax.random.key(0),
                          learning_rate=1.0)


@pytest.mark.slow
def test_cross_validation_resumes_from_its_directory(data, tmp_path, monkeypatch):
    """With `out`, every fold leaves its scores behind; a second call reads them back
    (it trains nothing) and two calls on parts of the grid add up to the whole."""
    train, val = data
    _, method = _setup()

    def protocol(rates):
        return sf.cross_validate(
            lambda k: sf.DeepSet(2, hidden=8, width=8, key=k), method,
            sf.concatenate(train, val), val, key=jax.random.key(5), learning_rates=rates,
            folds=2, out=tmp_path, epochs=1, batch_size=8, progress=False)

    first, second = protocol((1e-2,)), protocol((1e-3,))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lr0.001-fold0", "lr0.001-fold1", "lr0.01-fold0", "lr0.01-fold1"]
    record = first["folds_by_rate"]["0.01"][0]
    assert record["epochs_run"] == 1 and record["seconds_per_epoch"] > 0

    def no_training(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(sf._cross_validation, "fit", no_training)
    both = protocol((1e-2, 1e-3))
    assert both["test_by_rate"] == first["test_by_rate"] | second["test_by_rate"]
    (tmp_path / "lr0.01-fold1" / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="fold1` holds no fold record"):
        protocol((1e-2,))
    # A fold directory of another grid point, or of an earlier setfix's layout, is named.
    (tmp_path / "lr0.01-fold1" / "config.json").write_text(
        json.dumps({"learning_rate": 0.01, "fold": 0, "folds": 2}))
    with pytest.raises(ValueError, match="fold: 0 there, 1 here"):
        protocol((1e-2,))
    (tmp_path / "lr0.01-fold0" / "fold.json").write_text("{}")
    with pytest.raises(ValueError, match=r"earlier setfix \(fold.json\).*rerun"):
        protocol((1e-2,))
    with pytest.raises(ValueError, match="`checkpoint` is set by `out`"):
        sf.cross_validate(lambda k: None, method, train, val, key=jax.random.key(0),
                          checkpoint=tmp_path / "c.eqx")


def test_concatenate_pads_to_the_largest_set():
    a, _, _ = sf.datasets.moons(v_size=6, s_size=1, num_sets=2)
    b, _, _ = sf.datasets.moons(v_size=8, s_size=2, num_sets=3)
    c = sf.concatenate(a, b)
    assert c.items.shape == (5, 8, 2) and c.mask[:2, 6:].sum() == 0
    np.testing.assert_array_equal(c.target[2:], b.target)


@pytest.mark.slow
def test_no_recompilation_across_batches_or_epochs(data, caplog):
    """The training step compiles once: a first fit compiles it, a later 3-epoch fit with
    the same method and optimiser (new model values, new key) compiles nothing at all."""
    import logging

    train, val = data
    model, method = _setup()
    kw = dict(batch_size=8, optimizer=optax.adam(1e-3), progress=False, patience=100)

    def compiles(epochs, key):
        caplog.clear()
        with jax.log_compiles(), caplog.at_level(logging.WARNING):
            sf.fit(model, method, train, val, epochs=epochs, key=key, **kw)
        return [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]

    first = compiles(1, jax.random.key(6))
    assert any("train_step" in message for message in first), first
    assert compiles(3, jax.random.key(7)) == []
    assert sf.default_optimizer(1e-3) is sf.default_optimizer(0.001)


@pytest.mark.slow
def test_fit_reports_solves_that_did_not_converge(data, capsys):
    """One solver step cannot meet a 1e-7 tolerance: the epoch line shows the converged
    fractions and `fit` warns that the loss covers only the converged sets."""
    train, val = data
    model = sf.DeepSet(2, hidden=16, width=16, key=jax.random.key(0))
    method = sf.MeanField(sf.MonteCarlo(4), sf.NormScaling(),
                          optx.FixedPointIteration(1e-7, 1e-7), max_steps=1)
    with pytest.warns(RuntimeWarning, match="0% of the training solves converged"):
        result = sf.fit(model, method, train, val, key=jax.random.key(2), batch_size=8,
                        epochs=2, patience=100, optimizer=optax.adam(1e-3))
    assert [r["train_converged"] for r in result.history] == [0.0, 0.0]
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch")]
    assert len(lines) == 2
    assert all("converged 0.0% / 0.0% (train / val)" in x for x in lines)


def test_evaluate_reports_size_free_and_calibration_figures(data):
    """Every figure of `evaluate` is the metric of the solution it computes (one batch:
    the solve's key is fold_in(key, 0))."""
    _, val = data
    model, method = _setup()
    key = jax.random.key(6)
    scores = sf.evaluate(model, method, val, key=key, batch_size=len(val))
    items, mask, target = (jax.numpy.asarray(x) for x in (val.items, val.mask, val.target))
    psi = method(model, items, mask, key=jax.random.fold_in(key, 0)).psi
    k = target.sum(-1)
    expected = {
        "jaccard": 100 * sf.jaccard(sf.predict(psi, mask, k), target, mask).mean(),
        "jaccard_threshold": 100 * sf.jaccard(sf.predict_threshold(psi, mask), target,
                                              mask).mean(),
        "jaccard_size": 100 * sf.jaccard(sf.predict_size(psi, mask), target, mask).mean(),
        "jaccard_expected": 100 * sf.jaccard(sf.predict_expected_jaccard(psi, mask), target,
                                             mask).mean(),
        "brier": sf.brier_score(psi, target, mask).mean(),
        "ece": sf.expected_calibration_error(psi, target, mask),
        "size_error": sf.size_error(psi, target, mask).mean(),
        "max_deviation": abs(np.where(mask, psi - 0.5, 0)).max(),
    }
    for name, value in expected.items():
        assert np.isclose(scores[name], float(value), rtol=1e-5, atol=1e-7), name
    # Under NormScaling psi stays within sigma(2/n) - 1/2 of 1/2 (n = 20 here).
    assert scores["max_deviation"] <= float(jax.nn.sigmoid(2 / 20) - 0.5) + 1e-6


@pytest.mark.slow
def test_the_last_incomplete_batch_is_trained_on_unless_dropped(data):
    """32 training sets in batches of 10: 4 steps an epoch with `drop_last=False` (the
    published code's loaders), 3 with `drop_last=True`; counted by the optimiser."""
    train, val = data
    model, method = _setup()
    steps = []

    def count(updates, state, params=None):
        jax.debug.callback(lambda: steps.append(1))
        return updates, state

    counting = optax.chain(optax.GradientTransformation(lambda p: optax.EmptyState(),
                                                        count), optax.adam(1e-3))
    for drop_last, expected in ((False, 4), (True, 3)):
        steps.clear()
        sf.fit(model, method, train, val, key=jax.random.key(0), batch_size=10, epochs=1,
               optimizer=counting, drop_last=drop_last, progress=False)
        assert len(steps) == expected
    with pytest.raises(TypeError, match="drop_last"):
        sf.fit(model, method, train, val, key=jax.random.key(0), drop_last=1,
               progress=False)


def test_weight_decay_is_an_l2_penalty_before_adam():
    """As `torch.optim.Adam(weight_decay=wd)`: the penalty wd * theta joins the gradient
    before Adam's normalisation, so a parameter with zero gradient moves by about the
    learning rate on the first step (AdamW would move it by lr * wd * theta)."""
    params = {"w": np.array([2.0, -1.0]), "zero": np.array([2.0])}
    grads = {"w": np.array([0.5, 0.5]), "zero": np.array([0.0])}
    opt = sf.default_optimizer(1e-2, weight_decay=1e-5)
    updates, _ = opt.update(grads, opt.init(params), params)
    # In float32 (this module runs as users do), Adam's bias corrections round to a
    # relative ~7e-6 here.
    np.testing.assert_allclose(updates["zero"], [-1e-2 * 2e-5 / (2e-5 + 1e-8)], rtol=1e-4)
    no_clip = sf.default_optimizer(1e-2, clip=float("inf"))
    huge = {"w": np.array([1e6, 0.0]), "zero": np.array([0.0])}
    updates, _ = no_clip.update(huge, no_clip.init(params), params)
    np.testing.assert_allclose(updates["w"][0], -1e-2, rtol=1e-4)


def _leaves(tree):
    return jax.tree.leaves(eqx.filter(tree, eqx.is_array))


@pytest.mark.slow
def test_fit_takes_the_objective_apart_from_the_inference(data):
    """Inference and objective are separate values: `fit`'s default objective is the
    method's (the same run bit for bit when passed explicitly), and an objective can
    train with any inference. Here EquiVSet's inference trained on the mean-field
    likelihood alone moves the set function but leaves the recognition network as it
    was (the likelihood reaches it only through a stop-gradient), where its own ELBO
    objective moves both."""
    train, val = data
    model, method = _setup()
    kw = dict(key=jax.random.key(4), batch_size=8, epochs=1, optimizer=optax.adam(3e-3),
              progress=False)
    default = sf.fit(model, method, train, val, **kw)
    explicit = sf.fit(model, method, train, val, objective=sf.MeanFieldNLL(), **kw)
    assert default.history[0]["loss"] == explicit.history[0]["loss"]
    assert all(np.array_equal(a, b) for a, b in zip(_leaves(default.model),
                                                    _leaves(explicit.model)))

    k1, k2 = jax.random.split(jax.random.key(5))
    amortized = sf.AmortizedSetFunction(sf.DeepSet(2, hidden=8, width=8, key=k1),
                                        sf.RecognitionNetwork(2, hidden=8, width=8, key=k2))
    equivset = sf.equivset_ind(num_samples=3)

    def moved(result, part):
        return any(not np.array_equal(a, b) for a, b in zip(
            _leaves(getattr(amortized, part)), _leaves(getattr(result.model, part))))

    nll = sf.fit(amortized, equivset, train, val, objective=sf.MeanFieldNLL(), **kw)
    assert moved(nll, "set_function") and not moved(nll, "recognition")
    assert "val_neg_elbo" not in nll.history[0] and "neg_elbo" not in nll.history[0]
    elbo = sf.fit(amortized, equivset, train, val, **kw)
    assert moved(elbo, "set_function") and moved(elbo, "recognition")
    assert "neg_elbo" in elbo.history[0]
    with unchecked(), pytest.raises(TypeError, match="`objective` must be a setfix objective"):
        sf.fit(model, method, train, val, objective="nll", **kw)  # pyright: ignore
