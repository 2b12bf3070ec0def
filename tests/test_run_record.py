"""run_record: strict, atomic JSON and run-folder names that never collide."""

import json
import math
import subprocess
import sys

import pytest

from handgestures.runfolder import record as run_record
from handgestures.runfolder.record import dumps, read_json, write_json


def test_non_finite_numbers_become_null_and_the_text_is_strict_json(tmp_path):
    payload = {"loss": math.nan, "acc": [1.0, math.inf, -math.inf], "nested": {"x": (math.nan, 2)}, "ok": 0.5}
    path = write_json(tmp_path / "m.json", payload)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    strict = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))
    assert strict == {"loss": None, "acc": [1.0, None, None], "nested": {"x": [None, 2]}, "ok": 0.5}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_write_is_atomic_old_file_kept_when_serialising_fails(tmp_path):
    path = write_json(tmp_path / "m.json", {"status": "done"})
    with pytest.raises(TypeError):
        write_json(path, {"status": object()})
    assert read_json(path) == {"status": "done"}
    assert list(tmp_path.iterdir()) == [path]


def test_read_json_accepts_old_bare_nan(tmp_path):
    (tmp_path / "old.json").write_text('{"loss": NaN, "x": Infinity}')
    assert read_json(tmp_path / "old.json") == {"loss": None, "x": None}
    assert dumps({"a": math.nan}) == '{\n  "a": null\n}\n'


def test_stamp_is_stable_in_a_process_and_differs_between_processes():
    assert run_record.run_stamp() == run_record.run_stamp()
    code = "from handgestures.runfolder.record import run_stamp; print(run_stamp())"
    env = {k: v for k, v in __import__("os").environ.items() if k != "HANDGESTURES_RUN_STAMP"}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]  # fmt: skip
    stamps = [p.communicate()[0].strip() for p in procs]
    assert len(set(stamps)) == 4, stamps  # started within the same second, still four names
    assert all(len(s) == len("20260101-120000-123456") for s in stamps)


def test_a_child_of_the_launcher_inherits_its_stamp():
    """A joblib worker (a child process) must resolve its parent's sweep folder."""
    parent = run_record.run_stamp()
    code = "from handgestures.runfolder.record import run_stamp; print(run_stamp())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert child == parent


def test_epochs_csv_takes_new_columns_without_misplacing_a_value(tmp_path):
    """A run resumed with a callback added (scripts/ivannet_replay.py adds training health to older runs)."""
    from handgestures.analysis.runs import read_epochs
    from handgestures.training.callbacks import append_row

    path = tmp_path / "epochs.csv"
    append_row(path, {"epoch": 1, "train/loss": 1.7, "seconds": 9.0})
    append_row(path, {"epoch": 2, "train/loss": 1.5, "seconds": 8.0})
    append_row(path, {"epoch": 3, "train/loss": 1.2, "dead/conv1": 0.25, "seconds": 7.0})
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,train/loss,seconds,dead/conv1" and lines[1] == "1,1.7,9.0,"
    rows = read_epochs(path)
    assert [r["train/loss"] for r in rows] == [1.7, 1.5, 1.2] and [r["seconds"] for r in rows] == [9.0, 8.0, 7.0]
    assert rows[2]["dead/conv1"] == 0.25 and math.isnan(rows[0]["dead/conv1"])
