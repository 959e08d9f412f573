"""An exported model computes what the model folder computes: ONNX in onnxruntime and
TorchScript in torch agree with the model on the same preprocessed rows, for any batch size;
safetensors gives back the same weights."""

from __future__ import annotations

import io
import json

import numpy as np
import onnxruntime
import pyarrow as pa
import pytest
import torch
from safetensors.torch import load as load_safetensors

from engine.artifacts import load_model
from engine.data.arrays.dataset import ArrayData
from engine.export import (
    EXPORT_FORMATS,
    INPUT_NAME,
    ExportFailed,
    export_model,
    preprocess_state,
)
from engine.spec import Spec
from engine.training.recipe import train
from tests.sample_data import mixed_classification

TOLERANCE = 1e-4

# Loading the TorchScript file is the point of the test; torch.jit's deprecation is not news.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def _spec(task: str, target: str | None, model: dict | None = None, **extra) -> Spec:
    document = {
        "task": task,
        "target": target,
        "training": {"epochs": 2, "learning_rate": 0.01, "device": "cpu"},
        **extra,
    }
    if model is not None:
        document["model"] = model
    return Spec.model_validate(document)


def _images(n: int = 40) -> ArrayData:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.integers(0, 100, size=(n, 1, 8, 8)).astype(np.uint8)
    x[y == 1, :, :4] += 120
    return ArrayData(x, y, ["dark", "bright"], "image")


def _sequences(n: int = 40, with_labels: bool = True) -> ArrayData:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 6, 2)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64) if with_labels else None
    return ArrayData(x, y, [0, 1] if with_labels else None, "sequence")


def _tokens(n: int = 40) -> ArrayData:
    """Codes 1..9 padded with 0 to 8 steps."""
    rng = np.random.default_rng(4)
    x = rng.integers(1, 10, size=(n, 8)).astype(np.float32)
    x[np.arange(8)[None, :] >= rng.integers(2, 9, size=(n, 1))] = 0
    y = (x == 3).any(axis=1).astype(np.int64)
    return ArrayData(x, y, [0, 1], "vector")


def _cities(n: int = 200) -> dict[str, list]:
    rng = np.random.default_rng(2)
    city = rng.integers(0, 60, size=n)
    x = rng.normal(size=n)
    return {
        "x": x.tolist(),
        "city": [f"c{c}" for c in city],
        "label": np.where((city % 2 == 0) ^ (x > 0), "yes", "no").tolist(),
    }


EMBEDDING = {"data": {"preprocess": {"columns": {"city": {"encoding": "embedding"}}}}}

# name -> (spec, dataset): every family, and the variants whose graphs differ.
CASES = {
    "mlp classifier": lambda: (
        _spec("classification", "label", {"family": "mlp", "hidden": [16], "batch_norm": True}),
        pa.table(mixed_classification(n=120)),
    ),
    "mlp with an embedding column": lambda: (
        _spec("classification", "label", {"family": "mlp", "hidden": [16]}, **EMBEDDING),
        pa.table(_cities()),
    ),
    "cnn on images": lambda: (
        _spec("classification", "y", {"family": "cnn", "filters": [4, 8]}),
        _images(),
    ),
    "cnn on sequences": lambda: (
        _spec("classification", "y", {"family": "cnn", "preset": "sequence", "filters": [4, 8]}),
        _sequences(),
    ),
    "lstm on sequences": lambda: (
        _spec("classification", "y", {"family": "rnn", "cell": "lstm", "hidden": 8, "layers": 2}),
        _sequences(),
    ),
    "bidirectional gru": lambda: (
        _spec(
            "classification",
            "y",
            {"family": "rnn", "cell": "gru", "hidden": 8, "bidirectional": True, "head": [8]},
        ),
        _sequences(),
    ),
    "gru with self-attention": lambda: (
        _spec(
            "classification",
            "y",
            {
                "family": "rnn",
                "cell": "gru",
                "hidden": 8,
                "attention": "self",
                "attention_heads": 2,
            },
        ),
        _sequences(),
    ),
    "padded tokens with attention": lambda: (
        _spec(
            "classification",
            "y",
            {
                "layers": [
                    {"type": "embedding", "num_embeddings": 10, "dim": 4, "padding_idx": 0},
                    {"type": "residual", "layers": [{"type": "self_attention", "heads": 2}]},
                    {"type": "attention_pooling", "hidden": 4},
                ]
            },
        ),
        _tokens(),
    ),
    "padded tokens with a bidirectional lstm": lambda: (
        _spec(
            "classification",
            "y",
            {
                "layers": [
                    {"type": "embedding", "num_embeddings": 10, "dim": 4, "padding_idx": 0},
                    {"type": "lstm", "units": 6, "bidirectional": True},
                ]
            },
        ),
        _tokens(),
    ),
    "dense autoencoder": lambda: (
        _spec("reconstruction", None, {"family": "autoencoder", "hidden": [8], "latent": 3}),
        _sequences(with_labels=False),
    ),
    "conv autoencoder on images": lambda: (
        _spec("reconstruction", None, {"family": "autoencoder", "hidden": [4, 8], "latent": 4}),
        ArrayData(_images().x, None, None, "image"),
    ),
    "layers with an embedding column": lambda: (
        _spec(
            "classification",
            "label",
            {"layers": [{"type": "dense", "units": 8}, {"type": "activation", "function": "tanh"}]},
            **EMBEDDING,
        ),
        pa.table(_cities()),
    ),
    "layers on sequences": lambda: (
        _spec(
            "classification",
            "y",
            {
                "layers": [
                    {"type": "conv1d", "filters": 4, "kernel_size": 3},
                    {"type": "batch_norm"},
                    {"type": "lstm", "units": 6, "return_sequences": True},
                    {"type": "global_avg_pool"},
                ]
            },
        ),
        _sequences(),
    ),
}

