"""A run's training, read from epochs.csv: the largest validation dip, the epochs whose training loss jumped, recovery."""

from handgestures.runfolder.stability import (
    climbed_back,
    jumps_text,
    largest_dip,
    last_fall,
    loss_jumps,
    read_columns,
    recovery,
)


def test_read_columns_keeps_the_rows_that_have_every_column(tmp_path):
    path = tmp_path / "epochs.csv"
    # a row written before a column existed (an older header) has it empty: left out, not read as 0
    path.write_text("epoch,train/loss,val/acc\n1,1.79,0.2\n2,1.70,\n3,0.9,0.8\n")
    assert read_columns(path, "train/loss", "val/acc") == [(1, 1.79, 0.2), (3, 0.9, 0.8)]
    assert read_columns(path, "train/loss") == [(1, 1.79), (2, 1.70), (3, 0.9)]
    assert read_columns(tmp_path / "missing.csv", "val/acc") == []


def test_the_largest_dip_is_the_largest_fall_from_one_epoch_to_the_next():
    values = [(1, 0.4), (2, 0.9), (3, 0.6), (4, 0.95), (5, 0.5), (6, 0.7)]
    assert largest_dip(values) == (5, 0.95, 0.5)
    assert largest_dip([(1, 0.2), (2, 0.5)]) is None


def test_a_jump_is_a_rise_to_one_and_a_half_times_the_epoch_before():
    losses = [(1, 1.7925), (2, 1.80), (3, 0.16), (4, 0.38), (5, 0.20), (6, 0.29), (7, 0.05), (8, 0.08)]
    # the plateau's wobble (1.7925 -> 1.80) and x1.45 (0.20 -> 0.29) are not jumps; x2.4 and x1.6 are
    assert loss_jumps(losses) == [(4, 0.16, 0.38), (8, 0.05, 0.08)]
    assert loss_jumps(losses, factor=1.4) == [(4, 0.16, 0.38), (6, 0.20, 0.29), (8, 0.05, 0.08)]
    assert jumps_text(loss_jumps(losses)) == "4: 0.160 → 0.380; 8: 0.050 → 0.080"
    assert jumps_text([]) == "none"


def test_recovery_is_the_first_epoch_back_at_min_best_after_the_last_fall():
    # grouped seed 1's shape: a dip at 3 (plateau exit), a fall at 19-22, back at 23 and 26
    values = [(2, 0.51), (3, 0.17), (4, 0.53), (18, 0.99), (19, 0.17), (22, 0.16), (23, 0.66), (26, 0.97), (30, 0.81)]
    assert recovery(values, 22) == (23, 0.66)
    assert recovery(values, 22, min_best=0.9) == (26, 0.97)
    assert recovery(values, 30) is None  # nothing after the last epoch: no climb back to report
    assert recovery(values[:6], 22) is None  # the curve stops at the fall


def test_climbed_back_reads_the_last_fall_and_the_guards_min_best_from_the_record():
    collapse = {"epoch": 3, "all": [{"epoch": 3}, {"epoch": 19}, {"epoch": 22}, {"epoch": 20}]}
    assert last_fall(collapse) == 22
    assert last_fall({"epoch": 12}) == 12  # a record from before ``all``: the one event
    values = [(19, 0.17), (22, 0.16), (23, 0.66), (26, 0.97)]
    assert climbed_back(values, collapse, {}) == (23, 0.66)
    assert climbed_back(values, collapse, {"min_best": 0.9}) == (26, 0.97)
    assert climbed_back(values, {"epoch": 26}, {}) is None
