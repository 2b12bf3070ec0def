"""The console: the project's own --help before any heavy import, framework noise off, progress while generating."""

import logging
import subprocess
import sys
import warnings

import yaml
from helpers import ROOT

from handgestures.data.hands import generate_hands
from handgestures.training.console import quiet_framework_noise

PROBE = """
import runpy, sys
sys.argv = ["train.py", "--help"]
try:
    runpy.run_path("train.py", run_name="__main__")
except SystemExit as stop:
    code = stop.code
print("EXIT", code, "HEAVY", sorted(m for m in ("torch", "lightning", "hydra") if m in sys.modules))
"""


def test_help_is_the_projects_own_and_imports_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("EXIT 0 HEAVY []")
    text = out.stdout
    assert text.startswith("usage: python train.py") and "examples:" in text
    assert "  model: carlosnet*, ivannet" in text and "  data: augmented, base*" in text
    assert "  experiment: cv, study" in text and "  logger: csv, many, mlflow, none, tensorboard*, wandb" in text
    assert "seed=0" in text and "Powered by Hydra" not in text
    epochs = {
        v: yaml.safe_load((ROOT / "conf" / "data" / f"{v}.yaml").read_text())["epochs"] for v in ("base", "augmented")
    }
    assert f"the base data ({epochs['base']} epochs)" in text and f"training ({epochs['augmented']} epochs)" in text
    assert f"set by the data variant (base {epochs['base']}, augmented {epochs['augmented']})" in text


def test_help_lists_every_config_group_and_choice():
    text = subprocess.run([sys.executable, "train.py", "-h"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120).stdout  # fmt: skip
    for group in (ROOT / "conf").iterdir():
        if group.is_dir() and group.name not in ("hydra", "paths"):
            line = next(x for x in text.splitlines() if x.startswith(f"  {group.name}: "))
            assert {c.rstrip("*") for c in line.split(": ", 1)[1].split(", ")} == {f.stem for f in group.glob("*.yaml")}


def test_framework_noise_is_dropped_and_the_rest_kept(caplog):
    quiet_framework_noise()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        quiet_framework_noise()  # after simplefilter: its filters come first again
        warnings.warn(
            "Precision bf16-mixed is not supported by the model summary.  Estimated ...", UserWarning, stacklevel=1
        )
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("something the user should see", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["something the user should see"]
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO):
        rank_zero.info("💡 Tip: For seamless cloud logging ... litlogger ...")
        rank_zero.info("GPU available: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False"]


def test_generation_reports_progress_and_threads_do_not_change_the_images():
    import torch

    done = []
    images, labels, _ = generate_hands(72, seed=3, progress=done.append)
    assert done == [64, 8] and sum(done) == 72
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        again, labels_again, _ = generate_hands(72, seed=3)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(images, again) and torch.equal(labels, labels_again)
    assert torch.get_num_threads() == threads  # restored after the side-by-side rendering
