import json
import subprocess
import sys

import jax
import pytest

import setfix as sf
from setfix.experiments import Experiment, main, summarise


# The command line runs as users run it (float32, standard promotion).
pytestmark = pytest.mark.user_defaults


TINY = ["--epochs", "1", "--train-sets", "32", "--val-sets", "16", "--test-sets", "16",
        "--batch-size", "16", "--quiet"]


def _setfix(*args):
    return subprocess.run([sys.executable, "-m", "setfix", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_train_then_evaluate(tmp_path, capsys):
    """`setfix train` at a tiny size writes the run directory, and `setfix evaluate`
    re-reads it and reproduces the test Jaccard exactly (a random top-10 of 100 points
    scores about 5.6)."""
    out = tmp_path / "run"
    main(["train", *TINY, "--out", str(out)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("final test Jaccard:")
    score = float(last.split(":")[1])
    assert score > 20
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["method"] == "idiffmf" and len(results["history"]) == 1
    assert {"test_jaccard", "seconds_per_epoch", "best_epoch"} <= set(results)
    assert results["test_jaccard"] == pytest.approx(score, abs=0.005)
    main(["evaluate", str(out)])
    assert capsys.readouterr().out.startswith(f"test Jaccard: {score:.2f}")


@pytest.mark.slow
def test_no_command_is_train(tmp_path, capsys):
    main([*TINY, "--out", str(tmp_path / "r"), "--method", "diffmf"])
    assert "final test Jaccard" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "config.json").read_text())["method"] == "diffmf"


def test_a_run_directory_names_what_differs(tmp_path, capsys):
    """A run directory resumes only its own configuration, and the refusal names the
    fields that differ; a `--root` means nothing to moons, so it is not kept and does
    not stop a resume without it."""
    out = tmp_path / "run"
    main(["train", *TINY, "--out", str(out), "--root", str(tmp_path)])
    assert json.loads((out / "config.json").read_text())["root"] is None
    first = capsys.readouterr().out.strip().splitlines()[-1]
    main(["train", *TINY, "--out", str(out)])
    assert capsys.readouterr().out.strip().splitlines()[-1] == first
    # The finished run is read back: its one epoch counts in the total at its recorded time.
    results = json.loads((out / "results.json").read_text())
    assert results["resumed_epochs"] == 1
    assert results["total_seconds"] > results["history"][0]["seconds"]
    with pytest.raises(SystemExit, match="num_samples: 5 there, 3 here"):
        main(["train", *TINY, "--out", str(out), "--num-samples", "3"])


@pytest.mark.slow
def test_reproduce_prints_a_table(tmp_path, capsys):
    args = ["reproduce", "--datasets", "moons", "--methods", "diffmf,equivset_copula",
            "--seeds", "1", "--out", str(tmp_path), *TINY]
    main(args)
    out = capsys.readouterr().out
    assert "diffmf" in out and "equivset_copula" in out and "±" in out
    table = json.loads((tmp_path / "table.json").read_text())
    assert table["moons"]["equivset_copula"]["runs"] == 1
    assert "| equivset_copula |" in (tmp_path / "table.md").read_text()
    main(args)  # finished runs are read back, not repeated
    assert "done before" in capsys.readouterr().out


@pytest.mark.slow
def test_crossval_reports_the_chosen_rate(tmp_path, capsys):
    args = ["crossval", "--lrs", "1e-2,1e-3", "--folds", "2", "--out", str(tmp_path),
            *TINY]
    main(args)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[1].startswith("lr 0.01: val") and out[2].startswith("lr 0.001: val")
    results = json.loads((tmp_path / "results.json").read_text())
    assert out[-1] == (f"chosen lr {results['learning_rate']:g}: test Jaccard "
                       f"{results['test_mean']:.2f} ± {results['test_std']:.2f} over 2 folds")
    assert "learning_rate" not in results["config"] and results["folds"] == 2
    with pytest.raises(SystemExit, match="holds a run with a different configuration") as e:
        main([*args, "--num-samples", "3"])
    assert "num_samples: 5 there, 3 here" in str(e.value)
    # A directory written before a configuration field existed still matches.
    record = json.loads((tmp_path / "config.json").read_text())
    del record["config"]["encoder"]
    (tmp_path / "config.json").write_text(json.dumps(record))
    main(args)
    assert capsys.readouterr().out.strip().splitlines()[-1] == out[-1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["train", "--dataset", "amazon:toys"], "(--root PATH)"),
        (["train", "--dataset", "amazon:shoes", "--root", "."], "amazon:<category>"),
        (["train", "--dataset", "amazon:toys", "--root", "/no/such"], "does not exist"),
        (["reproduce", "--datasets", "moons,celeba"], "(--root PATH)"),
        (["train", "--method", "magic"], "--method"),
        (["train", "--lr", "-1e-3"], "--lr"),
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--max-steps", "0"], "--max-steps"),
        (["reproduce", "--methods", "idiffmf,magic"], "magic"),
        (["evaluate", "/no/such/run"], "does not exist"),
        (["crossval", "--lrs", "1e-3,x"], "--lrs"),
        (["crossval", "--lrs", "0"], "--lrs"),
    ],
)
def test_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as error:
        main(args)
    text = capsys.readouterr().err + str(error.value.code)
    assert error.value.code != 0 and message in text


