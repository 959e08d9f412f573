"""Class imbalance: under- and over-sampling of the training rows only, or class weights."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from engine.data.arrays.dataset import ArrayData
from engine.data.sampling import resample
from engine.errors import SpecMismatch
from engine.spec import Spec
from engine.spec.data import SplitConfig
from engine.training.preparation import dry_run, prepare
from engine.training.recipe import train


def _imbalanced(n: int = 200, seed: int = 0) -> pa.Table:
    """One row in five is class "rare"; x separates the classes."""
    rng = np.random.default_rng(seed)
    label = np.where(np.arange(n) % 5 == 0, "rare", "common")
    x = rng.normal(size=n) + np.where(label == "rare", 2.0, 0.0)
    return pa.table({"x": x, "z": rng.normal(size=n), "label": label})


def _spec(method: str, task: str = "classification", **training) -> Spec:
    return Spec.model_validate(
        {
            "task": task,
            "target": "label" if task == "classification" else "x",
            "data": {"sampling": {"method": method}},
            "training": {"epochs": 3, "device": "cpu", **training},
        }
    )


def test_undersampling_cuts_every_class_to_the_smallest():
    labels = np.array([0] * 50 + [1] * 10 + [2] * 20)

    picked = resample(labels, "undersample", seed=0)

    assert np.bincount(labels[picked]).tolist() == [10, 10, 10]
    assert len(np.unique(picked)) == len(picked)  # no row twice


def test_oversampling_repeats_smaller_classes_up_to_the_largest_keeping_every_row():
    labels = np.array([0] * 50 + [1] * 10 + [2] * 20)

    picked = resample(labels, "oversample", seed=0)

    assert np.bincount(labels[picked]).tolist() == [50, 50, 50]
    assert set(picked.tolist()) == set(range(80))


def test_resampling_is_seeded():
    labels = np.array([0] * 50 + [1] * 10)

    assert np.array_equal(resample(labels, "undersample", 3), resample(labels, "undersample", 3))
    assert not np.array_equal(
        resample(labels, "undersample", 3), resample(labels, "undersample", 4)
    )


@pytest.mark.parametrize(("method", "per_class"), [("undersample", "min"), ("oversample", "max")])
def test_sampling_changes_the_training_rows_only(method, per_class):
    table = _imbalanced()
    plain = prepare(_spec("none"), table)

    prepared = prepare(_spec(method), table)

    before = np.bincount(plain.y_train.numpy())
    assert np.bincount(prepared.y_train.numpy()).tolist() == [getattr(before, per_class)()] * 2
    assert prepared.sampling["before"] == {"common": before[0], "rare": before[1]}
    assert torch.equal(prepared.y_val, plain.y_val)
    assert torch.equal(prepared.y_test, plain.y_test)
    assert prepared.rows["train"] == len(prepared.y_train)


def test_class_weights_weigh_the_loss_by_inverse_class_frequency():
    table = _imbalanced()

    trained = train(_spec("class_weights"), table)

    assert trained.sampling["method"] == "class_weights"
    assert trained.sampling["before"] == trained.sampling["after"]
    # The same training as training.class_weights = "balanced" gives.
    same = train(_spec("none", class_weights="balanced"), table)
    assert trained.metrics == same.metrics
    assert trained.metrics != train(_spec("none"), table).metrics


@pytest.mark.parametrize("method", ["undersample", "oversample", "class_weights"])
def test_sampling_with_training_class_weights_is_refused_naming_the_field(method):
    spec = _spec(method, class_weights="balanced")

    with pytest.raises(SpecMismatch) as info:
        dry_run(spec, _imbalanced())

    assert info.value.field == "data.sampling.method"


def test_sampling_for_regression_is_refused():
    with pytest.raises(SpecMismatch) as info:
        dry_run(_spec("oversample", task="regression"), _imbalanced().drop_columns(["label"]))

    assert info.value.field == "data.sampling.method"
    assert "classification" in info.value.reason


# --- SMOTE, SMOTENC, SMOTEN --------------------------------------------------------------------


def _smote_spec(method: str, features: list[str] | None = None, **sampling) -> Spec:
    document = {
        "task": "classification",
        "target": "label",
        "data": {"sampling": {"method": method, **sampling}},
        "training": {"epochs": 3, "device": "cpu"},
    }
    if features is not None:
        document["features"] = features
    return Spec.model_validate(document)


def _mixed(n: int = 200, seed: int = 0) -> pa.Table:
    """_imbalanced with a categorical column that leans towards the rare class."""
    table = _imbalanced(n, seed)
    rng = np.random.default_rng(seed + 1)
    rare = np.asarray(table.column("label").to_pylist()) == "rare"
    shade = np.where(rare & (rng.random(n) < 0.7), "dark", rng.choice(["light", "mid"], size=n))
    return table.append_column("shade", pa.array(shade.tolist()))


@pytest.mark.parametrize(
    ("method", "features"),
    [("smote", ["x", "z"]), ("smotenc", ["x", "z", "shade"]), ("smoten", ["shade"])],
)
def test_smote_adds_synthetic_training_rows_up_to_the_largest_class_only(method, features):
    table = _mixed()
    plain = prepare(_smote_spec("none", features), table)

    prepared = prepare(_smote_spec(method, features), table)

    before = np.bincount(plain.y_train.numpy())
    after = np.bincount(prepared.y_train.numpy())
    assert after.tolist() == [before.max()] * 2  # the training balance changed
    assert prepared.sampling["method"] == method
    assert prepared.sampling["synthetic"] == after.sum() - before.sum() > 0
    # The real training rows stay as they were, first; held-out rows are untouched.
    n = len(plain.y_train)
    assert torch.equal(prepared.x_train[:n], plain.x_train)
    assert torch.equal(prepared.y_train[:n], plain.y_train)
    for part in ("x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(prepared, part), getattr(plain, part))
    assert torch.all(prepared.y_train[n:] == int(np.argmin(before)))


def test_smotenc_gives_synthetic_rows_one_real_category_and_numbers_within_the_rows_range():
    table = _mixed()
    spec = _smote_spec("smotenc", ["x", "z", "shade"])
    prepared = prepare(spec, table)
    n = prepared.sampling["before"]
    real = sum(n.values())
    synthetic = prepared.x_train[real:].numpy()
    onehot = synthetic[:, 2:]  # x, z, then shade's one-hot slots
    assert set(np.unique(onehot)) <= {0.0, 1.0}
    assert np.all(onehot.sum(axis=1) == 1)  # one category, never a blend of slots
    numbers, real_numbers = synthetic[:, :2], prepared.x_train[:real, :2].numpy()
    assert np.all(numbers >= real_numbers.min(axis=0) - 1e-6)
    assert np.all(numbers <= real_numbers.max(axis=0) + 1e-6)


def test_smote_is_seeded():
    table = _imbalanced()
    first = prepare(_smote_spec("smote"), table).x_train
    assert torch.equal(first, prepare(_smote_spec("smote"), table).x_train)


@pytest.mark.parametrize(
    ("method", "features", "advice"),
    [
        ("smote", ["x", "shade"], "use smotenc"),
        ("smotenc", ["x", "z"], "use smote"),
        ("smotenc", ["shade"], "use smoten"),
        ("smoten", ["x", "shade"], "use smotenc"),
    ],
)
def test_a_smote_variant_that_does_not_fit_the_feature_types_is_refused(method, features, advice):
    with pytest.raises(SpecMismatch) as info:
        dry_run(_smote_spec(method, features), _mixed())
    assert info.value.field == "data.sampling.method"
    assert advice in info.value.reason


def test_a_missing_indicator_counts_as_categorical_for_smote():
    spec = Spec.model_validate(
        {
            "task": "classification",
            "target": "label",
            "features": ["x", "z"],
            "data": {
                "sampling": {"method": "smote"},
                "preprocess": {"numeric": {"missing_indicator": True}},
            },
        }
    )
    with pytest.raises(SpecMismatch, match="use smotenc"):
        dry_run(spec, _mixed())


def test_a_class_with_too_few_training_rows_for_k_neighbors_is_refused():
    table = _imbalanced(n=40)  # 8 rare rows, about 5 of them in training
    with pytest.raises(SpecMismatch) as info:
        dry_run(_smote_spec("smote", k_neighbors=10), table)
    assert info.value.field == "data.sampling.k_neighbors"
    assert "needs at least 11" in info.value.reason
    dry_run(_smote_spec("smote", k_neighbors=2), table)  # enough rows for 2 neighbours


def test_smote_for_regression_is_refused():
    spec = Spec.model_validate(
        {"task": "regression", "target": "x", "data": {"sampling": {"method": "smote"}}}
    )
    with pytest.raises(SpecMismatch) as info:
        dry_run(spec, _imbalanced().drop_columns(["label"]))
    assert info.value.field == "data.sampling.method"
    assert "classification" in info.value.reason


def test_k_neighbors_applies_to_smote_only():
    with pytest.raises(ValueError, match="k_neighbors applies"):
        _smote_spec("oversample", k_neighbors=3)


def test_smote_on_vector_arrays_and_not_on_sequences():
    rng = np.random.default_rng(0)
    y = (np.arange(100) % 5 == 0).astype(np.int64)
    vectors = ArrayData(rng.normal(size=(100, 3)).astype(np.float32), y, [0, 1], "vector")
    spec = Spec.model_validate(
        {"task": "classification", "target": "y", "data": {"sampling": {"method": "smote"}}}
    )
    counts = np.bincount(prepare(spec, vectors).y_train.numpy())
    assert counts[0] == counts[1]
    sequences = ArrayData(rng.normal(size=(100, 4, 2)).astype(np.float32), y, [0, 1], "sequence")
    with pytest.raises(SpecMismatch, match="use oversample"):
        dry_run(spec, sequences)


def test_the_dry_run_checks_k_neighbors_on_every_folds_training_rows():
    table = _imbalanced(n=60)  # 12 rare rows: about 8 in the final training split
    spec = _smote_spec("smote", k_neighbors=7)
    dry_run(spec, table)
    folded = spec.model_copy(
        update={"data": spec.data.model_copy(update={"split": SplitConfig(folds=3)})}
    )
    with pytest.raises(SpecMismatch) as info:
        dry_run(folded, table)
    assert info.value.field == "data.sampling.k_neighbors"


def test_token_codes_for_an_embedding_count_as_categorical_for_smote():
    rng = np.random.default_rng(0)
    y = (np.arange(120) % 4 == 0).astype(np.int64)
    x = rng.integers(1, 9, size=(120, 6)).astype(np.float32)
    x[y == 1, 0] = 9
    tokens = ArrayData(x, y, [0, 1], "vector")
    layers = [{"type": "embedding", "num_embeddings": 10, "dim": 4}, {"type": "flatten"}]

    def spec(method: str) -> Spec:
        return Spec.model_validate(
            {
                "task": "classification",
                "target": "y",
                "model": {"layers": layers},
                "data": {"sampling": {"method": method}},
            }
        )

    with pytest.raises(SpecMismatch, match="use smotenc"):
        dry_run(spec("smote"), tokens)
    prepared = prepare(spec("smoten"), tokens)
    synthetic = prepared.x_train[sum(prepared.sampling["before"].values()) :].numpy()
    assert len(synthetic) and set(np.unique(synthetic)) <= set(range(10))  # real codes only
