"""Small datasets for tests, generated or taken from scikit-learn's bundled sets."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sklearn.datasets import load_breast_cancer


def csv_bytes(columns: dict[str, list]) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(pa.table(columns), sink)
    return sink.getvalue()


def parquet_bytes(columns: dict[str, list]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """An NPZ upload holding `arrays` under their names (`x`, `y`, ...)."""
    sink = io.BytesIO()
    np.savez(sink, **arrays)
    return sink.getvalue()


def noisy_sine_sequences(n: int, steps: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """`x` [n, steps, 1]: noisy sine waves, time-major; `y`: 1 where the wave is twice as fast,
    so a small convolutional network learns it in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    t = np.linspace(0, 4 * np.pi, steps)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    x = np.sin((1 + y[:, None]) * t[None, :] + phase) + rng.normal(scale=0.5, size=(n, steps))
    return {"x": x[:, :, None].astype(np.float32), "y": y.astype(np.int64)}


def breast_cancer_columns() -> dict[str, list]:
    data = load_breast_cancer()
    columns = {name: data.data[:, i].tolist() for i, name in enumerate(data.feature_names)}
    columns["label"] = data.target.tolist()
    return columns


def mixed_classification(n: int = 240, seed: int = 0) -> dict[str, list]:
    """Two informative numeric columns, a categorical one that matters, some missing values."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    score = x1 + x2 + np.where(colour == "red", 1.5, -0.5)
    label = np.where(score > 0, "yes", "no")
    x2_with_gaps = [None if i % 17 == 0 else float(v) for i, v in enumerate(x2)]
    return {
        "x1": x1.tolist(),
        "x2": x2_with_gaps,
        "colour": colour.tolist(),
        "label": label.tolist(),
    }


def linear_regression(n: int = 240, seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.uniform(-2, 2, size=n)
    y = 3.0 * a - 2.0 * b + 10.0 + rng.normal(scale=0.1, size=n)
    return {"a": a.tolist(), "b": b.tolist(), "y": y.tolist()}
