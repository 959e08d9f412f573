"""Models: every family builds from its spec for its input rank, the layer table is measured,
shape errors name the spec field, initialisation does what it says, and small nets learn."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from torch import nn

from engine.errors import SpecMismatch
from engine.inference import EVAL_IDENTITIES, without_eval_identities
from engine.models import (
    EmbeddedInput,
    build_model,
    count_parameters,
    default_model_config,
    describe_model,
)
from engine.models.layers import LAYER_BUILDERS
from engine.spec import Spec
from engine.spec.model import LAYER_TYPES, LayersConfig, ModelConfig

MODEL_CONFIG = TypeAdapter(ModelConfig)


@dataclass
class ModelSpec:
    """The two fields of a spec that building reads; lets a test pair any task with any
    model section without the rest of the spec."""

    task: str
    model: Any


def _spec(model: dict | None, task: str = "classification") -> ModelSpec:
    return ModelSpec(task, None if model is None else MODEL_CONFIG.validate_python(model))


def _mismatch(model: dict, shape: tuple[int, ...], task: str = "classification") -> SpecMismatch:
    with pytest.raises(SpecMismatch) as info:
        build_model(_spec(model, task), shape, 3)
    return info.value


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # These nets are tiny: on a busy two-core machine a second thread only adds contention
    # (a small LSTM step is 50x slower with two threads there).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# Every family, its input rank, its output shape
# ---------------------------------------------------------------------------------------------

SEQUENCE_LAYERS = {
    "layers": [
        {"type": "conv1d", "filters": 8, "kernel_size": 3, "activation": "relu"},
        {"type": "max_pool1d", "size": 2},
        {"type": "residual", "layers": [{"type": "conv1d", "filters": 8}, {"type": "batch_norm"}]},
        {"type": "gru", "units": 6, "bidirectional": True},
    ]
}
IMAGE_LAYERS = {
    "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "valid", "stride": 2},
        {"type": "batch_norm"},
        {"type": "activation", "function": "leaky_relu", "negative_slope": 0.2},
        {"type": "avg_pool2d"},
        {"type": "global_avg_pool"},
        {"type": "dropout", "rate": 0.2},
    ]
}

CASES = [
    # (task, model, input shape, output shape)
    ("classification", {}, (10,), (3,)),
    ("regression", {"family": "mlp", "batch_norm": True, "activation": "selu"}, (4, 5), (3,)),
    ("classification", {"family": "cnn"}, (1, 8, 8), (3,)),
    ("classification", {"family": "cnn", "residual": True, "filters": [8, 16]}, (3, 9, 7), (3,)),
    ("classification", {"family": "cnn", "preset": "image"}, (8, 8), (3,)),
    ("regression", {"family": "cnn"}, (50, 2), (3,)),
    ("regression", {"family": "cnn", "residual": True, "head": [16]}, (50, 2), (3,)),
    ("classification", {"family": "rnn"}, (20, 3), (3,)),
    (
        "regression",
        {"family": "rnn", "cell": "gru", "layers": 2, "bidirectional": True},
        (20, 3),
        (3,),
    ),
    ("forecasting", {"family": "rnn", "cell": "rnn", "dropout": 0.1, "head": [8]}, (12, 1), (3,)),
    ("reconstruction", {"family": "autoencoder"}, (12,), (12,)),
    ("reconstruction", {"family": "autoencoder"}, (3, 9, 7), (3, 9, 7)),
    ("reconstruction", {"family": "autoencoder", "kind": "conv"}, (25, 3), (25, 3)),
    ("reconstruction", {"family": "autoencoder", "kind": "dense"}, (2, 6, 6), (2, 6, 6)),
    ("classification", SEQUENCE_LAYERS, (20, 2), (3,)),
    ("classification", IMAGE_LAYERS, (1, 12, 12), (3,)),
    (
        "classification",
        {
            "layers": [
                {"type": "embedding", "num_embeddings": 30, "dim": 4},
                {"type": "lstm", "units": 5},
            ]
        },
        (15,),
        (3,),
    ),
    (
        "reconstruction",
        {
            "layers": [
                {"type": "dense", "units": 4, "activation": "tanh"},
                {"type": "dense", "units": 9},
            ]
        },
        (9,),
        (9,),
    ),
]


@pytest.mark.parametrize("task, model, input_shape, output_shape", CASES)
def test_each_family_builds_for_its_input_rank(task, model, input_shape, output_shape):
    built = build_model(_spec(model, task), input_shape, 3)

    out = built(torch.randn(4, *input_shape).abs())  # abs: valid integer codes for embeddings

    assert tuple(out.shape) == (4, *output_shape)
    out.sum().backward()  # every family trains end to end


@pytest.mark.parametrize("task, model, input_shape, output_shape", CASES)
def test_the_serving_network_computes_what_the_model_does_without_its_dropout(
    task, model, input_shape, output_shape
):
    built = build_model(_spec(model, task), input_shape, 3).train(False)
    keys = list(built.state_dict())
    x = torch.randn(4, *input_shape).abs()

    lean = without_eval_identities(built)

    with torch.inference_mode():
        assert torch.equal(lean(x), built(x))
    sequential = [m for m in lean.modules() if type(m).forward is nn.Sequential.forward]
    assert not any(isinstance(c, EVAL_IDENTITIES) for m in sequential for c in m.children())
    # The model itself is untouched: it still saves and loads under its own keys.
    assert list(built.state_dict()) == keys
    assert all(p is q for p, q in zip(lean.parameters(), built.parameters(), strict=True))


def test_an_int_input_is_a_rank_one_shape():
    spec = Spec.model_validate({"task": "regression", "target": "y"})

    assert build_model(spec, 7, 1)(torch.zeros(2, 7)).shape == (2, 1)


def test_default_mlp_keeps_the_layout_saved_models_load_into():
    spec = Spec.model_validate({"task": "classification", "target": "label"})

    torch.manual_seed(0)
    model = build_model(spec, 7, 3)
    torch.manual_seed(0)
    reference = nn.Sequential(
        nn.Linear(7, 64), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(32, 3),
    )  # fmt: skip

    assert repr(model) == repr(reference)
    assert model.state_dict().keys() == reference.state_dict().keys()
    # Same seed, same weights: the parameter-limit probe draws no random numbers.
    ours = model.state_dict()
    for key, theirs in reference.state_dict().items():
        assert torch.equal(ours[key], theirs)


@pytest.mark.parametrize(
    "task, input_shape, family",
    [
        ("classification", (10,), "mlp"),
        ("regression", (20, 3), "rnn"),
        ("classification", (1, 8, 8), "cnn"),
        ("reconstruction", (10,), "autoencoder"),
    ],
)
def test_a_spec_without_model_gets_the_family_for_its_input(task, input_shape, family):
    assert default_model_config(task, input_shape).family == family
    output = build_model(_spec(None, task), input_shape, 2)(torch.zeros(2, *input_shape))
    assert output.shape[0] == 2


# ---------------------------------------------------------------------------------------------
# The layer table
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task, model, input_shape, output_shape", CASES)
def test_layer_table_is_measured_and_adds_up(task, model, input_shape, output_shape):
    spec = _spec(model, task)

    summary = describe_model(spec, input_shape, 3)

    assert summary.output_shape == list(output_shape)
    assert summary.parameters == count_parameters(build_model(spec, input_shape, 3))
    assert sum(row.parameters for row in summary.layers) == summary.parameters
    assert all(row.output_shape for row in summary.layers)
    assert summary.layers[-1].output_shape == list(output_shape)


def test_layer_table_of_an_explicit_list_follows_the_spec():
    summary = describe_model(_spec(SEQUENCE_LAYERS), (20, 2), 3)

    rows = [(row.name, row.type, row.output_shape, row.parameters) for row in summary.layers]
    assert rows == [
        ("layers[0]", "conv1d", [20, 8], 2 * 8 * 3 + 8),
        ("layers[1]", "max_pool1d", [10, 8], 0),
        ("layers[2]", "residual", [10, 8], 8 * 8 * 3 + 8 + 2 * 8),
        ("layers[3]", "gru", [12], 2 * 3 * (8 * 6 + 6 * 6 + 2 * 6)),
        ("head[0]", "dense", [3], 12 * 3 + 3),
    ]


def test_no_head_is_added_after_a_dense_layer_of_the_output_size():
    model = {
        "layers": [
            {"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dense", "units": 3},
        ]
    }

    summary = describe_model(_spec(model), (5,), 3)

    assert [row.name for row in summary.layers] == ["layers[0]", "layers[1]"]


# ---------------------------------------------------------------------------------------------
# Shape errors name the field
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, input_shape, field, words",
    [
        (
            {
                "layers": [
                    {"type": "dense", "units": 4},
                    {"type": "conv1d", "filters": 2, "kernel_size": 5},
                ]
            },
            (3, 2),
            "model.layers[1].kernel_size",
            "5 is larger than the input length 3 at that layer",
        ),
        (
            {"layers": [{"type": "conv2d", "filters": 2, "kernel_size": 5}]},
            (1, 8, 4),
            "model.layers[0].kernel_size",
            "5 is larger than the input width 4",
        ),
        (
            {
                "layers": [
                    {"type": "conv1d", "filters": 4, "padding": "valid"},
                    {"type": "max_pool1d", "size": 2},
                    {"type": "max_pool1d", "size": 2},
                ]
            },
            (5, 1),
            "model.layers[2].size",
            "2 is larger than the input length 1",
        ),
        (
            {"layers": [{"type": "max_pool2d", "size": 3}]},
            (1, 2, 8),
            "model.layers[0].size",
            "3 is larger than the input height 2",
        ),
        (
            {"layers": [{"type": "lstm", "units": 4}]},
            (30,),
            "model.layers[0]",
            "lstm needs sequence input [T, C]; at this layer the input is [30]",
        ),
        (
            {"layers": [{"type": "conv2d", "filters": 4}]},
            (30, 2),
            "model.layers[0]",
            "conv2d needs image input [C, H, W]",
        ),
        (
            {"layers": [{"type": "residual", "layers": [{"type": "max_pool1d"}]}]},
            (8, 2),
            "model.layers[0].layers",
            "turns [8, 2] into [4, 2]",
        ),
        (
            {
                "layers": [
                    {"type": "dense", "units": 4},
                    {"type": "embedding", "num_embeddings": 3, "dim": 2},
                ]
            },
            (8,),
            "model.layers[1].type",
            "must be the first layer",
        ),
        (
            {"family": "rnn"},
            (30,),
            "model.family",
            "rnn needs sequence input [T, C]; this dataset gives [30]",
        ),
        ({"family": "cnn"}, (30,), "model.family", "cnn needs"),
        ({"family": "cnn", "preset": "sequence"}, (1, 8, 8), "model.preset", "sequence input"),
        ({"family": "cnn", "kernel_size": 9}, (1, 8, 8), "model.kernel_size", "9 is larger"),
        ({"family": "cnn", "kernel_size": 9}, (5, 2), "model.kernel_size", "sequence length 5"),
    ],
)
def test_a_layer_that_cannot_take_its_input_names_its_field(model, input_shape, field, words):
    error = _mismatch(model, input_shape)

    assert error.field == field
    assert words in error.reason


def test_describe_raises_the_same_named_error():
    model = {"layers": [{"type": "conv1d", "filters": 2, "kernel_size": 5}]}

    with pytest.raises(SpecMismatch) as info:
        describe_model(_spec(model), (3, 2), 3)

    assert info.value.field == "model.layers[0].kernel_size"


def test_residual_block_that_changes_channels_gets_a_projection():
    model = {"layers": [{"type": "residual", "layers": [{"type": "conv2d", "filters": 6}]}]}

    summary = describe_model(_spec(model), (2, 5, 5), 3)

    assert summary.layers[0].output_shape == [6, 5, 5]
    assert summary.layers[0].parameters == (2 * 6 * 9 + 6) + 2 * 6  # conv + 1x1 projection


@pytest.mark.parametrize(
    "task, model, field",
    [
        ("reconstruction", {"family": "mlp"}, "model.family"),
        ("classification", {"family": "autoencoder"}, "model.family"),
        ("reconstruction", {"layers": [{"type": "dense", "units": 4}]}, "model.layers"),
    ],
)
def test_task_and_family_must_agree(task, model, field):
    assert _mismatch(model, (8,), task).field == field


def test_conv_autoencoder_needs_a_sequence_or_an_image():
    assert _mismatch({"family": "autoencoder", "kind": "conv"}, (8,), "reconstruction").field == (
        "model.kind"
    )


def test_a_model_over_the_parameter_limit_is_refused_before_it_is_allocated():
    spec = _spec({"hidden": [65536, 65536]})

    with pytest.raises(SpecMismatch) as info:
        build_model(spec, 8, 3)

    assert info.value.field == "model"
    assert "limit" in info.value.reason
    assert build_model(_spec({"hidden": [64]}), 8, 3, max_parameters=1000) is not None


# ---------------------------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------------------------


def _locations(exc: ValidationError) -> list[tuple]:
    return [tuple(error["loc"]) for error in exc.errors()]


def _validate(model: dict) -> Spec:
    return Spec.model_validate({"task": "classification", "target": "y", "model": model})


def test_layers_without_family_are_the_layers_family():
    spec = _validate({"layers": [{"type": "dense", "units": 4}]})

    assert isinstance(spec.model, LayersConfig)
    assert Spec.model_validate_json(spec.model_dump_json()) == spec


def test_unknown_layer_type_lists_the_allowed_ones():
    with pytest.raises(ValidationError) as info:
        _validate({"layers": [{"type": "dense", "units": 4}, {"type": "transformer"}]})

    assert _locations(info.value) == [("model", "layers", 1, "type")]
    message = info.value.errors()[0]["msg"]
    for name in ("dense", "conv1d", "conv2d", "max_pool2d", "global_avg_pool", "lstm", "residual"):
        assert repr(name) in message
    assert "dense" in info.value.errors()[0]["ctx"]["expected"]


def test_every_layer_type_the_spec_admits_has_a_builder():
    # The spec's union and the builders' table are two lists of the same kinds; a type added
    # to one alone would validate and then fail to build.
    assert set(LAYER_BUILDERS) == set(LAYER_TYPES)


def test_unknown_family_lists_the_allowed_ones():
    with pytest.raises(ValidationError) as info:
        _validate({"family": "transformer"})

    assert _locations(info.value) == [("model", "family")]
    assert "'autoencoder'" in info.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    "model, location",
    [
        ({"layers": [{"type": "max_pool1d", "size": 0}]}, ("model", "layers", 0, "size")),
        (
            {"layers": [{"type": "residual", "layers": [{"type": "dense", "units": 10**9}]}]},
            ("model", "layers", 0, "layers", 0, "units"),
        ),
        ({"family": "rnn", "hidden": 100_000}, ("model", "hidden")),
        ({"family": "cnn", "filters": [10**6]}, ("model", "filters", 0)),
        ({"family": "autoencoder", "latent": 0}, ("model", "latent")),
        (
            {"layers": [{"type": "dense", "units": 4, "kernel": 3}]},
            ("model", "layers", 0, "kernel"),
        ),
        ({"layers": [{"units": 4}]}, ("model", "layers", 0)),
        ({"layers": []}, ("model", "layers")),
    ],
)
def test_schema_errors_are_reported_at_the_path_the_user_wrote(model, location):
    with pytest.raises(ValidationError) as info:
        _validate(model)

    assert location in _locations(info.value)


def test_same_padding_with_a_stride_needs_an_odd_kernel():
    with pytest.raises(ValidationError) as info:
        _validate({"layers": [{"type": "conv1d", "filters": 2, "kernel_size": 4, "stride": 2}]})

    assert ("model", "layers", 0) in _locations(info.value)


# ---------------------------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------------------------


def _hidden_weight(init: str, activation: str = "relu") -> torch.Tensor:
    spec = _spec({"hidden": [512], "init": init, "activation": activation, "dropout": 0.0})
    torch.manual_seed(0)
    return build_model(spec, 512, 2)[0].weight.detach()


@pytest.mark.parametrize(
    "init, expected_std",
    [
        ("default", math.sqrt(1 / (3 * 512))),  # PyTorch: kaiming_uniform with a = sqrt(5)
        ("he_normal", math.sqrt(2 / 512)),
        ("he_uniform", math.sqrt(2 / 512)),
        ("xavier_normal", math.sqrt(2 / (512 + 512))),
        ("xavier_uniform", math.sqrt(2 / (512 + 512))),
    ],
)
def test_init_scheme_sets_the_weight_scale(init, expected_std):
    weight = _hidden_weight(init)

    assert weight.std().item() == pytest.approx(expected_std, rel=0.03)


def test_he_uses_the_leaky_relu_slope():
    weight = _hidden_weight("he_normal", activation="leaky_relu")

    assert weight.std().item() == pytest.approx(math.sqrt(2 / (1 + 0.01**2) / 512), rel=0.03)


def test_uniform_schemes_stay_within_their_bound():
    assert _hidden_weight("xavier_uniform").abs().max() <= math.sqrt(6 / 1024)
    assert _hidden_weight("he_uniform").abs().max() <= math.sqrt(6 / 512)


def test_orthogonal_init_gives_orthonormal_rows_and_zero_biases():
    spec = _spec({"hidden": [64], "init": "orthogonal"})
    layer = build_model(spec, 64, 2)[0]

    assert torch.allclose(layer.weight @ layer.weight.T, torch.eye(64), atol=1e-4)
    assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("init", ["default", "he_normal"])
def test_recurrent_weights_are_orthogonal_per_gate(init):
    model = build_model(_spec({"family": "rnn", "hidden": 16, "init": init}), (10, 3), 2)
    lstm = model.recurrent.rnn

    for gate in lstm.weight_hh_l0.detach().split(16):
        assert torch.allclose(gate @ gate.T, torch.eye(16), atol=1e-4)
    forget = lstm.bias_ih_l0[16:32] + lstm.bias_hh_l0[16:32]
    assert torch.allclose(forget, torch.ones(16))


def test_init_applies_to_every_layer_of_an_explicit_list():
    model = {"layers": [{"type": "conv1d", "filters": 256, "kernel_size": 4}], "init": "he_normal"}
    built = build_model(_spec(model), (32, 128), 2)
    conv = built.layers[0][0].inner

    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (128 * 4)), rel=0.03)
    assert built.head[-1].weight.std().item() == pytest.approx(math.sqrt(2 / (32 * 256)), rel=0.1)


# ---------------------------------------------------------------------------------------------
# Autoencoder embeddings
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("input_shape", [(12,), (3, 9, 7), (25, 3)])
def test_autoencoder_encodes_to_its_latent_size(input_shape):
    spec = _spec({"family": "autoencoder", "latent": 5}, "reconstruction")
    model = build_model(spec, input_shape, 0)

    assert model.encode(torch.randn(4, *input_shape)).shape == (4, 5)


# ---------------------------------------------------------------------------------------------
# Embedded category codes in a feature vector
# ---------------------------------------------------------------------------------------------

# A feature vector [5] whose positions 1 and 3 hold category codes.
EMBEDDED = (EmbeddedInput(1, 10, 4), EmbeddedInput(3, 6, 2))


def test_embedded_codes_are_looked_up_and_join_the_other_inputs():
    model = build_model(_spec({"hidden": [8]}), 5, 3, embedded=EMBEDDED)
    x = torch.tensor([[0.5, 7.0, -1.0, 2.0, 3.0]])

    summary = describe_model(_spec({"hidden": [8]}), 5, 3, embedded=EMBEDDED)

    assert model(x).shape == (1, 3)
    assert [row.type for row in summary.layers[:2]] == ["embedding", "dense"]
    assert summary.layers[0].output_shape == [3 + 4 + 2]
    assert summary.layers[0].parameters == 10 * 4 + 6 * 2
    assert summary.layers[1].parameters == (9 + 1) * 8
    assert summary.input_shape == [5]


def test_a_code_outside_the_table_takes_the_nearest_row_not_an_index_error():
    model = build_model(_spec({"hidden": [8]}), 5, 3, embedded=EMBEDDED).train(False)

    out = model(torch.tensor([[0.0, 99.0, 0.0, -5.0, 0.0], [0.0, 9.0, 0.0, 0.0, 0.0]]))

    assert torch.equal(out[0], out[1])


def test_embedded_codes_feed_a_layers_list():
    spec = _spec({"layers": [{"type": "dense", "units": 4}]})

    assert build_model(spec, 5, 2, embedded=EMBEDDED)(torch.zeros(2, 5)).shape == (2, 2)


def test_a_family_that_cannot_take_embedded_codes_names_the_family():
    with pytest.raises(SpecMismatch) as info:
        build_model(_spec({"family": "rnn"}), 5, 3, embedded=EMBEDDED)

    assert info.value.field == "model.family"
    assert "embedding" in info.value.reason


# ---------------------------------------------------------------------------------------------
# Small nets learn toy tasks with a plain loop
# ---------------------------------------------------------------------------------------------


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> nn.Module:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for batch in order.split(64):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def _sines(n: int, seed: int, steps: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy sine waves of 1 to 4 cycles per window, random phase: [n, steps, 1], class."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=generator)
    phase = torch.rand(n, 1, generator=generator) * 2 * math.pi
    t = torch.linspace(0, 1, steps)
    x = torch.sin(2 * math.pi * (labels[:, None] + 1) * t + phase)
    x = x + 0.2 * torch.randn(n, steps, generator=generator)
    return x.unsqueeze(-1), labels


def _bars(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 noise with one bright row (class 0) or column (class 1) at a random place."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    where = nn.functional.one_hot(torch.randint(0, 8, (n,), generator=generator), 8).float()
    rows = where[:, :, None].expand(n, 8, 8)
    bars = torch.where(labels[:, None, None] == 0, rows, rows.transpose(1, 2))
    x = bars + 0.3 * torch.randn(n, 8, 8, generator=generator)
    return x.unsqueeze(1), labels


def test_tiny_lstm_learns_the_frequency_of_a_sine():
    torch.manual_seed(0)
    x, y = _sines(512, seed=0)
    model = build_model(_spec({"family": "rnn", "hidden": 16}), (40, 1), 4)

    _fit(model, x, y, epochs=12)

    assert _accuracy(model, *_sines(256, seed=1)) > 0.9


def test_tiny_sequence_cnn_learns_the_frequency_of_a_sine():
    torch.manual_seed(0)
    x, y = _sines(512, seed=0)
    model = build_model(_spec({"family": "cnn", "filters": [8, 16, 16]}), (40, 1), 4)

    _fit(model, x, y, epochs=8)

    assert _accuracy(model, *_sines(256, seed=1)) > 0.9


def test_tiny_image_cnn_tells_rows_from_columns():
    torch.manual_seed(0)
    x, y = _bars(256, seed=0)
    model = build_model(_spec({"family": "cnn", "filters": [4, 8]}), (1, 8, 8), 2)

    _fit(model, x, y, epochs=10)

    assert _accuracy(model, *_bars(256, seed=1)) > 0.9
