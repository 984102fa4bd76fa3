"""Sources, label protocols and splits on the real ELPV labels and on user layouts."""

from pathlib import Path

import numpy as np
import pytest

from solar_defect.data.protocols import apply_protocol
from solar_defect.data.sources import read_csv, read_elpv, read_folder, read_source
from solar_defect.data.splits import kfold_split, stratified_split
from solar_defect.errors import UserInputError


@pytest.fixture(scope="module")
def elpv():
    return read_elpv()


def test_elpv_table_has_all_cells(elpv):
    assert len(elpv.rel_paths) == 2624
    assert elpv.has_probabilities
    assert set(elpv.types) == {"mono", "poly"}
    assert all(p.startswith("images/cell") for p in elpv.rel_paths)


@pytest.mark.parametrize(
    ("protocol", "counts"),
    [
        ("seed", {"functional": 1508, "defective": 715}),
        ("threshold", {"functional": 1803, "defective": 821}),
        (
            "four_class",
            {
                "functional": 1508,
                "possibly_defective": 295,
                "likely_defective": 106,
                "defective": 715,
            },
        ),
    ],
)
def test_protocol_counts_on_elpv(elpv, protocol, counts):
    cells = apply_protocol(elpv, protocol)
    assert cells.counts() == counts
    assert cells.class_names[0] == "functional"


def test_seed_split_matches_the_seed(elpv):
    cells = apply_protocol(elpv, "seed")
    splits = stratified_split(cells.labels, cells.table.types, 0.5, 0.0, seed=42)
    assert cells.counts(splits["train"]) == {"functional": 754, "defective": 358}
    assert cells.counts(splits["val"]) == {"functional": 754, "defective": 357}
    assert len(splits["test"]) == 0
    assert not set(splits["train"]) & set(splits["val"])


def test_split_keeps_strata_and_changes_with_seed(elpv):
    cells = apply_protocol(elpv, "seed")
    types = np.array(cells.table.types)
    a = stratified_split(cells.labels, cells.table.types, 0.5, seed=1)
    b = stratified_split(cells.labels, cells.table.types, 0.5, seed=2)
    for label in (0, 1):
        for kind in ("mono", "poly"):
            n = int(np.sum((cells.labels == label) & (types == kind)))
            in_train = int(
                np.sum((cells.labels[a["train"]] == label) & (types[a["train"]] == kind))
            )
            assert in_train == int(np.ceil(n / 2))
    assert not np.array_equal(a["train"], b["train"])
    again = stratified_split(cells.labels, cells.table.types, 0.5, seed=1)
    assert np.array_equal(a["train"], again["train"])


def test_threshold_split_with_test_fraction_is_a_partition(elpv):
    cells = apply_protocol(elpv, "threshold")
    splits = stratified_split(cells.labels, cells.table.types, 0.75, 0.1, seed=0)
    joined = np.concatenate(list(splits.values()))
    assert sorted(joined) == list(range(2624))
    assert 0.73 < len(splits["train"]) / 2624 < 0.77
    assert len(splits["test"]) > 0


def test_kfold_folds_cover_every_cell_once(elpv):
    cells = apply_protocol(elpv, "seed")
    folds = [kfold_split(cells.labels, cells.table.types, 5, k)["val"] for k in range(5)]
    assert sorted(np.concatenate(folds)) == list(range(len(cells.labels)))


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.1])
def test_train_fraction_outside_open_interval_is_rejected(fraction):
    with pytest.raises(UserInputError, match="train_fraction must be in"):
        stratified_split(np.array([0, 1]), ["", ""], fraction)


def test_split_leaving_validation_empty_is_rejected():
    with pytest.raises(UserInputError, match="validation"):
        stratified_split(np.array([0, 1]), ["", ""], 0.6, 0.4)


def test_folder_source_reads_class_folders(synthetic_root):
    table = read_folder(synthetic_root, ["functional", "defective"])
    cells = apply_protocol(table, "seed", ["functional", "defective"])
    assert cells.counts() == {"functional": 16, "defective": 16}
    assert table.rel_paths[0] == "functional/cell_00.png"


def test_folder_source_missing_class_folder(synthetic_root):
    with pytest.raises(UserInputError, match=r"class folder\(s\) \['cracked'\] missing"):
        read_folder(synthetic_root, ["functional", "cracked"])


def test_csv_source_with_probabilities_and_relative_paths(tmp_path, synthetic_root):
    csv = tmp_path / "labels.csv"
    csv.write_text(
        f"path,label,type\n{synthetic_root}/functional/cell_00.png,0,mono\ncells/b.png,1.0,poly\n"
    )
    table = read_csv(csv)
    assert table.labels == [0.0, 1.0]
    assert table.paths[1] == tmp_path.resolve() / "cells/b.png"
    assert table.paths[0] == synthetic_root / "functional/cell_00.png"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("file,label\na.png,0\n", r"missing column\(s\) \['path'\]"),
        ("path,label\na.png,1.5\n", r"1.5 is not in \[0, 1\]"),
        ("path,label\na.png,nan\n", r"nan is not in \[0, 1\]"),
        ("path,label\n", "has no rows"),
    ],
)
def test_bad_csv_gives_one_clear_line(tmp_path, content, message):
    csv = tmp_path / "labels.csv"
    csv.write_text(content)
    with pytest.raises(UserInputError, match=message) as info:
        read_csv(csv)
    assert "\n" not in str(info.value)


def test_unknown_class_in_csv_is_named(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\na.png,functional\nb.png,cracked\n")
    with pytest.raises(UserInputError, match=r"unknown class label\(s\) \['cracked'\]"):
        apply_protocol(read_csv(csv), "seed", ["functional", "defective"])


def test_protocol_that_empties_a_class(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\na.png,0\nb.png,0.3333333\n")
    with pytest.raises(UserInputError, match=r"\['defective'\] have no images"):
        apply_protocol(read_csv(csv), "seed")


def test_unknown_protocol_and_missing_root(tmp_path):
    with pytest.raises(UserInputError, match=r"unknown data\.protocol .strict."):
        apply_protocol(read_elpv(), "strict")
    with pytest.raises(UserInputError, match=r"is not an existing folder"):
        read_source("folder", root=str(tmp_path / "nope"), class_names=["a"])
    with pytest.raises(UserInputError, match=r"needs data\.root"):
        read_source("folder")


def test_empty_root_has_no_images(tmp_path: Path):
    for name in ("functional", "defective"):
        (tmp_path / name).mkdir()
    with pytest.raises(UserInputError, match="no images found"):
        read_folder(tmp_path, ["functional", "defective"])
