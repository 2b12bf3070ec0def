"""Finished runs: the study's grid, reading run folders, statistics, the report, leakage, baselines.

Owns the study's grid and the slides' numbers (:mod:`.study`), reading a folder of runs
(:mod:`.runs`), means, intervals and paired differences (:mod:`.stats`), the report
(:mod:`.report`, ``handgestures-report``), the near-duplicate analysis (:mod:`.leakage`,
``handgestures-leakage``) and the reference baselines (:mod:`.baselines`,
``handgestures-baselines``).

May import: :mod:`handgestures.data`, :mod:`handgestures.models`, :mod:`handgestures.runfolder`,
:mod:`handgestures.training` and the shared leaves. Never :mod:`handgestures.launch`.
"""
