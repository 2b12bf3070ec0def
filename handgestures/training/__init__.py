"""One training run: ``train(cfg)`` (:mod:`~handgestures.training.train`) and what it is made of.

Owns the LightningModule (:mod:`.module`), the callbacks that write epochs.csv and the
augmentation grid (:mod:`.callbacks`), the TensorBoard layout (:mod:`.tb_layout`), the
divergence and collapse guards (:mod:`.guards`), the check of a composed config before any
work (:mod:`.validate`), self-describing checkpoints and loading a trained module
(:mod:`.checkpoint`), and the console's noise filter (:mod:`.console`).

May import: :mod:`handgestures.data`, :mod:`handgestures.models`, :mod:`handgestures.runfolder`
and the shared leaves (errors, runtime, plots). Never :mod:`handgestures.launch`,
:mod:`handgestures.inference` or :mod:`handgestures.analysis`, which build on it.
"""
