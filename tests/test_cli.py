import subprocess
import sys


def test_demo_runs_and_learns():
    """The main job at a small size: it trains, reports every epoch and a final test
    Jaccard above chance (a random top-10 of 100 points scores about 5.6)."""
    out = subprocess.run(
        [sys.executable, "-m", "setfix", "demo", "--epochs", "1", "--train-sets", "64",
         "--test-sets", "32", "--batch-size", "32"],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("final test Jaccard:")
    assert float(last.split(":")[1]) > 20


def test_demo_rejects_bad_arguments():
    out = subprocess.run(
        [sys.executable, "-m", "setfix", "demo", "--batch-size", "0"],
        capture_output=True, text=True,
    )
    assert out.returncode == 2 and "--batch-size" in out.stderr
