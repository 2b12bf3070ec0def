"""Processes: from a command line to the jobs that train.

Owns the Hydra entry of ``train.py`` (:mod:`.cli`: one job, a sweep going past a failed
job), the ``handgestures <command>`` console script (:mod:`.main`), what one process does in a job (:mod:`.job`), ranks and the launches that are refused
(:mod:`.ranks`), the DDP launcher of ``trainer=ddp_launch`` (:mod:`.ddp`), thread counts
(:mod:`.threads`), the instant ``--help`` (:mod:`.help`), the sweep's summary of failed jobs
(:mod:`.sweep`) and the Optuna search (:mod:`.search`).

May import every other part of the package (data, models, runfolder, training, analysis,
inference and the shared leaves); nothing in the package imports it (the root scripts and
the Hydra plugins do).
"""
