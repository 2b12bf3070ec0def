"""The Hydra sweeper of ``hparams_search=optuna``: trials of a current Optuna, run by any launcher.

The logic is in :mod:`handgestures.launch.search`; this class only plugs it into Hydra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig


class OptunaJournalSweeper(Sweeper):
    """Asks Optuna for ``n_jobs`` trials at a time and launches them as jobs; the study persists."""

    def __init__(self, study_name: str, direction: str = "maximize", n_trials: int = 20, n_jobs: int = 1,
                 seed: int | None = None, params: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.study_name, self.direction, self.n_trials, self.n_jobs = study_name, direction, n_trials, n_jobs
        self.seed, self.params = seed, dict(params or {})
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from handgestures.launch.search import run_search

        assert self.config is not None
        return run_search(self.launcher, Path(str(self.config.hydra.sweep.dir)), arguments, self.params,
                          self.study_name, self.direction, int(self.n_trials), int(self.n_jobs), self.seed)  # fmt: skip
