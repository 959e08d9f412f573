"""Issue 17 point 2 in the engine: RBMs trained by contrastive divergence, and greedy DBN
pretraining of an MLP's hidden layers before fine-tuning, all in one recipe run."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from pydantic import ValidationError
from sklearn.datasets import load_digits
from torch import nn

from engine.errors import TrainingCancelled
from engine.models.rbm import RBM
from engine.spec import Spec
from engine.spec.model import PretrainConfig
from engine.training.checkpoint import checkpoint_to_bytes
from engine.training.preparation import dry_run
from engine.training.pretraining import pretrain_dbn
from engine.training.recipe import train


def _digits(n: int = 400) -> torch.Tensor:
    return torch.tensor(load_digits().data[:n] / 16.0, dtype=torch.float32)  # in [0, 1]


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for visible, hidden in zip(widths, widths[1:], strict=False):
        layers += [nn.Linear(visible, hidden), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], 3))


def _spec(pretrain: dict, **model) -> Spec:
    return Spec.model_validate(
        {
            "task": "classification",
            "target": "label",
            "model": {"hidden": [16, 8], "dropout": 0.0, "pretrain": pretrain, **model},
            "training": {"epochs": 3, "batch_size": 32, "device": "cpu", "early_stopping": None},
        }
    )


def _digits_table(n: int = 300) -> pa.Table:
    digits = load_digits()
    columns = {f"p{i}": digits.data[:n, i] / 16.0 for i in range(64)}
    return pa.table({**columns, "label": digits.target[:n] % 3})


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_cd1_lowers_the_reconstruction_error_on_digits(visible: str) -> None:
    x = _digits()
    if visible == "gaussian":
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    torch.manual_seed(0)
    untrained = RBM(64, 32, visible).reconstruction_error(x).item()
    config = PretrainConfig(epochs=8, visible=visible, learning_rate=0.05)
    reports = pretrain_dbn(_mlp([64, 32]), config, x, 32, seed=0).reports
    errors = [r.reconstruction_error for r in reports]
    assert errors[-1] < errors[0]
    assert errors[-1] < 0.8 * untrained


def test_persistent_cd_carries_its_chain_across_updates() -> None:
    x = _digits(64)
    rbm = RBM(64, 16)
    generator = torch.Generator().manual_seed(0)
    _, chain = rbm.contrastive_divergence(x[:8], k=1, generator=generator)
    assert chain.shape == (8, 16)
    # The next update's negative phase runs on from that chain, not from its own batch of 32.
    _, carried = rbm.contrastive_divergence(x[8:40], k=2, chain=chain, generator=generator)
    assert carried.shape == (8, 16)
    assert set(carried.unique().tolist()) <= {0.0, 1.0}
    # Plain CD restarts at the batch: its chain has the batch's rows.
    _, restarted = rbm.contrastive_divergence(x[8:40], k=2, generator=generator)
    assert restarted.shape == (32, 16)


def test_persistent_cd_pretrains_too() -> None:
    config = PretrainConfig(epochs=6, persistent=True, cd_k=2, learning_rate=0.05)
    reports = pretrain_dbn(_mlp([64, 32]), config, _digits(), 32, seed=0).reports
    assert reports[-1].reconstruction_error < reports[0].reconstruction_error


def test_rbm_weights_land_in_the_mlp_layer_by_layer() -> None:
    model, x = _mlp([64, 16, 8]), _digits(200)
    pretrained = pretrain_dbn(model, PretrainConfig(epochs=2), x, 32, seed=0)
    first, second = pretrained.rbms
    assert (first.weight.shape, second.weight.shape) == ((16, 64), (8, 16))
    assert torch.equal(model[0].weight, first.weight) and torch.equal(
        model[0].bias, first.hidden_bias
    )
    assert torch.equal(model[2].weight, second.weight)
    assert torch.equal(model[2].bias, second.hidden_bias)
    # The MLP's sigmoid layer computes what the RBM's hidden units do.
    assert torch.allclose(torch.sigmoid(model[0](x)), first.hidden_probabilities(x))
    assert [(r.layer, r.epoch) for r in pretrained.reports] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert first.visible_type == "bernoulli" and second.visible_type == "bernoulli"


def test_the_visible_units_follow_the_inputs_by_default() -> None:
    x = _digits(100)
    assert (
        pretrain_dbn(_mlp([64, 8]), PretrainConfig(epochs=1), x, 32, 0).rbms[0].visible_type
        == "bernoulli"
    )
    standardised = (x - x.mean(0)) / (x.std(0) + 1e-6)
    rbm = pretrain_dbn(_mlp([64, 8]), PretrainConfig(epochs=1), standardised, 32, 0).rbms[0]
    assert rbm.visible_type == "gaussian"


def test_a_job_reports_pretraining_epochs_then_fine_tuning_epochs() -> None:
    reports = []
    spec = _spec({"epochs": 2})
    result = train(spec, _digits_table(), on_epoch=reports.append)
    assert [r.epoch for r in reports] == [1, 2, 3, 4, 5, 6, 7]
    assert {r.epochs for r in reports} == {7}
    assert [r.metrics.get("pretrain_layer") for r in reports[:4]] == [1.0, 1.0, 2.0, 2.0]
    assert all("pretrain_reconstruction_error" in r.metrics for r in reports[:4])
    assert all("train_loss" in r.metrics and "pretrain_layer" not in r.metrics for r in reports[4:])
    assert [h["epoch"] for h in result.fit.history] == [5, 6, 7]
    assert result.fit.epochs_run == 7 and result.spec.model.activation == "sigmoid"


def test_a_run_resumed_from_a_fine_tuning_checkpoint_does_not_pretrain_again() -> None:
    spec, checkpoints = _spec({"epochs": 2}), []
    train(spec, _digits_table(), on_checkpoint=checkpoints.append, checkpoint_interval_seconds=0)
    reports = []
    train(
        spec,
        _digits_table(),
        on_epoch=reports.append,
        resume_from=checkpoint_to_bytes(checkpoints[0]),
    )
    assert [r.epoch for r in reports] == [6, 7]


def test_cancelling_during_pretraining_stops_it() -> None:
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 3

    reports = []
    with pytest.raises(TrainingCancelled):
        train(_spec({"epochs": 5}), _digits_table(), on_epoch=reports.append, should_cancel=cancel)
    assert reports == []


def test_the_dry_run_describes_the_rbms() -> None:
    _, summary = dry_run(_spec({"epochs": 4, "cd_k": 3}), _digits_table())
    pretraining = summary.pretraining
    assert pretraining["total_epochs"] == 8 and pretraining["cd_k"] == 3
    rows = [
        (r["layer"], r["visible_units"], r["hidden_units"], r["parameters"])
        for r in pretraining["rbms"]
    ]
    width = summary.input_shape[0]  # constant pixels are dropped by the preprocessing
    assert rows == [("0", width, 16, width * 16 + width + 16), ("2", 16, 8, 16 * 8 + 16 + 8)]
    dense = {layer.name for layer in summary.layers if layer.type == "dense"}
    assert {r["layer"] for r in pretraining["rbms"]} <= dense


@pytest.mark.parametrize(
    ("model", "field", "words"),
    [
        ({"family": "cnn", "pretrain": {}}, ("model", "pretrain"), "mlp"),
        ({"hidden": [8], "activation": "relu", "pretrain": {}}, ("model", "pretrain"), "sigmoid"),
        ({"hidden": [8], "batch_norm": True, "pretrain": {}}, ("model", "pretrain"), "batch_norm"),
        ({"pretrain": {"epochs": 0}}, ("model", "pretrain", "epochs"), "greater"),
        ({"pretrain": {"cd_k": 0}}, ("model", "pretrain", "cd_k"), "greater"),
        ({"pretrain": {"visible": "poisson"}}, ("model", "pretrain", "visible"), "gaussian"),
    ],
)
def test_specs_pretraining_cannot_train_are_refused(model: dict, field: tuple, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Spec.model_validate({"task": "regression", "target": "y", "model": model})
    errors = {e["loc"]: e["msg"] for e in caught.value.errors()}
    assert field in errors and words in errors[field]


def test_pretraining_on_regression_is_fine() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    table = pa.table({**{f"x{i}": x[:, i] for i in range(4)}, "y": x.sum(axis=1)})
    spec = Spec.model_validate(
        {
            "task": "regression",
            "target": "y",
            "model": {"hidden": [8], "pretrain": {"epochs": 2}},
            "training": {"epochs": 2, "device": "cpu"},
        }
    )
    assert train(spec, table).fit.epochs_run == 4
