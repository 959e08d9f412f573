"""Training techniques: every loss, optimizer, schedule, regulariser, batch size, precision and
task goes through the one loop; health warnings; checkpoints that resume exactly.

Models are plain torch modules so these tests pin the loop, not the model builders.
"""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch import nn

from engine.errors import SpecMismatch, TrainingCancelled, TrainingDiverged
from engine.spec import Spec
from engine.spec.training import LossMismatch, TrainingConfig, check_loss_for_task
from engine.training import trainer as trainer_module
from engine.training import validation as validation_module
from engine.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoint_from_bytes,
    checkpoint_to_bytes,
)
from engine.training.trainer import EpochReport, FitResult, Trainer

CPU = torch.device("cpu")


def make_spec(task: str = "classification", seed: int = 0, **training) -> Spec:
    training = {
        "epochs": 5,
        "learning_rate": 0.01,
        "device": "cpu",
        "early_stopping": None,
        **training,
    }
    spec = Spec.model_validate({"task": "regression", "target": "y", "seed": seed})
    # Built from a regression spec so these tests do not lean on other tasks' data rules.
    return spec.model_copy(update={"task": task, "training": TrainingConfig(**training)})


def mlp(inputs: int, outputs: int, hidden: int = 16, dropout: float = 0.0, seed: int = 0):
    torch.manual_seed(seed)
    layers = [nn.Linear(inputs, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(hidden, outputs))


def classes(n: int = 240, k: int = 3, seed: int = 0, noise: float = 0.3):
    """k Gaussian blobs in 4 dimensions: (x_train, y_train, x_val, y_val)."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=generator)
    centres = torch.randn(k, 4, generator=generator) * 2
    x = centres[y] + noise * torch.randn(n, 4, generator=generator)
    cut = n * 3 // 4
    return x[:cut], y[:cut], x[cut:], y[cut:]


def numbers(n: int = 240, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=generator)
    cut = n * 3 // 4
    return x[:cut], y[:cut], x[cut:], y[cut:]


def fit(spec: Spec, model: nn.Module, data, **kwargs) -> FitResult:
    return Trainer(spec, model, CPU, **kwargs.pop("trainer", {})).fit(*data, **kwargs)


def losses(result: FitResult, name: str = "train_loss") -> list[float]:
    return [h[name] for h in result.history]


def learning_rates(result: FitResult) -> list[float]:
    return [h["learning_rate"] for h in result.history]


# --- losses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "loss", "outputs"),
    [
        ("classification", "auto", 3),
        ("classification", "cross_entropy", 3),
        ("classification", "binary_cross_entropy", 1),
        ("classification", "binary_cross_entropy", 2),
        ("regression", "auto", 1),
        ("regression", "mse", 1),
        ("regression", "mae", 1),
        ("regression", "huber", 1),
    ],
)
def test_every_loss_reduces_the_training_loss(task, loss, outputs):
    data = classes(k=max(outputs, 2)) if task == "classification" else numbers()

    result = fit(make_spec(task, loss=loss, epochs=15), mlp(4, outputs), data)

    assert losses(result)[-1] < 0.7 * losses(result)[0]
    metric = "val_accuracy" if task == "classification" else "val_r2"
    assert result.history[-1][metric] > 0.8


def test_binary_cross_entropy_with_two_outputs_equals_cross_entropy():
    data = classes(k=2)

    bce = fit(make_spec(loss="binary_cross_entropy"), mlp(4, 2), data)
    ce = fit(make_spec(loss="cross_entropy"), mlp(4, 2), data)

    # sigmoid(o1 - o0) is softmax's P(class 1): the same loss, up to rounding.
    assert losses(bce) == pytest.approx(losses(ce), rel=1e-4)


def test_binary_cross_entropy_refuses_three_classes():
    with pytest.raises(SpecMismatch) as info:
        fit(make_spec(loss="binary_cross_entropy"), mlp(4, 3), classes(k=3))

    assert info.value.field == "training.loss"


@pytest.mark.parametrize(
    ("task", "training", "field"),
    [
        ("classification", {"loss": "mse"}, "training.loss"),
        ("regression", {"loss": "cross_entropy"}, "training.loss"),
        ("forecasting", {"loss": "binary_cross_entropy"}, "training.loss"),
        ("regression", {"class_weights": "balanced"}, "training.class_weights"),
        ("reconstruction", {"label_smoothing": 0.1}, "training.label_smoothing"),
    ],
)
def test_a_loss_that_does_not_fit_the_task_is_refused_with_its_field(task, training, field):
    config = TrainingConfig(**training)

    with pytest.raises(LossMismatch) as info:
        check_loss_for_task(config, task)

    assert info.value.field == field
    # A ValueError too, so a pydantic validator on the spec reports it as a 422.
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "training",
    [
        {"loss": "hinge"},
        {"label_smoothing": 0.5},
        {"class_weights": {"a": -1.0}},
        {"schedule": {"type": "step", "gamma": 0}},
        {"schedule": {"type": "warp"}},
        {"warmup_epochs": 5, "epochs": 5},
        {"precision": "fp16"},
        {"l1": -0.1},
        {"lr": 0.1},
    ],
)
def test_out_of_range_training_options_are_refused(training):
    with pytest.raises(ValueError):
        TrainingConfig(**training)


def test_label_smoothing_raises_the_loss_floor():
    data = classes(k=2, noise=0.1)
    plain = fit(make_spec(epochs=30, learning_rate=0.05), mlp(4, 2), data)
    smoothed = fit(make_spec(epochs=30, learning_rate=0.05, label_smoothing=0.2), mlp(4, 2), data)

    assert min(losses(plain)) < 0.05
    # With targets 0.9/0.1 the best loss is their entropy, about 0.33.
    assert min(losses(smoothed)) > 0.3


def _minority_recall(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        predicted = trainer.model(x).argmax(dim=1)
    minority = y == 1
    return (predicted[minority] == 1).float().mean().item()


def test_balanced_class_weights_raise_minority_recall():
    generator = torch.Generator().manual_seed(3)
    n = 600
    y = (torch.rand(n, generator=generator) < 0.08).long()
    x = torch.randn(n, 2, generator=generator) + y[:, None] * 1.2  # overlapping classes
    data = (x[:400], y[:400], x[400:], y[400:])

    recalls = {}
    for weights in (None, "balanced"):
        spec = make_spec(epochs=20, learning_rate=0.02, class_weights=weights)
        trainer = Trainer(spec, mlp(2, 2), CPU)
        trainer.fit(*data)
        recalls[weights] = _minority_recall(trainer, x, y)

    assert recalls["balanced"] > recalls[None] + 0.2


def test_class_weights_by_label_and_an_unknown_label_is_refused():
    data = classes(k=2)
    spec = make_spec(class_weights={"yes": 3.0})

    result = fit(spec, mlp(4, 2), data, trainer={"classes": ["no", "yes"]})
    assert losses(result)[-1] < losses(result)[0]

    with pytest.raises(SpecMismatch) as info:
        fit(
            make_spec(class_weights={"maybe": 2.0}),
            mlp(4, 2),
            data,
            trainer={"classes": ["no", "yes"]},
        )
    assert info.value.field == "training.class_weights"


# --- optimizers and regularisers ----------------------------------------------------------


@pytest.mark.parametrize(
    "training",
    [
        {"optimizer": "sgd", "learning_rate": 0.05},
        {"optimizer": "sgd", "learning_rate": 0.02, "momentum": 0.9, "nesterov": True},
        {"optimizer": "adam"},
        {"optimizer": "adamw", "weight_decay": 0.01},
        {"optimizer": "rmsprop", "learning_rate": 0.003},
        {"optimizer": "adagrad", "learning_rate": 0.05},
    ],
)
def test_every_optimizer_reduces_the_training_loss(training):
    result = fit(make_spec(**training), mlp(4, 3), classes())

    assert losses(result)[-1] < 0.7 * losses(result)[0]


def _weight_size(model: nn.Module) -> float:
    return sum(p.abs().sum().item() for p in model.parameters() if p.ndim > 1)


def test_l1_shrinks_the_weights():
    data = numbers()
    sizes = {}
    for l1 in (0.0, 0.05):
        trainer = Trainer(make_spec("regression", epochs=20, l1=l1), mlp(4, 1), CPU)
        trainer.fit(*data)
        sizes[l1] = _weight_size(trainer.model)

    assert sizes[0.05] < 0.8 * sizes[0.0]


def test_gradient_clipping_trains():
    result = fit(make_spec(gradient_clip_norm=0.1), mlp(4, 3), classes())

    assert losses(result)[-1] < losses(result)[0]


@pytest.mark.parametrize(("batch_size", "steps_per_epoch"), [(1, 180), (32, 6), ("full", 1)])
def test_batch_size_sets_the_steps_per_epoch(batch_size, steps_per_epoch):
    trainer = Trainer(make_spec(epochs=2, batch_size=batch_size), mlp(4, 3), CPU)

    result = trainer.fit(*classes())  # 180 training rows

    state = trainer.optimizer.state[trainer.model[0].weight]
    assert int(state["step"]) == 2 * steps_per_epoch
    assert all(math.isfinite(v) for h in result.history for v in h.values())


# --- schedules ----------------------------------------------------------------------------


def _fit_with_lrs(spec: Spec, data=None) -> tuple[FitResult, list[float]]:
    """The fit and, per epoch, the rate the optimizer holds after the epoch's last step."""
    trainer = Trainer(spec, mlp(4, 3), CPU)
    seen: list[float] = []
    result = trainer.fit(
        *(data or classes()),
        on_epoch=lambda r: seen.append(trainer.optimizer.param_groups[0]["lr"]),
    )
    return result, seen


def test_no_schedule_keeps_the_learning_rate():
    result, seen = _fit_with_lrs(make_spec(epochs=3))

    assert learning_rates(result) == seen == [0.01] * 3


def test_step_schedule_multiplies_by_gamma_every_step_size_epochs():
    spec = make_spec(epochs=7, schedule={"type": "step", "step_size": 3, "gamma": 0.5})

    result, seen = _fit_with_lrs(spec)

    expected = [0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.0025]
    assert learning_rates(result) == pytest.approx(expected)
    assert seen == learning_rates(result)


def test_cosine_schedule_follows_the_cosine_to_eta_min():
    spec = make_spec(epochs=5, schedule={"type": "cosine", "eta_min": 0.001})

    result, _ = _fit_with_lrs(spec)

    expected = [0.001 + 0.009 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)]
    assert learning_rates(result) == pytest.approx(expected)


