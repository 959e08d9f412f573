"""Attention layers: self-attention and attention pooling in a layers list and as the rnn
family's `attention`, with the padding mask of an embedding's `padding_idx`; recurrent layers
under that mask read the real steps alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from engine.artifacts import WEIGHTS_FILE, load_model
from engine.data.arrays.dataset import ArrayData
from engine.errors import SpecMismatch
from engine.models import build_model, describe_model
from engine.models.attention import AttentionPooling, SelfAttention
from engine.models.components import Recurrent
from engine.spec import Spec
from engine.training.preparation import prepare
from engine.training.recipe import train

STEPS, VOCABULARY = 12, 20


def _spec(model: dict, target: str = "y") -> Spec:
    return Spec.model_validate(
        {
            "task": "classification",
            "target": target,
            "model": model,
            "training": {"epochs": 3, "device": "cpu", "learning_rate": 0.01},
        }
    )


def _token_layers(*middle: dict) -> dict:
    return {
        "layers": [
            {"type": "embedding", "num_embeddings": VOCABULARY, "dim": 8, "padding_idx": 0},
            *middle,
        ]
    }


def _padded(batch: int = 5, length: int = 7, seed: int = 0) -> torch.Tensor:
    """Codes 1.. at the first `length` steps, padding (0) after them."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(1, VOCABULARY, (batch, STEPS), generator=generator).float()
    x[:, length:] = 0
    return x