def test_entry_point_runs_as_a_module():
    out = _setfix("--help")
    assert out.returncode == 0 and "reproduce" in out.stdout


def test_summary_times_an_epoch_by_its_median():
    """An epoch's time is the median over the run, so that the compilation in the
    first epoch (and again after a resume) does not count; runs without a history keep
    their recorded figure."""
    config = Experiment(dataset="moons", method="idiffmf").to_json()
    with_history = {"config": config, "test_jaccard": 60.0, "epochs_run": 4,
                    "seconds_per_epoch": 30.0,
                    "history": [{"train_seconds": t} for t in (90.0, 20.0, 22.0, 21.0)]}
    without = {"config": config, "test_jaccard": 58.0, "epochs_run": 4,
               "seconds_per_epoch": 25.0}
    cell = summarise([with_history, without])["moons"]["idiffmf-fro"]
    assert cell["seconds_per_epoch"] == pytest.approx((21.5 + 25.0) / 2)
    assert cell["mean"] == pytest.approx(59.0) and cell["runs"] == 2


@pytest.mark.slow
def test_train_certified_on_an_interaction_task(tmp_path, capsys):
    """`--energy smooth --scaling certified` on the substitutes task: every solve
    converges, the run is labelled, and the size-free and calibration figures are
    printed and recorded; the certified scaling without the smooth energy is refused."""
    out = tmp_path / "run"
    main(["train", *TINY, "--dataset", "substitutes", "--energy", "smooth",
          "--scaling", "certified", "--lr", "1e-3", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "substitutes-idiffmf-certified-smooth-s0" in printed
    assert "size-free test Jaccard" in printed and "ECE" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["test_converged"] == 1 and results["history"][0]["train_converged"] == 1
    assert 0 <= results["test_scores"]["jaccard_threshold"] <= 100
    assert 0 <= results["test_scores"]["jaccard_expected"] <= 100
    assert "most expected Jaccard" in printed
    for scaling in ("certified", "certified-interactions"):
        with pytest.raises(SystemExit, match="energy"):
            main(["train", *TINY, "--dataset", "substitutes", "--scaling", scaling,
                  "--out", str(tmp_path / "bad")])


def test_the_certified_scalings_by_name():
    """`--scaling certified-interactions` is `CertifiedScaling(omega,
    interactions_only=True)`, labelled apart from `certified`."""
    from setfix.experiments import build_method, Experiment

    for name, only in (("certified", False), ("certified-interactions", True)):
        config = Experiment(dataset="substitutes", root=None, energy="smooth",
                            scaling=name, omega=0.8)
        scaling = build_method(config).scaling
        assert scaling == sf.CertifiedScaling(0.8, interactions_only=only)
        assert f"-idiffmf-{name}-smooth-" in config.name


def test_the_method_options_build_the_published_baselines():
    """By default EquiVSet_copula has the published noise and DiffMF fresh draws per
    item and step; `--copula standardised` and `--draws shared` are labelled variants,
    and each option means nothing to the other methods."""
    from setfix.experiments import build_method, Experiment

    default = Experiment(method="equivset_copula")
    assert default.label == "equivset_copula"
    assert not build_method(default).objective.noise.standardise
    standard = Experiment(method="equivset_copula", copula="standardised")
    assert standard.label == "equivset_copula-standardised"
    assert build_method(standard).objective.noise.standardise
    assert Experiment(method="diffmf", copula="standardised").copula == "published"
    with pytest.raises(ValueError, match="unknown copula 'raw'"):
        Experiment(method="equivset_copula", copula="raw")

    fresh = build_method(Experiment(method="diffmf"))
    assert fresh.redraw and fresh.estimator.per_coordinate
    shared = Experiment(method="diffmf", draws="shared")
    assert shared.label == "diffmf-shared"
    assert not build_method(shared).redraw
    assert not build_method(shared).estimator.per_coordinate
    assert Experiment(method="idiffmf", draws="shared").draws == "fresh"
    with pytest.raises(ValueError, match="unknown draws 'some'"):
        Experiment(method="diffmf", draws="some")


def test_configurations_of_earlier_versions_are_refused_with_how_to_rerun(tmp_path):
    """A config.json written before `copula`, `draws` and `drop_last` existed (when runs
    had standardised copula noise, shared DiffMF draws and dropped the last batch) is
    refused with those values; with them added it reads as that run. The defaults are
    the published code's."""
    from setfix.experiments import Experiment, load_run

    fields = Experiment().to_json()
    old = {k: v for k, v in fields.items() if k not in ("copula", "draws", "drop_last")}
    with pytest.raises(ValueError, match=r"earlier setfix and lacks \['copula', 'draws', "
                       r"'drop_last'\].*rerun the experiment.*\"copula\": \"standardised\""):
        Experiment.from_json(old)
    (tmp_path / "config.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="config.json` is not a valid setfix configuration "
                       r"\(the configuration was saved by an earlier setfix"):
        load_run(tmp_path)
    earlier = {"copula": "standardised", "draws": "shared", "drop_last": True}
    for method, label in (("equivset_copula", "equivset_copula-standardised"),
                          ("diffmf", "diffmf-shared"), ("idiffmf", "idiffmf-fro")):
        config = Experiment.from_json({**old, **earlier, "method": method})
        assert config.label == label and config.drop_last
    new = Experiment()
    assert (new.patience, new.weight_decay, new.drop_last) == (7, 1e-5, False)
    assert Experiment.from_json(new.to_json()) == new


def test_cli_options_reach_the_configuration(tmp_path):
    """`--draws`, `--copula`, `--features` and `--drop-last` are parsed into the
    configuration (`--features` for Amazon data only)."""
    from setfix.experiments._cli import _config, _parser

    args = _parser().parse_args(["train", "--dataset", "amazon:media", "--root",
                                 str(tmp_path), "--features", "pickle", "--drop-last",
                                 "--method", "diffmf", "--draws", "shared"])
    config = _config(args, args.dataset, args.method, args.seed)
    assert (config.features, config.drop_last, config.draws) == ("pickle", True, "shared")
    assert config.label == "diffmf-shared-pickle"
    args = _parser().parse_args(["train", "--features", "pickle"])
    assert _config(args, args.dataset, args.method, args.seed).features == "names"


def test_energies_by_name(tmp_path):
    """`--energy` builds each energy (smooth ones certified-capable); EquiVSet, whose
    recognition network amortises a pooled energy, refuses the ground-set-aware ones
    with a message naming the flag."""
    from setfix.experiments import build_model, Experiment

    want = {"deepset": (sf.DeepSet, False), "smooth": (sf.DeepSet, True),
            "superset": (sf.SupersetDeepSet, False),
            "superset-smooth": (sf.SupersetDeepSet, True),
            "attention": (sf.AttentionSet, False),
            "attention-smooth": (sf.AttentionSet, True)}
    for energy, (cls, smooth) in want.items():
        config = Experiment(energy=energy, scaling="certified" if smooth else "fro")
        model = build_model(config, 2, jax.random.key(0))
        assert type(model) is cls and model.smooth == smooth
        assert config.label.endswith(energy) or energy == "deepset"
    with pytest.raises(SystemExit, match=r"`energy` \(--energy\) must be one of deepset, smooth"):
        main(["train", *TINY, "--method", "equivset_copula", "--energy", "superset",
              "--out", str(tmp_path / "bad")])


@pytest.mark.slow
def test_train_with_an_attention_energy(tmp_path, capsys):
    """`--energy attention` trains, is labelled, and its run reloads for evaluation."""
    out = tmp_path / "run"
    main(["train", *TINY, "--energy", "attention", "--out", str(out)])
    assert "moons-idiffmf-fro-attention-s0" in capsys.readouterr().out
    main(["evaluate", str(out)])
    assert "test Jaccard" in capsys.readouterr().out