def _per_step_lrs(spec: Spec) -> list[float]:
    """The rate each optimizer step of a fit ran with: for the schedules that move within an
    epoch, which the per-epoch rates of _fit_with_lrs cannot show."""
    trainer = Trainer(spec, mlp(4, 3), CPU)
    per_step: list[float] = []
    original = trainer.optimizer.step

    def step(*args, **kwargs):
        per_step.append(trainer.optimizer.param_groups[0]["lr"])
        return original(*args, **kwargs)

    trainer.optimizer.step = step
    trainer.fit(*classes())
    return per_step


def test_one_cycle_rises_to_max_lr_then_falls_far_below():
    spec = make_spec(epochs=10, schedule={"type": "one_cycle", "max_lr": 0.05})

    per_step = _per_step_lrs(spec)

    peak = per_step.index(max(per_step))
    assert per_step[0] == pytest.approx(0.05 / 25)
    assert max(per_step) == pytest.approx(0.05, rel=1e-3)
    assert 0.2 < peak / len(per_step) < 0.4  # pct_start 0.3
    assert per_step[: peak + 1] == sorted(per_step[: peak + 1])
    assert per_step[peak:] == sorted(per_step[peak:], reverse=True)
    assert per_step[-1] < 0.05 / 25 / 1000


def test_reduce_on_plateau_cuts_the_rate_after_patience_epochs_without_improvement():
    spec = make_spec(
        "regression",
        epochs=12,
        batch_size="full",
        learning_rate=0.05,
        schedule={"type": "reduce_on_plateau", "factor": 0.5, "patience": 1, "min_lr": 0.01},
    )
    data = _noise_problem()

    result = fit(spec, mlp(4, 1, hidden=64), data)

    # Replay the rule on the validation losses the fit saw.
    best, bad, lr, expected = math.inf, 0, 0.05, []
    for h in result.history:
        expected.append(lr)
        if h["val_loss"] < best:
            best, bad = h["val_loss"], 0
        else:
            bad += 1
            if bad > 1:
                lr, bad = max(lr * 0.5, 0.01), 0
    assert learning_rates(result) == pytest.approx(expected)
    assert min(learning_rates(result)) < 0.05  # the plateau did come
    assert min(learning_rates(result)) >= 0.01


