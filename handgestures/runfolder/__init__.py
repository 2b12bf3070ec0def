"""A run's folder: what is written there, who may write it, and reading it back.

Owns metrics.json's schema and strict JSON writing (:mod:`.record`), the folder's lifecycle:
run.lock, SIGINT/SIGTERM, the records of a run that stopped (:mod:`.lifecycle`), resuming a
run exactly (:mod:`.resume`), reading a saved config.yaml written by older code or from a
moved folder (:mod:`.legacy`), finding and safely loading a run's checkpoints
(:mod:`.checkpoints`), how its training went from its epochs.csv (:mod:`.stability`: the
largest dip, the epochs whose training loss jumped), and the model card (:mod:`.card`).

May import: :mod:`handgestures.models` (the card counts parameters), :mod:`handgestures.data`
and the shared leaves. Never :mod:`handgestures.training` or anything above it.
"""
