"""``handgestures <command> [ARGS ...]``: one command for every step, beside the scripts.

Each command takes exactly the arguments of its script or console script and runs the same
code: ``handgestures train ...`` is ``python train.py ...``, ``handgestures eval ...`` is
``python eval.py ...`` or ``handgestures-eval ...``, and so on. ``handgestures --help`` lists
the commands; ``handgestures COMMAND --help`` is that command's own help. This module imports
only the standard library until a command runs, so the help is instant.
"""

from __future__ import annotations

import difflib
import importlib
import sys
import time

from handgestures.errors import EXIT_USAGE  # the standard library only: the help stays instant

PROG = "handgestures"

# command -> (entry point "module:function", how it takes its arguments, one line of help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("handgestures.launch.main:run_train", "argv", "train one network, cross-evaluate its best checkpoint (python train.py)"),
    "eval": ("handgestures.inference.cli:evaluate", "hydra", "evaluate a run, checkpoint, model folder or ONNX file on a data folder (python eval.py)"),
    "predict": ("handgestures.inference.cli:predict", "hydra", "fingers counted in images or a folder of them (python predict.py)"),
    "export": ("handgestures.inference.cli:export", "hydra", "a run's network as ONNX (checked in onnxruntime) or a hub-ready model folder (python export.py)"),
    "demo": ("handgestures.inference.cli:demo", "hydra", "a browser demo of a trained model (gradio; the demo extra)"),
    "report": ("handgestures.analysis.report:main", "argv", "the study's tables, figures and CSVs from a folder of runs"),
    "leakage": ("handgestures.analysis.leakage:main", "argv", "near-duplicate images across a split, and the grouped split"),
    "baselines": ("handgestures.analysis.baselines:main", "hydra", "reference baselines, evaluated like a run (python baselines.py)"),
}  # fmt: skip


def usage() -> str:
    lines = [
        f"usage: {PROG} <command> [ARGS ...]",
        "",
        "Counting raised fingers with CarlosNet and IvanNet (the Keras study, in Lightning + Hydra).",
        "",
        "commands:",
        *(f"  {name:<10} {text}" for name, (_, _, text) in COMMANDS.items()),
        "",
        f"Each command takes the arguments of its script: `{PROG} train model=ivannet data=augmented`,",
        f"`{PROG} eval ckpt=outputs/runs/RUN`. `{PROG} COMMAND --help`: that command's own help.",
    ]
    return "\n".join(lines)


def run_train(argv: list[str]) -> None:
    """``python train.py ARGS``, from the package: the same steps in the same order."""
    started_at = time.perf_counter()
    from handgestures import CONF_DIR  # reason: standard library only until the help is printed
    from handgestures.launch.help import maybe_print_help  # reason: standard library only

    maybe_print_help([f"{PROG} train", *argv], CONF_DIR)  # before torch: --help is instant
    from handgestures.launch import threads  # reason: OpenMP settings before torch is imported

    threads.at_process_start()
    from handgestures.launch.ranks import torchrun_overrides  # reason: after the thread settings

    argv = [*argv, *torchrun_overrides(argv)]
    from handgestures.launch.outdir import check_output_folder  # reason: standard library only
    from handgestures.launch.starting import say_loading_for_job  # reason: standard library only

    check_output_folder(argv)  # an unwritable folder: one message, before Hydra creates it
    say_loading_for_job(f"{PROG} train", argv)  # the next imports take seconds: a line first
    if not any(a.startswith("hydra.job.name=") for a in argv):
        argv.append("hydra.job.name=train")  # the run's log is train.log, as with train.py
    import hydra  # after the help and the thread settings above
    from omegaconf import DictConfig

    from handgestures.launch.cli import run_job  # reason: torch and Lightning, after the settings above

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
    def _main(cfg: DictConfig) -> float:
        return run_job(cfg, started_at)

    sys.argv = [f"{PROG} train", *argv]
    _main()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        raise SystemExit(0 if argv else EXIT_USAGE)
    if argv[0] == "--version":
        from handgestures import __version__  # reason: the package's version, nothing heavy

        print(f"{PROG} {__version__}")
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"{PROG}: unknown command {command!r}{hint}; commands: {', '.join(COMMANDS)}\n"
              f"`{PROG} --help` describes them.", file=sys.stderr)  # fmt: skip
        raise SystemExit(EXIT_USAGE)
    target, style, _ = COMMANDS[command]
    module, function = target.split(":")
    entry = getattr(importlib.import_module(module), function)
    if style == "argv":
        code = entry(rest)
    else:  # a Hydra entry reads sys.argv; its program name says which command it is
        sys.argv = [f"{PROG} {command}", *rest]
        code = entry()
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
