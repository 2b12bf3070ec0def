"""Reference baselines beside the networks: `python baselines.py data.root=... data.split=grouped`.

Writes one run folder per baseline (metrics.json as a trained run's, config.yaml, split.csv)
under the Hydra run folder; see conf/baselines.yaml and handgestures.analysis.baselines.
"""

from handgestures.analysis.baselines import main

if __name__ == "__main__":
    main()
