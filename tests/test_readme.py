"""The README is a guide: short, links that resolve, the quick start CI runs, and a results table that agrees with results/."""

import importlib.util
import re

import pytest
from helpers import ROOT

README = (ROOT / "README.md").read_text()
MAX_LINES = 160


def readme_table_module():
    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "scripts" / "readme_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_a_short_guide_with_no_path_outside_the_repository():
    assert len(README.splitlines()) <= MAX_LINES
    for banned in ("../shared", "/work/", "sitting", "STUDY.md", "KERAS_SEMANTICS"):
        assert banned not in README, banned
    assert "https://www.kaggle.com/datasets/koryakinp/fingers" in README
    assert "--index-url https://download.pytorch.org/whl/cpu" in README
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    assert headings == ["Install", "Quick start", "Using it", "Outputs", "Reproducing the study", "Performance",
                        "Layout", "Development"]  # fmt: skip


def test_every_relative_link_resolves_inside_the_repository():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith("http")]
    assert local, "no links to docs/"
    for link in local:
        assert (ROOT / link).resolve().is_relative_to(ROOT) and (ROOT / link).exists(), link


def test_quick_start_is_two_commands_and_ci_runs_the_same_install_and_tests():
    """The first installs only the package and trains; the second installs the tests' needs, as CI does, and tests."""
    section = README[README.index("## Quick start") : README.index("## Using it")]
    commands = re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    ci = [line.split("  #")[0].strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    (install,) = [line for line in ci if line.startswith("pip install")]  # CI installs as the quick start says
    assert commands[0].endswith("pip install -e . && python train.py") and "[" not in commands[0]  # no extras
    assert commands[1].endswith(f"{install} && python -m pytest -q") and "python -m pytest -q" in ci
    assert "ruff check ." in ci and "ruff format --check ." in ci


def test_results_table_agrees_with_results_csv():
    module = readme_table_module()
    rows = module.rows_from_csv()
    if not rows:
        missing = [str(p.relative_to(ROOT)) for p in module.TABLE_FILES.values() if not p.is_file()]
        pytest.skip(f"results/ holds no study CSV yet ({', '.join(missing)}): put the real-data report there "
                    "(results/README.md), then run `python scripts/readme_table.py --write`")  # fmt: skip
    assert module.table_in(README) == module.generated()
