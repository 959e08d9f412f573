"""Array datasets: NPZ reading and its refusals, the stored form, and the array preprocessor
fitted on training rows and replayed on predict instances."""

from __future__ import annotations

import io
import json
import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest

from engine.data.arrays.dataset import (
    ArrayData,
    StoredX,
    read_arrays,
    read_npz,
    summarise,
    write_arrays,
)
from engine.data.arrays.preprocessor import ArrayPreprocessor, fit_array_preprocessor
from engine.errors import DataError, InvalidInstances, SpecMismatch


def _npz(**arrays) -> io.BytesIO:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    return buffer


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.mark.parametrize(
    ("x", "kind", "shape"),
    [
        (np.zeros((5, 7), np.float64), "vector", (5, 7)),
        (np.zeros((5, 8, 8), np.uint8), "image", (5, 1, 8, 8)),
        (np.zeros((5, 8, 8), np.float64), "image", (5, 1, 8, 8)),
        (np.zeros((5, 3, 6, 6), np.uint8), "image", (5, 3, 6, 6)),
        (np.zeros((5, 6, 6, 3), np.uint8), "image", (5, 3, 6, 6)),
        (np.zeros((5, 20, 2), np.float32), "sequence", (5, 20, 2)),
    ],
)
def test_npz_shapes_become_the_canonical_layout(x, kind, shape):
    data = read_npz(_npz(x=x, y=np.arange(5) % 2))

    assert data.kind == kind
    assert data.x.shape == shape
    assert data.x.dtype in (np.uint8, np.float32)


def test_kind_argument_settles_an_ambiguous_rank():
    flat = read_npz(_npz(x=np.zeros((4, 100))), kind="sequence")
    square = read_npz(_npz(x=np.zeros((4, 8, 8), np.float32)), kind="sequence")
    in_file = read_npz(_npz(x=np.zeros((4, 8, 8), np.float32), kind=np.array("sequence")))

    assert (flat.kind, flat.x.shape) == ("sequence", (4, 100, 1))
    assert (square.kind, square.x.shape) == ("sequence", (4, 8, 8))
    assert in_file.kind == "sequence"


def test_an_object_array_is_refused_without_unpickling():
    source = _npz(x=np.array([[1.0], "text"], dtype=object))

    with pytest.raises(DataError, match="'x'.*object"):
        read_npz(source)


def test_a_pickle_file_is_refused():
    with pytest.raises(DataError, match="NPZ"):
        read_npz(io.BytesIO(pickle.dumps({"x": [1, 2, 3]})))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 3)), "y": np.zeros(5)}, "'y' has 5 rows but array 'x' has 4"),
        ({"y": np.zeros(4)}, "no array named 'x'"),
        ({"x": np.zeros(4)}, "'x' has shape \\[4\\]"),
        ({"x": np.zeros((1, 1, 1, 1, 1))}, "'x' has shape"),
        ({"x": np.zeros((0, 3))}, "'x' has no rows"),
        ({"x": np.array([[1.0, np.nan]])}, "'x' has 1 NaN"),
        ({"x": np.array([["a", "b"]])}, "'x' has dtype"),
        ({"x": np.zeros((2, 2)), "y": np.zeros((2, 2), np.int64)}, "'y' has shape"),
    ],
)
def test_malformed_arrays_are_refused_with_the_array_named(arrays, message):
    with pytest.raises(DataError, match=message):
        read_npz(_npz(**arrays))


def test_size_guard_runs_before_the_data_is_loaded():
    with pytest.raises(DataError, match="limit is 100"):
        read_npz(_npz(x=np.zeros((20, 10))), max_elements=100)


def test_integer_and_text_labels_become_class_indices():
    ints = read_npz(_npz(x=np.zeros((4, 2)), y=np.array([7, 3, 7, 9])))
    text = read_npz(_npz(x=np.zeros((3, 2)), y=np.array(["dog", "cat", "dog"])))

    assert ints.classes == [3, 7, 9]
    assert ints.y.tolist() == [1, 0, 1, 2]
    assert ints.y.dtype == np.int64
    assert text.classes == ["cat", "dog"]
    assert text.y.tolist() == [1, 0, 1]