def test_warm_up_ramps_the_rate_then_hands_over_to_the_schedule():
    spec = make_spec(
        epochs=6, warmup_epochs=2, schedule={"type": "step", "step_size": 2, "gamma": 0.1}
    )

    result, seen = _fit_with_lrs(spec)

    assert learning_rates(result) == pytest.approx([0.005, 0.01, 0.01, 0.01, 0.001, 0.001])
    assert seen == learning_rates(result)


def test_warm_up_ramps_step_by_step_within_an_epoch():
    spec = make_spec(epochs=2, warmup_epochs=1, batch_size=60)  # 3 steps an epoch

    per_step = _per_step_lrs(spec)

    assert per_step == pytest.approx([0.01 / 3, 0.02 / 3, 0.01, 0.01, 0.01, 0.01])


# --- reproducibility, precision, tasks, shapes ------------------------------------------


def test_same_spec_seed_and_data_give_identical_metrics_and_weights_with_dropout():
    spec = make_spec(epochs=4, batch_size=16)
    runs = []
    for _ in range(2):
        trainer = Trainer(spec, mlp(4, 3, dropout=0.3), CPU)
        runs.append((trainer.fit(*classes()), trainer.model.state_dict()))

    assert runs[0][0].history == runs[1][0].history
    for name, tensor in runs[0][1].items():
        assert torch.equal(tensor, runs[1][1][name]), name

    other = fit(make_spec(epochs=4, batch_size=16, seed=1), mlp(4, 3, dropout=0.3), classes())
    assert other.history != runs[0][0].history