def tokens(n: int = 120, seed: int = 0) -> ArrayData:
    """Token sequences of varied length padded with 0; class 1 when token 7 occurs."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, STEPS), dtype=np.float32)
    y = np.arange(n) % 2
    for i in range(n):
        length = int(rng.integers(3, STEPS + 1))
        row = rng.choice([c for c in range(1, VOCABULARY) if c != 7], size=length)
        if y[i]:
            row[rng.integers(0, length)] = 7
        x[i, :length] = row
    return ArrayData(x, y.astype(np.int64), [0, 1], "vector")


# --- the modules ------------------------------------------------------------------------------


def test_padded_steps_get_zero_weight_and_their_values_do_not_change_the_output():
    torch.manual_seed(0)
    x = torch.randn(3, 6, 4)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] + [False] * 5])
    garbage = x.clone()
    garbage[~mask] = 1e3 * torch.randn(int((~mask).sum()), 4)
    pooling, attention = AttentionPooling(4, hidden=3).eval(), SelfAttention(4, heads=2).eval()

    weights = pooling.weights(x, mask)
    assert torch.all(weights[~mask] == 0)
    assert torch.allclose(weights.sum(dim=1), torch.ones(3))
    assert torch.allclose(pooling(x, mask), pooling(garbage, mask))
    attended = attention.weights(x, mask)  # [N, heads, queries, keys]
    assert torch.all(attended.transpose(1, 3)[~mask] == 0)  # no query attends to a padded key
    out = attention(garbage, mask)
    assert torch.allclose(out[mask], attention(x, mask)[mask], atol=1e-5)
    assert torch.all(out[~mask] == 0)  # padded steps carry nothing onwards


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_recurrent_layer_reads_the_real_steps_wherever_the_padding_is(cell, bidirectional):
    torch.manual_seed(0)
    real = torch.randn(1, 4, 3)
    recurrent = Recurrent(cell, 3, 5, layers=2, bidirectional=bidirectional).eval()
    sequences = Recurrent(cell, 3, 5, bidirectional=bidirectional, return_sequences=True).eval()
    padding = 1e3 * torch.randn(1, 3, 3)  # whatever padded steps hold must not count
    layouts = {  # positions of the 4 real steps among 7
        "after": [0, 1, 2, 3],
        "before": [3, 4, 5, 6],
        "between": [0, 2, 3, 6],
    }
    with torch.no_grad():
        alone, alone_steps = recurrent(real), sequences(real)
        for positions in layouts.values():
            mask = torch.zeros(1, 7, dtype=torch.bool)
            mask[0, positions] = True
            x = torch.empty(1, 7, 3)
            x[mask], x[~mask] = real[0], padding[0]
            assert torch.allclose(recurrent(x, mask), alone, atol=1e-6)
            steps = sequences(x, mask)
            assert torch.allclose(steps[mask], alone_steps[0], atol=1e-6)
            assert torch.all(steps[~mask] == 0)


def test_an_lstm_learns_a_rule_about_the_first_token_however_much_padding_follows():
    # 3 to 11 codes padded to 30 steps; the class is whether the first code is below 10. An
    # LSTM that read the padding would have to carry that code through up to 27 padded steps
    # (it scored 0.55 so); reading the real steps alone it scores 0.97.
    rng = np.random.default_rng(0)
    x = np.zeros((600, 30), dtype=np.float32)
    y = np.zeros(600, dtype=np.int64)
    for i in range(600):
        row = rng.integers(1, VOCABULARY, size=int(rng.integers(3, 12)))
        x[i, : len(row)], y[i] = row, int(row[0] < 10)
    spec = _spec(_token_layers({"type": "lstm", "units": 32}))
    spec.training.epochs, spec.training.early_stopping = 10, None

    trained = train(spec, ArrayData(x, y, [0, 1], "vector"))

    assert trained.evaluation["metrics"]["accuracy"] >= 0.9


def test_a_sequence_that_is_all_padding_gives_zeros_not_nan():
    x = torch.randn(2, 5, 4)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    assert torch.equal(AttentionPooling(4)(x, mask), torch.zeros(2, 4))
    assert torch.equal(SelfAttention(4)(x, mask), torch.zeros(2, 5, 4))


# --- in a layers list, with the embedding's padding mask -------------------------------------


@pytest.mark.parametrize(
    "middle",
    [
        [{"type": "self_attention", "heads": 2}, {"type": "attention_pooling", "hidden": 4}],
        [
            {"type": "residual", "layers": [{"type": "self_attention", "heads": 4}]},
            {"type": "global_avg_pool"},
        ],
        [
            {"type": "self_attention"},
            {"type": "dense", "units": 8, "activation": "relu"},
            {"type": "attention_pooling"},
        ],
        [{"type": "lstm", "units": 8}],
        [{"type": "gru", "units": 8, "bidirectional": True, "layers": 2}],
        [{"type": "lstm", "units": 6, "return_sequences": True}, {"type": "global_avg_pool"}],
        [
            {"type": "rnn", "units": 6, "return_sequences": True},
            {"type": "self_attention", "heads": 2},
            {"type": "attention_pooling"},
        ],
    ],
)
def test_padding_leaves_the_output_as_without_the_padded_steps(middle):
    torch.manual_seed(0)
    model = build_model(_spec(_token_layers(*middle)), (STEPS,), 3).eval()
    padded = _padded(length=7)
    with torch.no_grad():
        assert torch.allclose(model(padded), model(padded[:, :7]), atol=1e-5)


def test_without_padding_idx_padded_steps_are_attended():
    layers = _token_layers({"type": "self_attention"}, {"type": "attention_pooling"})
    del layers["layers"][0]["padding_idx"]
    torch.manual_seed(0)
    model = build_model(_spec(layers), (STEPS,), 3).eval()
    padded = _padded(length=7)
    with torch.no_grad():
        assert not torch.allclose(model(padded), model(padded[:, :7]), atol=1e-5)


def test_the_mask_ends_where_a_layer_changes_the_sequence_length():
    model = build_model(
        _spec(_token_layers({"type": "max_pool1d", "size": 2}, {"type": "attention_pooling"})),
        (STEPS,),
        2,
    )
    assert [unit.keeps_mask for unit in model.layers] == [True, False, False]


def test_the_layer_table_gives_each_attention_layers_shape_and_parameters():
    spec = _spec(
        _token_layers(
            {"type": "self_attention", "heads": 2},
            {"type": "attention_pooling", "hidden": 4},
        )
    )
    summary = describe_model(spec, (STEPS,), 3)
    rows = {row.name: row for row in summary.layers}
    assert (rows["layers[1]"].type, rows["layers[1]"].output_shape) == ("self_attention", [12, 8])
    assert rows["layers[1]"].parameters == (8 * 24 + 24) + (8 * 8 + 8)  # qkv and output
    assert (rows["layers[2]"].type, rows["layers[2]"].output_shape) == ("attention_pooling", [8])
    assert rows["layers[2]"].parameters == (8 * 4 + 4) + (4 + 1)
    assert summary.parameters == sum(row.parameters for row in summary.layers)


def test_heads_that_do_not_divide_the_channels_name_the_field():
    with pytest.raises(SpecMismatch) as info:
        build_model(_spec(_token_layers({"type": "self_attention", "heads": 3})), (STEPS,), 2)
    assert info.value.field == "model.layers[1].heads"


def test_attention_needs_a_sequence():
    with pytest.raises(SpecMismatch) as info:
        build_model(_spec({"layers": [{"type": "attention_pooling"}]}), (6,), 2)
    assert info.value.field == "model.layers[0]"


def test_padding_idx_must_be_a_code():
    with pytest.raises(ValidationError, match="padding_idx 20"):
        _spec(
            {"layers": [{"type": "embedding", "num_embeddings": 20, "dim": 4, "padding_idx": 20}]}
        )


# --- the rnn family's attention -----------------------------------------------------------------


def test_rnn_attention_pooling_reads_every_steps_output():
    plain = describe_model(_spec({"family": "rnn", "hidden": 8}), (10, 3), 2)
    pooled = describe_model(
        _spec({"family": "rnn", "hidden": 8, "attention": "pooling"}), (10, 3), 2
    )
    assert [row.name for row in pooled.layers] == ["recurrent", "attention", "head[0]"]
    assert pooled.layers[0].output_shape == [10, 8]
    assert (pooled.layers[1].type, pooled.layers[1].output_shape) == ("attention_pooling", [8])
    assert pooled.parameters == plain.parameters + 8 + 1


def test_rnn_self_attention_heads_must_divide_the_output_width():
    spec = {"family": "rnn", "hidden": 6, "bidirectional": True, "attention": "self"}
    summary = describe_model(_spec({**spec, "attention_heads": 4}), (10, 3), 2)
    assert summary.layers[1].output_shape == [12]
    with pytest.raises(SpecMismatch) as info:
        build_model(_spec({**spec, "attention_heads": 5}), (10, 3), 2)
    assert info.value.field == "model.attention_heads"
    with pytest.raises(ValidationError, match="attention_heads applies"):
        _spec({"family": "rnn", "attention_heads": 2})


# --- training --------------------------------------------------------------------------------


def test_token_codes_reach_the_embedding_unscaled_and_a_padded_model_trains():
    data = tokens()
    spec = _spec(
        _token_layers({"type": "self_attention", "heads": 2}, {"type": "attention_pooling"})
    )
    prepared = prepare(spec, data)
    assert set(np.unique(prepared.x_train.numpy())) <= set(range(VOCABULARY))
    trained = train(spec, data)
    assert trained.fit.epochs_run == 3
    assert np.isfinite(trained.fit.history[-1]["train_loss"])


def test_a_model_saved_before_recurrent_layers_took_the_mask_is_served_as_it_was_trained():
    trained = train(_spec(_token_layers({"type": "gru", "units": 8})), tokens())
    files = trained.files()
    # Such a folder's weights carry no format: the same tensors, saved as they were then.
    before = {**files, WEIGHTS_FILE: save_safetensors(load_safetensors(files[WEIGHTS_FILE]))}
    padded = _padded(length=7)
    with torch.no_grad():
        new, old = load_model(files)[2], load_model(before)[2]
        assert torch.allclose(new(padded), new(padded[:, :7]), atol=1e-5)
        # Served as validated: reading the padded steps, so the padding changes its output.
        assert not torch.allclose(old(padded), old(padded[:, :7]), atol=1e-3)
        assert torch.allclose(old(padded[:, :7]), new(padded[:, :7]))


def test_codes_outside_the_embedding_are_refused():
    data = tokens()
    spec = _spec(
        {"layers": [{"type": "embedding", "num_embeddings": 10, "dim": 4}, {"type": "flatten"}]}
    )
    with pytest.raises(SpecMismatch) as info:
        prepare(spec, data, fit_only=True)
    assert info.value.field == "model.layers[0].num_embeddings"
