"""The project's Hydra plugins (Hydra finds plugins only in the ``hydra_plugins`` namespace).

* ``launchers``: the submitit launchers whose preempted or timed-out jobs resume from their
  checkpoint when requeued (``hydra/launcher=slurm``, ``slurm_local``);
* ``optuna_sweeper``: an Optuna sweeper for a current Optuna (``hparams_search=optuna``).

Each module imports its optional dependency only if it is installed, so plugin discovery
never fails without the ``cluster`` or ``search`` extra.
"""