@pytest.mark.parametrize(("precision", "dtype"), [("auto", None), ("fp32", None)])
def test_precision_on_cpu_is_fp32_unless_asked(precision, dtype):
    trainer = Trainer(make_spec(precision=precision), mlp(4, 3), CPU)

    result = trainer.fit(*classes())

    assert trainer.autocast_dtype is dtype
    assert losses(result)[-1] < losses(result)[0]


def test_bf16_on_cpu_runs_under_autocast():
    trainer = Trainer(make_spec(precision="bf16"), mlp(4, 3), CPU)

    result = trainer.fit(*classes())

    assert trainer.autocast_dtype is torch.bfloat16
    assert losses(result)[-1] < losses(result)[0]


def test_regression_reports_mae_in_target_units_and_r2():
    data = numbers()
    scaled = fit(make_spec("regression"), mlp(4, 1), data, trainer={"target_scale": 10.0})
    plain = fit(make_spec("regression"), mlp(4, 1), data)

    assert set(plain.history[-1]) == {
        "epoch", "train_loss", "val_loss", "val_mae", "val_r2", "learning_rate"
    }  # fmt: skip
    assert scaled.history[-1]["val_mae"] == pytest.approx(10 * plain.history[-1]["val_mae"])
    assert scaled.history[-1]["val_r2"] == plain.history[-1]["val_r2"]


def test_forecasting_compares_every_horizon_step_and_reports_rmse_and_mae():
    t = torch.arange(400, dtype=torch.float32)
    series = torch.sin(t / 5)
    windows = torch.stack([series[i : i + 10] for i in range(380)])  # 8 past, 2 ahead
    x, y = windows[:, :8, None], windows[:, 8:]  # x [N, T, 1], y [N, horizon]
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))

    result = fit(make_spec("forecasting", epochs=20), model, (x[:300], y[:300], x[300:], y[300:]))

    last = result.history[-1]
    assert {"val_rmse", "val_mae"} <= set(last)
    assert last["val_rmse"] < 0.2
    assert last["val_rmse"] >= last["val_mae"]


