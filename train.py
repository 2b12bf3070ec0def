"""Train one network of the study: `python train.py model=ivannet data=augmented`.

A thin Hydra wrapper around `handgestures.training.train.train`. In a multirun sweep a failed job
is recorded in its folder (failed.json) and the sweep goes on.
"""

import time

STARTED_AT = time.perf_counter()  # before the heavy imports, for the start-up time

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from handgestures.launch.help import maybe_print_help  # noqa: E402  (standard library only)

maybe_print_help(sys.argv, Path(__file__).resolve().parent / "conf")  # before torch: --help is instant

from handgestures.launch import threads  # noqa: E402

threads.at_process_start()  # OpenMP settings, before torch is imported

from handgestures.launch.ranks import torchrun_overrides  # noqa: E402

sys.argv += torchrun_overrides(sys.argv[1:])  # torchrun's ranks above 0 write no run folder

from handgestures.launch.outdir import check_output_folder  # noqa: E402  (standard library only)

check_output_folder(sys.argv[1:])  # an unwritable folder: one message, before Hydra creates it

from handgestures.launch.starting import say_loading_for_job  # noqa: E402  (standard library only)

say_loading_for_job("train", sys.argv[1:])  # the next imports take seconds: a line first

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from handgestures.launch.cli import run_job  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return run_job(cfg, STARTED_AT)


if __name__ == "__main__":
    main()
