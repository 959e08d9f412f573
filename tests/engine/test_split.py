"""Splitting rows: disjoint, reproducible, stratified where the classes allow it."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.split import split_rows
from engine.errors import DataError
from engine.spec import SplitConfig


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


def test_three_rows_is_enough_to_split():
    split = split_rows(3, SplitConfig(), seed=0)

    assert len(split.train) >= 1
    assert len(split.validation) >= 1
    assert sorted(_all_rows(split).tolist()) == [0, 1, 2]
