"""`python eval.py ...`: see conf/eval.yaml and handgestures.inference.cli.run_eval."""

import hydra
from omegaconf import DictConfig

from handgestures.inference.cli import run_eval


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    code = run_eval(cfg)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