MEASURED: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module", params=list(CASES))
def trained(request):
    torch.manual_seed(0)
    spec, data = CASES[request.param]()
    files = train(spec, data).files()
    _, pipeline, model = load_model(files)
    # Preprocessed rows as serving makes them: 5 rows, not the export's example batch of 2.
    rng = np.random.default_rng(3)
    inputs = torch.from_numpy(pipeline.inputs(_instances(data, rng, 5)))
    with torch.no_grad():
        expected = model(inputs).numpy()
    return request.param, files, inputs.numpy(), expected


def _instances(data, rng, n: int) -> list:
    if isinstance(data, pa.Table):
        rows = data.drop([c for c in ("label", "y") if c in data.column_names]).to_pylist()
        return [rows[i] for i in rng.choice(len(rows), n, replace=False)]
    return [data.x[i].tolist() for i in rng.choice(data.n, n, replace=False)]


def _record(name: str, fmt: str, difference: float) -> None:
    MEASURED.setdefault(name, {})[fmt] = difference
    print(f"{name}: {fmt} max abs difference {difference:.2e}")


def _assert_computes_like_the_model(
    name: str, fmt: str, output: np.ndarray, one_row: np.ndarray, expected: np.ndarray
) -> None:
    """The exported model's `output` on all the rows, and `one_row` on the first alone, agree
    with the model's; the difference on all the rows is recorded for the summary."""
    difference = float(np.abs(output - expected).max())
    _record(name, fmt, difference)
    assert output.shape == expected.shape
    assert difference <= TOLERANCE
    assert np.abs(one_row - expected[:1]).max() <= TOLERANCE


def test_onnx_runs_in_onnxruntime_like_the_model(trained):
    name, files, inputs, expected = trained
    content, media_type, filename = export_model(files, "onnx")

    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {INPUT_NAME: inputs})
    (one_row,) = session.run(None, {INPUT_NAME: inputs[:1]})

    _assert_computes_like_the_model(name, "onnx", output, one_row, expected)
    assert filename == "model.onnx"
    assert media_type == "application/octet-stream"


def test_torchscript_loads_from_bytes_like_the_model(trained):
    name, files, inputs, expected = trained
    content, _, filename = export_model(files, "torchscript")

    scripted = torch.jit.load(io.BytesIO(content))
    with torch.no_grad():
        output = scripted(torch.from_numpy(inputs)).numpy()
        one_row = scripted(torch.from_numpy(inputs[:1])).numpy()

    _assert_computes_like_the_model(name, "torchscript", output, one_row, expected)
    assert filename == "model.torchscript.pt"


def test_safetensors_round_trips_to_the_same_state_dict(trained):
    _, files, _, _ = trained
    content, _, filename = export_model(files, "safetensors")

    weights = load_safetensors(content)
    state = load_model(files)[2].state_dict()
    assert filename == "model.safetensors"
    assert set(weights) == set(state)
    for key, tensor in state.items():
        assert torch.equal(weights[key], tensor), key


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_file_carries_the_preprocessing_state(trained, fmt):
    _, files, _, _ = trained
    content, _, _ = export_model(files, fmt)

    assert preprocess_state(content, fmt) == json.loads(files["preprocess.json"])


def test_an_unknown_format_is_refused_naming_the_formats(trained):
    _, files, _, _ = trained

    with pytest.raises(ExportFailed, match="onnx, torchscript, safetensors"):
        export_model(files, "tflite")