def test_float_labels_are_a_numeric_target():
    data = read_npz(_npz(x=np.zeros((3, 2)), y=np.array([0.5, 1.5, 2.0])))

    assert data.classes is None
    assert data.y.dtype == np.float32


def test_stored_form_round_trips():
    original = read_npz(
        _npz(x=_rng().integers(0, 255, (6, 5, 5), np.uint8), y=np.array(list("abcabc")))
    )
    buffer = io.BytesIO()

    write_arrays(original, buffer)
    buffer.seek(0)
    again = read_arrays(buffer)

    np.testing.assert_array_equal(again.x, original.x)
    np.testing.assert_array_equal(again.y, original.y)
    assert again.classes == ["a", "b", "c"]
    assert again.kind == "image"
    assert again.x.dtype == np.uint8


def test_the_stored_x_reads_a_chunk_at_a_time_never_the_whole_set():
    x = _rng().normal(size=(5000, 3, 16, 16)).astype(np.float32)  # 15 MB
    buffer = io.BytesIO()
    write_arrays(ArrayData(x, None, None, "image"), buffer)
    buffer.seek(0)

    tracemalloc.start()
    stored = StoredX(buffer)
    sizes, total = [], 0.0
    for chunk in stored.chunks(512):
        sizes.append(len(chunk))
        total += float(chunk.astype(np.float64).sum())
        del chunk
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert stored.n == 5000 and sizes == [512] * 9 + [392]
    assert total == pytest.approx(float(x.astype(np.float64).sum()))
    # One chunk (1.6 MB as float32, twice that as float64) at a time, not the 15 MB x.
    assert peak < 6 * 2**20


def test_a_stored_x_cut_short_is_refused_saying_so():
    buffer = io.BytesIO()
    write_arrays(ArrayData(np.ones((100, 4), np.float32), None, None, "vector"), buffer)
    archive = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    cut = io.BytesIO()
    with zipfile.ZipFile(cut, "w") as out:
        for name in archive.namelist():
            data = archive.read(name)
            out.writestr(name, data[: len(data) - 80] if name == "x.npy" else data)
    cut.seek(0)
    with pytest.raises(DataError, match="ends before its declared rows"):
        list(StoredX(cut).chunks(30))


def test_summary_counts_classes_and_describes_the_shape():
    data = ArrayData(
        np.zeros((5, 1, 4, 4), np.uint8), np.array([0, 1, 1, 1, 0]), ["a", "b"], "image"
    )

    summary = summarise(data)

    assert summary["kind"] == "image"
    assert summary["n"] == 5
    assert summary["shape"] == [1, 4, 4]
    assert summary["target"]["classes"] == [{"label": "a", "count": 2}, {"label": "b", "count": 3}]
    json.dumps(summary)


def _images(n: int = 40) -> ArrayData:
    x = _rng().integers(0, 255, (n, 3, 8, 8), dtype=np.uint8)
    x[n // 2 :] //= 4  # held-out rows much darker, so a leak would show in the mean
    return ArrayData(x, np.arange(n) % 2, ["a", "b"], "image")


def test_preprocessor_statistics_come_from_the_training_rows_only():
    data = _images()
    train = np.arange(20)

    pre = fit_array_preprocessor(data, train)

    expected = (data.x[train].astype(np.float64) / 255).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(pre.mean, expected, rtol=1e-6)
    transformed = pre.transform(data.x[train])
    np.testing.assert_allclose(transformed.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(transformed.std(axis=(0, 2, 3)), 1.0, atol=1e-4)


def test_preprocessor_json_round_trip_transforms_identically():
    data = _images()
    pre = fit_array_preprocessor(data, np.arange(30), image_size=(5, 6))

    again = ArrayPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))

    np.testing.assert_array_equal(again.transform(data.x), pre.transform(data.x))
    assert again.target.classes == ["a", "b"]


