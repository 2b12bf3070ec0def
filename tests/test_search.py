"""`-m hparams_search=optuna`: 3 trials on tiny data, the search killed during its second trial and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT
from omegaconf import OmegaConf

optuna = pytest.importorskip("optuna", reason="the search extra is not installed")

from handgestures.launch.search import INTERRUPTED, JOURNAL_FILE, RESULTS_FILE, distribution, search_space  # noqa: E402

TINY = [
    "hparams_search=optuna", "hydra.sweeper.n_trials=3", "epochs=1", "data.builtin_size=240",
    "data.eval_batch_size=64", "trainer.limit_train_batches=2", "trainer.precision=32-true", "logger=none",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
]  # fmt: skip


def search_command(sweep_dir):
    return [sys.executable, "train.py", "-m", *TINY, f"hydra.sweep.dir={sweep_dir}"]


def env(tmp_path_factory):
    return {**os.environ, "HANDGESTURES_CACHE": str(tmp_path_factory.getbasetemp() / "cache")}


def trials(sweep_dir):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(sweep_dir / JOURNAL_FILE)))
    return optuna.load_study(study_name="carlosnet-base", storage=storage).get_trials()


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """The search SIGKILLed once trial 0 is told and trial 1 has started, then the same command again."""
    sweep_dir = tmp_path_factory.mktemp("search")
    proc = subprocess.Popen(search_command(sweep_dir), cwd=ROOT, env=env(tmp_path_factory), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if any(t.number == 1 for t in trials(sweep_dir)):
                    break
            except (FileNotFoundError, KeyError):  # the journal or the study is not written yet
                pass
            time.sleep(0.2)
        assert proc.poll() is None, "the search ended before it could be killed"
        assert len(trials(sweep_dir)) == 2, "trial 1 should have been asked"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {t.number: t.state.name for t in trials(sweep_dir)}
    first_metrics = sweep_dir / "carlosnet-base-seed0-job0" / "metrics.json"
    first_mtime = first_metrics.stat().st_mtime_ns
    out = subprocess.run(search_command(sweep_dir), cwd=ROOT, env=env(tmp_path_factory), capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return sweep_dir, before, first_metrics, first_mtime, out


def test_killed_search_resumes_to_three_finished_trials(killed_and_resumed):
    sweep_dir, before, first_metrics, first_mtime, out = killed_and_resumed
    assert before == {0: "COMPLETE", 1: "RUNNING"}
    after = trials(sweep_dir)
    complete = [t for t in after if t.state.name == "COMPLETE"]
    assert len(complete) == 3 and len(after) == 4  # the interrupted trial failed and was asked again
    interrupted = after[1]
    assert interrupted.state.name == "FAIL" and interrupted.user_attrs[INTERRUPTED]
    assert after[2].params == interrupted.params  # its parameters came first
    assert first_metrics.stat().st_mtime_ns == first_mtime  # trial 0 was not run again
    assert "1 of 3 trials finished" in out.stdout + out.stderr


def test_each_trial_ran_with_its_parameters_and_returned_val_acc(killed_and_resumed):
    sweep_dir, *_ = killed_and_resumed
    for trial in trials(sweep_dir):
        if trial.state.name != "COMPLETE":
            continue
        folder = sweep_dir / f"carlosnet-base-seed0-job{trial.number}"
        config = OmegaConf.load(folder / "config.yaml")
        assert config.optimizer.lr == trial.params["optimizer.lr"]
        assert config.optimizer.momentum == trial.params["optimizer.momentum"]
        assert config.batch_size == trial.params["batch_size"]
        metrics = json.loads((folder / "metrics.json").read_text())
        assert trial.value == pytest.approx(metrics["metrics"]["val/acc"])


def test_results_name_the_best_trial(killed_and_resumed):
    sweep_dir, *_ = killed_and_resumed
    results = OmegaConf.to_container(OmegaConf.load(sweep_dir / RESULTS_FILE))
    complete = [t for t in trials(sweep_dir) if t.state.name == "COMPLETE"]
    assert results["best"]["value"] == max(t.value for t in complete)
    assert results["best"]["params"] == next(t for t in complete if t.number == results["best"]["trial"]).params
    assert [t["trial"] for t in results["trials"]] == [0, 1, 2, 3] and results["trials"][1][INTERRUPTED]


def test_search_space_from_hydra_sweep_expressions():
    d = optuna.distributions
    space, fixed = search_space({"lr": "tag(log, interval(0.001, 0.3))", "m": "interval(0.0, 0.9)",
                                 "batch_size": "choice(16, 32)", "depth": "range(1, 4)", "seed": "3"})  # fmt: skip
    assert space["lr"] == d.FloatDistribution(0.001, 0.3, log=True)
    assert space["m"] == d.FloatDistribution(0.0, 0.9)
    assert space["batch_size"] == d.CategoricalDistribution([16, 32])
    assert space["depth"] == d.IntDistribution(1, 3)
    assert fixed == ["seed=3"]
    assert distribution("x", "interval(1, 5)") == d.FloatDistribution(1.0, 5.0)  # Hydra's intervals are floats
    assert distribution("x", "range(0, 10, 5)") == d.IntDistribution(0, 5, step=5)
    with pytest.raises(ValueError, match="nothing to search"):
        search_space({"seed": "1"})