def test_reconstruction_reports_validation_loss_only():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(300, 2, generator=generator) @ torch.randn(2, 6, generator=generator)
    model = nn.Sequential(nn.Linear(6, 3), nn.Linear(3, 6))

    result = fit(
        make_spec("reconstruction", epochs=20), model, (x[:200], x[:200], x[200:], x[200:])
    )

    assert set(result.history[-1]) == {"epoch", "train_loss", "val_loss", "learning_rate"}
    assert losses(result, "val_loss")[-1] < 0.2 * losses(result, "val_loss")[0]


def test_images_train_through_the_same_loop_with_channel_dead_relu_units():
    generator = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (200,), generator=generator)
    x = torch.randn(200, 1, 8, 8, generator=generator) * 0.5
    x[y == 1, :, :4] += 1.0  # class 1 is bright on top
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(16, 2),
    )  # fmt: skip
    reports: list[EpochReport] = []

    result = fit(
        make_spec(epochs=10), model, (x[:150], y[:150], x[150:], y[150:]), on_epoch=reports.append
    )

    assert result.history[-1]["val_accuracy"] > 0.9
    assert set(reports[-1].health["grad_norm"]) == {"0", "4"}
    assert 0.0 <= reports[-1].health["dead_relu_fraction"] <= 1.0


class SequenceClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(1, 8, batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(x)[0][:, -1])


def test_sequences_train_through_the_same_loop():
    generator = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (200,), generator=generator)
    t = torch.arange(12, dtype=torch.float32)
    x = torch.sin(t[None, :] * (0.3 + 0.9 * y[:, None]))[..., None]
    torch.manual_seed(0)

    result = fit(
        make_spec(epochs=15, learning_rate=0.03),
        SequenceClassifier(),
        (x[:150], y[:150], x[150:], y[150:]),
    )

    assert result.history[-1]["val_accuracy"] > 0.9
    assert losses(result)[-1] < losses(result)[0]


def test_a_model_whose_output_cannot_meet_the_target_is_refused_before_training():
    with pytest.raises(SpecMismatch, match="does not fit the target"):
        fit(make_spec("regression"), mlp(4, 3), numbers())


def test_validation_in_chunks_gives_the_same_metrics(monkeypatch):
    data = classes(n=400)
    trainer = Trainer(make_spec(epochs=2), mlp(4, 3), CPU)
    trainer.fit(*data)
    whole = trainer.evaluate(data[2], data[3])

    monkeypatch.setattr(validation_module, "EVAL_CHUNK_ROWS", 7)
    chunked = trainer.evaluate(data[2], data[3])

    assert chunked == pytest.approx(whole, rel=1e-5)


def test_the_host_reads_the_device_once_per_epoch(monkeypatch):
    calls = []
    original = torch.Tensor.tolist

    def counting(tensor):
        calls.append(tensor.shape)
        return original(tensor)

    monkeypatch.setattr(torch.Tensor, "tolist", counting)
    fit(make_spec(epochs=3, batch_size=8), mlp(4, 3), classes())

    assert len(calls) == 3


def test_cancel_is_checked_between_steps():
    calls = []

    def should_cancel() -> bool:
        calls.append(1)
        return len(calls) >= 4

    with pytest.raises(TrainingCancelled):
        fit(make_spec(batch_size=30), mlp(4, 3), classes(), should_cancel=should_cancel)

    assert len(calls) == 4  # the fourth step of the first epoch, not the end of an epoch


# --- early stopping -----------------------------------------------------------------------