def test_resize_changes_the_input_shape():
    data = _images()

    pre = fit_array_preprocessor(data, np.arange(20), image_size=(16, 12))

    assert pre.input_shape == [3, 16, 12]
    assert pre.transform(data.x[:3]).shape == (3, 3, 16, 12)


def test_sequence_channels_are_standardised_on_the_last_axis():
    x = np.stack([_rng().normal(5, 2, (30, 10)), _rng().normal(-3, 0.5, (30, 10))], axis=-1)
    data = ArrayData(
        x.astype(np.float32), _rng().normal(size=30).astype(np.float32), None, "sequence"
    )

    pre = fit_array_preprocessor(data, np.arange(30))

    assert pre.input_shape == [10, 2]
    np.testing.assert_allclose(pre.mean, x.mean(axis=(0, 1)), rtol=1e-5)
    assert pre.target.kind == "numeric"
    np.testing.assert_allclose(pre.transform(data.x).mean(axis=(0, 1)), 0.0, atol=1e-5)


def _grey_preprocessor() -> ArrayPreprocessor:
    x = _rng().integers(0, 255, (10, 1, 4, 3), dtype=np.uint8)
    return fit_array_preprocessor(ArrayData(x, np.arange(10) % 2, [0, 1], "image"), np.arange(10))


def test_nested_list_instances_decode_with_or_without_the_channel_axis():
    pre = _grey_preprocessor()
    one = np.arange(12).reshape(4, 3)

    batch = pre.instances_to_array([one.tolist(), one[None].tolist()])

    assert batch.shape == (2, 1, 4, 3)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], batch[1])
    np.testing.assert_array_equal(batch[0, 0], one)


def test_wrong_instances_are_named_by_index():
    pre = _grey_preprocessor()
    good = np.zeros((4, 3)).tolist()

    with pytest.raises(InvalidInstances) as caught:
        pre.instances_to_array([good, good, good, np.zeros((3, 3)).tolist(), [["x"] * 3] * 4])

    assert caught.value.problems == [
        {"field": "instances[3]", "reason": "expected shape [4, 3] or [1, 4, 3], got [3, 3]"},
        {
            "field": "instances[4]",
            "reason": "expected an array of numbers shaped [4, 3] or [1, 4, 3]",
        },
    ]


def test_base64_is_refused_by_a_non_image_model():
    data = ArrayData(np.zeros((4, 3), np.float32), None, None, "vector")
    pre = fit_array_preprocessor(data, np.arange(4))

    with pytest.raises(InvalidInstances, match="instances\\[0\\]"):
        pre.instances_to_array(["aGVsbG8="])


def test_task_and_image_size_that_do_not_fit_the_data_name_the_spec_field():
    vectors = ArrayData(np.zeros((4, 3), np.float32), np.ones(4, np.float32), None, "vector")

    with pytest.raises(SpecMismatch, match="data.image_size"):
        fit_array_preprocessor(vectors, np.arange(4), image_size=(8, 8))
    with pytest.raises(SpecMismatch, match="task.*real numbers"):
        fit_array_preprocessor(vectors, np.arange(4), task="classification")


def test_integer_labels_serve_as_a_regression_target():
    data = read_npz(_npz(x=np.zeros((4, 2)), y=np.array([10, 20, 20, 30])))

    pre = fit_array_preprocessor(data, np.arange(4), task="regression")

    assert pre.target.kind == "numeric"
    assert pre.target.mean == pytest.approx(20.0)
    np.testing.assert_allclose(pre.decode_regression(pre.encode_target(data)), [10, 20, 20, 30])


def test_table_preprocess_settings_are_refused_for_arrays_not_ignored():
    from engine.spec import Spec
    from engine.training.preparation import dry_run

    spec = Spec.model_validate(
        {
            "task": "classification",
            "target": "y",
            "data": {"preprocess": {"numeric": {"scale": "minmax"}}},
        }
    )
    with pytest.raises(SpecMismatch, match="data.preprocess"):
        dry_run(spec, _images())
