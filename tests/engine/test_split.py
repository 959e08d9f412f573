"""Splitting rows: disjoint, reproducible, stratified where the classes allow it, by group, in
time order; cross-validation folds; the leakage guard."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from engine.data.split import (
    cross_validation_splits,
    row_codes,
    seen_in_training,
    split_rows,
    table_row_codes,
)
from engine.errors import DataError, SpecMismatch
from engine.spec import Spec
from engine.spec.data import SplitConfig
from engine.training.preparation import prepare
from tests.sample_data import mixed_classification


def _all_rows(split) -> np.ndarray:
    return np.concatenate([split.train, split.validation, split.test])


def test_fractions_are_roughly_respected():
    split = split_rows(1000, SplitConfig(validation=0.2, test=0.1), seed=0)

    assert len(split.validation) == pytest.approx(200, abs=10)
    assert len(split.test) == pytest.approx(100, abs=10)
    assert len(split.train) == pytest.approx(700, abs=10)


def test_without_a_test_fraction_the_test_split_is_empty():
    split = split_rows(100, SplitConfig(validation=0.25, test=0.0), seed=0)

    assert len(split.test) == 0
    assert len(split.validation) == pytest.approx(25, abs=2)


def test_every_row_lands_in_exactly_one_split():
    split = split_rows(257, SplitConfig(validation=0.2, test=0.15), seed=3)

    rows = _all_rows(split)
    assert len(rows) == 257
    assert sorted(rows.tolist()) == list(range(257))


def test_same_seed_gives_the_same_split_and_another_seed_a_different_one():
    config = SplitConfig(validation=0.2, test=0.1)

    first = split_rows(500, config, seed=7)
    again = split_rows(500, config, seed=7)
    other = split_rows(500, config, seed=8)

    for part in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(first, part), getattr(again, part))
    assert not np.array_equal(first.validation, other.validation)


def test_stratified_split_keeps_class_proportions():
    labels = np.array([0] * 900 + [1] * 100)
    np.random.default_rng(0).shuffle(labels)
    config = SplitConfig(validation=0.2, test=0.1, stratify=True)

    split = split_rows(len(labels), config, seed=0, labels=labels)

    for part in (split.train, split.validation, split.test):
        assert labels[part].mean() == pytest.approx(0.1, abs=0.01)


def test_stratified_split_still_works_when_a_class_is_too_rare_to_stratify():
    labels = np.array([0] * 49 + [1])

    split = split_rows(50, SplitConfig(validation=0.2), seed=0, labels=labels)

    assert sorted(_all_rows(split).tolist()) == list(range(50))


@pytest.mark.parametrize("n_rows", [0, 1, 2])
def test_fewer_than_three_rows_raises_data_error(n_rows):
    with pytest.raises(DataError, match="at least 3"):
        split_rows(n_rows, SplitConfig(), seed=0)


def test_three_rows_is_enough_to_split_and_leave_the_test_split_empty():
    split = split_rows(3, SplitConfig(), seed=0)

    assert len(split.train) >= 1
    assert len(split.validation) >= 1
    # 10% of 3 rows rounds to none: the job trains and says it was not evaluated.
    assert len(split.test) == 0
    assert sorted(_all_rows(split).tolist()) == [0, 1, 2]


def test_the_test_split_appears_once_the_fraction_rounds_to_a_row():
    split = split_rows(10, SplitConfig(), seed=0)

    assert (len(split.train), len(split.validation), len(split.test)) == (7, 2, 1)


def test_a_group_split_keeps_every_group_on_one_side():
    groups = np.repeat(np.arange(40), 5)  # 40 patients, 5 rows each
    np.random.default_rng(0).shuffle(groups)

    split = split_rows(len(groups), SplitConfig(validation=0.2, test=0.1), 0, groups=groups)

    sides = [set(groups[part].tolist()) for part in (split.train, split.validation, split.test)]
    assert not sides[0] & sides[1] and not sides[0] & sides[2] and not sides[1] & sides[2]
    assert (len(sides[1]), len(sides[2])) == (8, 4)
    assert sorted(_all_rows(split).tolist()) == list(range(200))


def test_a_time_ordered_split_puts_the_latest_rows_in_validation_then_test():
    rank = np.random.default_rng(0).permutation(100)  # row i is the rank[i]-th in time

    split = split_rows(100, SplitConfig(validation=0.2, test=0.1), 0, rank=rank)

    assert rank[split.train].max() < rank[split.validation].min()
    assert rank[split.validation].max() < rank[split.test].min()
    assert sorted(rank[split.test].tolist()) == list(range(90, 100))


def test_order_by_and_group_name_columns_of_the_table():
    columns = mixed_classification(n=100)
    columns["day"] = list(range(100, 0, -1))  # the first rows are the latest
    table = pa.table(columns)
    spec = Spec.model_validate(
        {"task": "classification", "target": "label", "data": {"split": {"order_by": "day"}}}
    )

    prepared = prepare(spec, table)

    assert prepared.rows == {"train": 70, "validation": 20, "test": 10}
    # The time column is no default feature: its held-out values all lie past training.
    assert "day" not in prepared.pipeline.preprocessor.feature_names
    for field_name in ("order_by", "group"):
        split = {field_name: "nope"}
        bad = Spec.model_validate({**spec.model_dump(), "data": {"split": split}})
        with pytest.raises(SpecMismatch) as info:
            prepare(bad, table, fit_only=True)
        assert info.value.field == f"data.split.{field_name}"


@pytest.mark.parametrize("labels", [None, np.array([0] * 60 + [1] * 30 + [2] * 30)])
def test_cross_validation_folds_hold_out_each_pool_row_once(labels):
    pool = np.arange(10, 130)  # rows 0..9 are the test split
    config = SplitConfig(folds=4, validation=0.2, test=0.1)
    full = None if labels is None else np.concatenate([np.zeros(10, int), labels])

    folds = cross_validation_splits(pool, config, seed=0, labels=full)

    assert len(folds) == 4
    held = np.concatenate([f.test for f in folds])
    assert sorted(held.tolist()) == pool.tolist()
    for fold in folds:
        parts = [fold.train, fold.validation, fold.test]
        assert sum(len(p) for p in parts) == len(pool)
        assert len(np.unique(np.concatenate(parts))) == len(pool)
        if full is not None:  # stratified: every fold holds out each class in proportion
            counts = np.bincount(full[fold.test], minlength=3)
            assert counts[0] == 15 and sorted(counts[1:].tolist()) == [7, 8]


def test_cross_validation_by_group_and_in_time_order():
    groups = np.repeat(np.arange(30), 4)
    config = SplitConfig(folds=3)

    for fold in cross_validation_splits(np.arange(120), config, 0, groups=groups):
        assert not set(groups[fold.test]) & set(groups[np.r_[fold.train, fold.validation]])

    rank = np.arange(120)[::-1]
    for fold in cross_validation_splits(np.arange(120), config, 0, rank=rank):
        # An expanding window: every fold trains on the past of its held-out rows.
        assert rank[np.r_[fold.train, fold.validation]].max() < rank[fold.test].min()


@pytest.mark.parametrize("labels", [None, np.array([0] * 60 + [1] * 60)])
def test_repeated_folds_are_fresh_partitions_and_the_first_repeat_is_the_plain_folds(labels):
    pool = np.arange(120)
    plain = cross_validation_splits(pool, SplitConfig(folds=4), seed=3, labels=labels)

    folds = cross_validation_splits(pool, SplitConfig(folds=4, repeats=3), seed=3, labels=labels)

    assert len(folds) == 12
    for repeat in range(3):  # each repeat holds out every pool row once
        held = np.concatenate([f.test for f in folds[4 * repeat : 4 * repeat + 4]])
        assert sorted(held.tolist()) == pool.tolist()
    assert [f.test.tolist() for f in folds[:4]] == [f.test.tolist() for f in plain]
    assert folds[0].test.tolist() != folds[4].test.tolist()


def test_repeated_folds_by_group_keep_groups_whole():
    groups = np.repeat(np.arange(30), 4)

    folds = cross_validation_splits(
        np.arange(120), SplitConfig(folds=3, repeats=2), 0, None, groups
    )

    assert len(folds) == 6
    for fold in folds:
        assert not set(groups[fold.test]) & set(groups[np.r_[fold.train, fold.validation]])
    assert folds[0].test.tolist() != folds[3].test.tolist()


@pytest.mark.parametrize(
    "split",
    [{"repeats": 2}, {"folds": 3, "repeats": 0}, {"folds": 3, "repeats": 2, "order_by": "t"}],
)
def test_repeats_need_folds_and_no_time_order(split):
    with pytest.raises(ValueError, match="repeats"):
        SplitConfig.model_validate(split)


def test_cross_validation_needs_two_rows_per_fold():
    with pytest.raises(DataError, match="folds"):
        cross_validation_splits(np.arange(7), SplitConfig(folds=4), seed=0)


def test_leakage_guard_finds_held_out_rows_equal_to_a_training_row_in_every_part():
    x = np.array([[1, 2], [3, 4], [1, 2], [1, 2], [5, 6]], dtype=np.uint8)
    y = np.array([0, 1, 0, 1, 0])
    codes = row_codes([x, y])

    seen = seen_in_training(codes[:2], codes[2:])

    # Row 2 repeats row 0; row 3 has row 0's features but another label; row 4 is new.
    assert seen.tolist() == [True, False, False]


def test_table_row_codes_treat_missing_values_as_equal():
    table = pa.table({"a": [1.0, None, 1.0, None], "b": ["x", "y", "x", "z"]})

    codes = table_row_codes(table)

    assert codes[0] == codes[2] and len(set(codes.tolist())) == 3


def test_the_recipe_leaves_out_held_out_rows_that_repeat_a_training_row_and_counts_them():
    columns = mixed_classification(n=100)
    repeated = pa.table(columns).slice(0, 50)
    table = pa.concat_tables([pa.table(columns), repeated])  # 50 rows appear twice
    spec = Spec.model_validate({"task": "classification", "target": "label"})

    prepared = prepare(spec, table)

    removed = prepared.leakage_removed
    assert removed["validation"] > 0 and removed["test"] > 0
    assert prepared.rows["validation"] + removed["validation"] == 30
    assert prepared.rows["test"] + removed["test"] == 15
    train_codes = row_codes([prepared.x_train.numpy(), prepared.y_train.numpy()])
    for x, y in ((prepared.x_val, prepared.y_val), (prepared.x_test, prepared.y_test)):
        codes = row_codes(
            [np.concatenate([prepared.x_train, x]), np.concatenate([prepared.y_train, y])]
        )
        assert not seen_in_training(codes[: len(train_codes)], codes[len(train_codes) :]).any()


def test_validation_rows_that_all_repeat_training_rows_are_kept_with_a_note():
    table = pa.table({"x": [0.0, 1.0] * 20, "label": ["a", "b"] * 20})
    spec = Spec.model_validate({"task": "classification", "target": "label"})

    prepared = prepare(spec, table)

    assert prepared.rows["validation"] == 8 and prepared.rows["test"] == 0
    assert prepared.leakage_removed == {"validation": 0, "test": 4}
    assert any("every validation row repeats" in note for note in prepared.notes)
    assert any("every test row repeats" in note for note in prepared.notes)
