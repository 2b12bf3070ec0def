"""`python predict.py ...`: see conf/predict.yaml and handgestures.inference.cli.run_predict."""

import hydra
from omegaconf import DictConfig

from handgestures.inference.cli import run_predict


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    code = run_predict(cfg)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
