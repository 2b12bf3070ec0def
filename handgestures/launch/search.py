"""Hyperparameter search with a current Optuna: `python train.py -m hparams_search=optuna`.

Each trial is one job of the Hydra launcher in use (the basic one, joblib, submitit), with
the trial's parameters as overrides; its value is what the job returns, the best-checkpoint
validation accuracy (``handgestures.launch.cli.run_job``). The study lives in an Optuna journal
file in the sweep folder (``optuna.journal``: append-only, no database needed), so running
the same command again continues the search: finished trials count, a trial that was
running when the search was killed is marked failed and its parameters are tried again
first. Why not hydra-optuna-sweeper: docs/cluster.md ("Hyperparameter search").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

log = logging.getLogger(__name__)

JOURNAL_FILE = "optuna.journal"
RESULTS_FILE = "optimization_results.yaml"
INTERRUPTED = "interrupted"  # user attribute of a trial found running when the search started again


def distribution(key: str, value: str) -> Any:
    """An Optuna distribution from a Hydra sweep expression, or None for a fixed value.

    ``interval(a, b)`` (floats, uniform), ``tag(log, interval(a, b))`` (floats, log scale),
    ``choice(x, y, ...)`` (categorical), ``range(a, b[, step])`` (integers, b excluded, as
    Hydra's range).
    """
    import optuna.distributions as d  # the search extra: only for hparams_search=optuna
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Sweep

    parsed = OverridesParser.create().parse_override(f"{key}={value}").value()
    if isinstance(parsed, ChoiceSweep):
        return d.CategoricalDistribution(list(parsed.list))
    if isinstance(parsed, IntervalSweep):
        return d.FloatDistribution(float(parsed.start), float(parsed.end), log="log" in parsed.tags)
    if isinstance(parsed, RangeSweep):
        step = int(parsed.step or 1)
        return d.IntDistribution(int(parsed.start), int(parsed.stop) - step, step=step)
    if isinstance(parsed, Sweep):
        raise ValueError(f"hydra.sweeper.params.{key}={value}: expected interval(...), choice(...) or range(...)")
    return None


def search_space(params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(distributions by key, fixed overrides) of ``hydra.sweeper.params``."""
    space, fixed = {}, []
    for key, value in params.items():
        dist = distribution(key, str(value))
        if dist is None:
            fixed.append(f"{key}={value}")
        else:
            space[key] = dist
    if not space:
        raise ValueError("hydra.sweeper.params has nothing to search: give interval(...), choice(...) or range(...)")
    return space, fixed


def open_study(sweep_dir: Path, study_name: str, direction: str, seed: int | None) -> Any:
    import optuna  # the search extra: only for hparams_search=optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    sweep_dir.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / JOURNAL_FILE)))
    sampler = optuna.samplers.TPESampler(seed=seed)
    return optuna.create_study(study_name=study_name, storage=storage, sampler=sampler, direction=direction,
                               load_if_exists=True)  # fmt: skip


def recover_interrupted(study: Any) -> int:
    """Trials left running by a killed search: marked failed (``interrupted``), their parameters queued again."""
    from optuna.trial import TrialState  # the search extra (as above)

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
        log.warning("trial %d was running when the search stopped: its parameters %s are tried again",
                    trial.number, trial.params)  # fmt: skip
    return len(stale)


def finished_trials(study: Any) -> int:
    """Trials that count towards n_trials: complete, or failed on their own (not interrupted)."""
    from optuna.trial import TrialState  # the search extra (as above)

    states = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
    return sum(1 for t in study.get_trials(deepcopy=False, states=states) if not t.user_attrs.get(INTERRUPTED))


def job_value(job_return: Any) -> float:
    """The job's returned value; NaN for a failed job (its folder says why)."""
    try:
        value = job_return.return_value
    except Exception as err:  # the job raised: Hydra re-raises it here
        log.error("trial job failed: %s", err)
        return math.nan
    return float(value) if value is not None else math.nan


def run_search(launcher: Any, sweep_dir: Path, arguments: Sequence[str], params: Mapping[str, Any], study_name: str,
               direction: str, n_trials: int, n_jobs: int, seed: int | None) -> Any:  # fmt: skip
    """Runs trials until ``n_trials`` have finished, ``n_jobs`` at a time; returns the study."""
    from optuna.trial import TrialState  # the search extra (as above)

    if n_trials < 1 or n_jobs < 1:
        raise ValueError(f"hydra.sweeper.n_trials={n_trials}, n_jobs={n_jobs}: both must be at least 1")
    space, fixed = search_space(params)
    study = open_study(sweep_dir, study_name, direction, seed)
    recover_interrupted(study)
    done = finished_trials(study)
    log.info("Optuna study %r in %s: %d of %d trials finished", study_name, sweep_dir / JOURNAL_FILE, done, n_trials)
    while done < n_trials:
        trials = [study.ask(space) for _ in range(min(n_jobs, n_trials - done))]
        overrides = [[*arguments, *fixed, *(f"{k}={v}" for k, v in t.params.items())] for t in trials]
        returns = launcher.launch(overrides, initial_job_idx=trials[0].number)  # job number = trial number
        for trial, job_return in zip(trials, returns):
            value = job_value(job_return)
            if math.isfinite(value):
                study.tell(trial, value)
            else:
                study.tell(trial, state=TrialState.FAIL)
        done += len(trials)
    write_results(study, sweep_dir / RESULTS_FILE)
    return study


def write_results(study: Any, path: Path) -> None:
    """The best trial and every trial's parameters and value, as YAML next to the journal."""
    from optuna.trial import TrialState  # the search extra (as above)

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value if study.direction.name == "MAXIMIZE" else -t.value, default=None)
    results = {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "best": {"trial": best.number, "value": best.value, "params": best.params} if best else None,
        "trials": [
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "params": t.params,
                **({INTERRUPTED: True} if t.user_attrs.get(INTERRUPTED) else {}),
            }
            for t in study.get_trials(deepcopy=False)
        ],  # fmt: skip
    }
    OmegaConf.save(OmegaConf.create(results), path)
    if best is not None:
        log.info("best trial %d: %s = %.4f with %s (%s)", best.number, "val/acc", best.value, best.params, path)