def _noise_problem(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(48, 4, generator=generator)
    y = torch.randn(48, generator=generator)
    return x[:24], y[:24], x[24:], y[24:]


def test_early_stopping_without_restore_best_keeps_the_last_weights():
    spec = make_spec(
        "regression",
        epochs=300,
        batch_size="full",
        early_stopping={"patience": 3, "restore_best": False},
    )
    trainer = Trainer(spec, mlp(4, 1, hidden=64), CPU)

    result = trainer.fit(*_noise_problem())

    assert result.stopped_early
    last = {k: v for k, v in result.history[-1].items() if k not in ("epoch", "learning_rate")}
    assert result.metrics == last
    assert result.metrics["val_loss"] > result.best_metrics["val_loss"]
    assert trainer.evaluate(*_noise_problem()[2:])["val_loss"] == pytest.approx(
        last["val_loss"], rel=1e-6
    )


# --- health -------------------------------------------------------------------------------


def deep_net(activation: type[nn.Module], he: bool) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = 4
    for _ in range(9):
        layers += [nn.Linear(width, 32), activation()]
        width = 32
    layers.append(nn.Linear(32, 3))
    if he:
        for module in layers:
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
    return nn.Sequential(*layers)


def _codes(result: FitResult) -> list[str]:
    return [w["code"] for w in result.warnings]


def test_a_deep_sigmoid_network_raises_vanishing_gradient():
    reports: list[EpochReport] = []

    result = fit(
        make_spec(epochs=4), deep_net(nn.Sigmoid, he=False), classes(), on_epoch=reports.append
    )

    vanishing = [w for w in result.warnings if w["code"] == "vanishing_gradient"]
    assert len(vanishing) == 1
    assert vanishing[0]["epoch"] == 1  # began at epoch 1, seen for 2 epochs running
    assert "first layer" in vanishing[0]["message"]
    # Reported once, in the epoch it was confirmed, with every layer's norm alongside.
    assert [w["code"] for r in reports for w in r.warnings].count("vanishing_gradient") == 1
    assert reports[1].warnings == vanishing
    assert list(reports[0].health["grad_norm"]) == [str(i) for i in range(0, 20, 2)]


def test_the_same_network_with_relu_and_he_initialisation_does_not():
    result = fit(make_spec(epochs=4), deep_net(nn.ReLU, he=True), classes())

    assert "vanishing_gradient" not in _codes(result)
    assert losses(result)[-1] < losses(result)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_sgd_with_learning_rate_10_explodes_or_diverges_saying_why(task, seed):
    spec = make_spec(task, seed=seed, epochs=5, optimizer="sgd", learning_rate=10.0)
    data = classes(seed=seed) if task == "classification" else numbers(seed=seed)

    try:
        result = fit(spec, mlp(4, 3 if task == "classification" else 1, seed=seed), data)
    except TrainingDiverged as error:
        assert error.code == "diverged"
        assert "learning rate" in error.message
        assert "exploded" in error.message or "overflowed" in error.message
    else:
        assert "exploding_gradient" in _codes(result)


def test_exploding_gradient_is_reported_when_the_norm_is_large():
    data = numbers()
    x, y, xv, yv = data
    # Targets of size 1e4 make the gradients huge from the first step, but finite.
    result = fit(
        make_spec("regression", epochs=2, learning_rate=1e-4), mlp(4, 1), (x, y * 1e4, xv, yv * 1e4)
    )

    warning = next(w for w in result.warnings if w["code"] == "exploding_gradient")
    assert warning["epoch"] == 1
    assert "gradient_clip_norm" in warning["message"]


def test_dead_relu_units_are_counted_and_warned_about():
    model = mlp(4, 3, hidden=16)
    with torch.no_grad():
        model[0].bias[:12] = -100.0  # 12 of 16 units can never fire
    reports: list[EpochReport] = []

    result = fit(make_spec(epochs=2, learning_rate=1e-4), model, classes(), on_epoch=reports.append)

    assert reports[0].health["dead_relu_fraction"] == pytest.approx(12 / 16)
    assert [w["code"] for w in reports[0].warnings] == ["dead_relu"]
    assert _codes(result) == ["dead_relu"]


def test_a_model_without_relu_has_no_dead_fraction():
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    reports: list[EpochReport] = []

    fit(make_spec(epochs=1), model, classes(), on_epoch=reports.append)

    assert reports[0].health["dead_relu_fraction"] is None


def test_overfitting_is_reported_when_validation_loss_rises_while_training_loss_falls():
    spec = make_spec("regression", epochs=60, batch_size="full")

    result = fit(spec, mlp(4, 1, hidden=64), _noise_problem())

    warning = next(w for w in result.warnings if w["code"] == "overfitting")
    epoch = warning["epoch"]
    val, train = losses(result, "val_loss"), losses(result)
    # val rose over epochs epoch..epoch+2 (from epoch-1's), while training loss fell.
    assert val[epoch - 2] < val[epoch - 1] < val[epoch] < val[epoch + 1]
    assert train[epoch + 1] < train[epoch - 2]


# --- checkpoints --------------------------------------------------------------------------


def _resumable_spec() -> Spec:
    return make_spec(
        epochs=6,
        batch_size=16,
        schedule={"type": "reduce_on_plateau", "patience": 0, "factor": 0.5},
        early_stopping={"patience": 10},
    )


def test_a_resumed_fit_matches_an_uninterrupted_one():
    data = classes()
    straight_trainer = Trainer(_resumable_spec(), mlp(4, 3, dropout=0.3), CPU)
    straight = straight_trainer.fit(*data)

    # A worker lost after epoch 3: its last checkpoint is all the next one gets.
    checkpoints: list[bytes] = []
    interrupted = Trainer(_resumable_spec(), mlp(4, 3, dropout=0.3), CPU)
    with pytest.raises(TrainingCancelled):
        interrupted.fit(
            *data,
            on_checkpoint=lambda c: checkpoints.append(checkpoint_to_bytes(c)),
            should_cancel=lambda: len(checkpoints) == 3,
            checkpoint_interval_seconds=0,
        )
    reports: list[EpochReport] = []
    resumed_trainer = Trainer(_resumable_spec(), mlp(4, 3, dropout=0.3, seed=99), CPU)
    resumed = resumed_trainer.fit(*data, on_epoch=reports.append, resume_from=checkpoints[-1])

    assert [r.epoch for r in reports] == [4, 5, 6]
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert resumed.history == straight.history
    assert resumed.best_epoch == straight.best_epoch
    for name, tensor in straight_trainer.model.state_dict().items():
        assert torch.equal(tensor, resumed_trainer.model.state_dict()[name]), name


class _EpochClock:
    """Stands in for the trainer's `time`: `monotonic` moves on one second each time an epoch
    is reported (`tick`, given as on_epoch); `perf_counter` is the real one."""

    def __init__(self) -> None:
        self.now = 0.0
        self.perf_counter = time.perf_counter

    def monotonic(self) -> float:
        return self.now

    def tick(self, _: EpochReport) -> None:
        self.now += 1.0


def test_checkpoints_follow_the_interval_and_always_come_after_the_last_epoch(monkeypatch):
    def epochs_checkpointed(interval: float, early_stopped: bool = False) -> list[int]:
        clock = _EpochClock()
        monkeypatch.setattr(trainer_module, "time", clock)
        checkpoints: list[Checkpoint] = []
        spec, model, data = _resumable_spec(), mlp(4, 3), classes()
        if early_stopped:
            spec = make_spec(
                "regression", epochs=300, batch_size="full", early_stopping={"patience": 3}
            )
            model, data = mlp(4, 1, hidden=64), _noise_problem()
        Trainer(spec, model, CPU).fit(
            *data,
            on_epoch=clock.tick,
            on_checkpoint=checkpoints.append,
            checkpoint_interval_seconds=interval,
        )
        return [c.epoch for c in checkpoints]

    assert epochs_checkpointed(0) == [1, 2, 3, 4, 5, 6]
    assert epochs_checkpointed(3600) == [6]
    # Epochs end one (fake) second apart: the interval passes at epochs 2 and 4, then the end.
    assert epochs_checkpointed(2) == [2, 4, 6]
    # Early stopping's epoch is the last one.
    stopped_at = epochs_checkpointed(3600, early_stopped=True)
    assert len(stopped_at) == 1 and stopped_at[0] < 300


def test_a_fit_resumed_from_an_interval_checkpoint_matches_an_uninterrupted_one(monkeypatch):
    data = classes()
    straight_trainer = Trainer(_resumable_spec(), mlp(4, 3, dropout=0.3), CPU)
    straight = straight_trainer.fit(*data)

    # Checkpoints every other epoch; the worker is lost during epoch 5, after the one of 4.
    clock = _EpochClock()
    monkeypatch.setattr(trainer_module, "time", clock)
    checkpoints: list[Checkpoint] = []
    reports: list[EpochReport] = []

    def on_epoch(report: EpochReport) -> None:
        reports.append(report)
        clock.tick(report)

    interrupted = Trainer(_resumable_spec(), mlp(4, 3, dropout=0.3), CPU)
    with pytest.raises(TrainingCancelled):
        interrupted.fit(
            *data,
            on_epoch=on_epoch,
            on_checkpoint=checkpoints.append,
            should_cancel=lambda: len(reports) == 4,
            checkpoint_interval_seconds=2,
        )
    assert [c.epoch for c in checkpoints] == [2, 4]
    resumed_trainer = Trainer(_resumable_spec(), mlp(4, 3, dropout=0.3, seed=99), CPU)
    resumed = resumed_trainer.fit(*data, resume_from=checkpoint_to_bytes(checkpoints[-1]))

    assert resumed.history == straight.history
    for name, tensor in straight_trainer.model.state_dict().items():
        assert torch.equal(tensor, resumed_trainer.model.state_dict()[name]), name


def test_a_checkpoint_holds_everything_and_loads_with_weights_only():
    checkpoints: list[Checkpoint] = []
    trainer = Trainer(_resumable_spec(), mlp(4, 3), CPU)

    trainer.fit(*classes(), on_checkpoint=checkpoints.append, checkpoint_interval_seconds=0)

    assert [c.epoch for c in checkpoints] == [1, 2, 3, 4, 5, 6]
    first = checkpoints[0]
    # A copy: later epochs did not change what epoch 1 handed over.
    assert not torch.equal(first.model["0.weight"], trainer.model.state_dict()["0.weight"])
    loaded = checkpoint_from_bytes(checkpoint_to_bytes(first))
    assert loaded.epoch == 1
    assert Spec.model_validate_json(loaded.spec_json) == trainer.spec
    assert set(loaded.rng) == {"torch", "shuffle", "numpy", "python"}
    assert loaded.optimizer["state"]
    assert loaded.best_model is not None
    assert len(loaded.history) == 1
    assert torch.equal(loaded.model["0.weight"], first.model["0.weight"])


def test_a_checkpoint_that_is_not_one_is_refused():
    with pytest.raises(CheckpointError):
        checkpoint_from_bytes(b"not a checkpoint")


def test_resuming_with_another_spec_is_refused():
    checkpoints: list[bytes] = []
    fit(
        make_spec(epochs=2),
        mlp(4, 3),
        classes(),
        on_checkpoint=lambda c: checkpoints.append(checkpoint_to_bytes(c)),
    )

    with pytest.raises(CheckpointError, match="another spec"):
        fit(make_spec(epochs=3), mlp(4, 3), classes(), resume_from=checkpoints[-1])


def test_resuming_a_finished_early_stopped_fit_trains_no_further():
    spec = make_spec("regression", epochs=300, batch_size="full", early_stopping={"patience": 3})
    checkpoints: list[bytes] = []
    first = fit(
        spec,
        mlp(4, 1, hidden=64),
        _noise_problem(),
        on_checkpoint=lambda c: checkpoints.append(checkpoint_to_bytes(c)),
    )
    reports: list[EpochReport] = []

    again = fit(
        spec,
        mlp(4, 1, hidden=64),
        _noise_problem(),
        on_epoch=reports.append,
        resume_from=checkpoints[-1],
    )

    assert first.stopped_early and again.stopped_early
    assert reports == []
    assert again.history == first.history
    assert again.best_metrics == first.best_metrics
