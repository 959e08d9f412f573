"""The GAN in the engine: spec defaults, a seeded loop that reports through the trainer's
callbacks and resumes from its checkpoint, decoding to raw values, and the health warnings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from engine.artifacts import load_model
from engine.data.arrays.dataset import ArrayData
from engine.errors import SpecMismatch
from engine.generation import InvalidSampleRequest, Sampler
from engine.spec import Spec
from engine.spec.model import GANConfig
from engine.training.checkpoint import checkpoint_to_bytes
from engine.training.health import GanHealthMonitor
from engine.training.recipe import dry_run, train


def table(n: int = 120) -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "height": rng.normal(170, 10, n),
            "rooms": rng.integers(1, 6, n),
            "city": rng.choice(["oslo", "lima", "pune"], n),
            "label": rng.choice(["a", "b"], n),
        }
    )


def spec(**fields) -> Spec:
    document = {"task": "generation", "training": {"epochs": 3, "batch_size": 32}, **fields}
    return Spec.model_validate(document)


def test_a_generation_spec_defaults_to_a_gan_conditional_on_its_target() -> None:
    assert spec().model == GANConfig(conditional=False)
    assert spec(target="label").model.conditional is True
    assert spec().training.early_stopping is None
    with pytest.raises(ValueError, match="gan family is for task generation"):
        Spec.model_validate({"task": "regression", "target": "y", "model": {"family": "gan"}})


def test_training_is_seeded_and_reports_both_losses() -> None:
    reports = []
    first = train(spec(target="label"), table(), on_epoch=reports.append)
    again = train(spec(target="label"), table())
    assert [r.epoch for r in reports] == [1, 2, 3]
    assert {"d_loss", "g_loss", "sample_std_ratio"} <= set(reports[-1].metrics)
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name


def test_a_resumed_run_ends_as_an_uninterrupted_one() -> None:
    checkpoints = []
    whole = train(spec(), table(), on_checkpoint=checkpoints.append, checkpoint_interval_seconds=0)
    resumed = train(spec(), table(), resume_from=checkpoint_to_bytes(checkpoints[0]))
    assert resumed.fit.epochs_run == 3
    for name, tensor in whole.model.state_dict().items():
        assert torch.allclose(tensor, resumed.model.state_dict()[name]), name


def test_samples_decode_to_raw_values_of_the_training_columns() -> None:
    data = table()
    sampler = Sampler(*load_model(train(spec(target="label"), data).files()))
    rows = sampler.sample(40, seed=5, label="b")
    assert rows == sampler.sample(40, seed=5, label="b")
    heights = data.column("height").to_numpy()
    for row in rows:
        assert row["label"] == "b" and row["city"] in {"oslo", "lima", "pune"}
        assert heights.min() - 1e-6 <= row["height"] <= heights.max() + 1e-6
        assert isinstance(row["rooms"], int) and 1 <= row["rooms"] <= 5
    with pytest.raises(InvalidSampleRequest, match="label"):
        sampler.sample(2, seed=0, label="c")
    with pytest.raises(InvalidSampleRequest, match="n"):
        sampler.sample(0, seed=0)


def test_an_image_gan_makes_images_of_the_training_shape() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, (64, 8, 8)).astype(np.float32)[:, None]
    data = ArrayData(x=x, y=np.arange(64) % 2, classes=[0, 1], kind="image")
    gan = spec(target="y", model={"filters": [8, 4]})
    _, summary = dry_run(gan, data)
    assert summary.output_shape == [1, 8, 8]
    sampler = Sampler(*load_model(train(gan, data).files()))
    images = sampler.sample(3, seed=1, label=1)
    assert [image["label"] for image in images] == [1, 1, 1]


def test_preprocessing_a_generator_cannot_invert_is_refused() -> None:
    binned = {"preprocess": {"columns": {"height": {"binning": {"bins": 3}}}}}
    with pytest.raises(SpecMismatch) as caught:
        dry_run(spec(data=binned), table())
    assert caught.value.field == "data.preprocess.columns.height.binning"


def test_mode_collapse_and_an_overpowering_discriminator_are_warned_of() -> None:
    monitor = GanHealthMonitor()
    assert monitor.observe(1, 1.3, 0.7, 0.9) == []
    assert monitor.observe(2, 1.2, 0.8, 0.05) == []
    collapse = monitor.observe(3, 0.04, 2.0, 0.04)
    assert [w["code"] for w in collapse] == ["mode_collapse"] and collapse[0]["epoch"] == 2
    assert monitor.observe(4, 0.03, 3.0, 0.5) == []
    overpowering = monitor.observe(5, 0.02, 4.0, 0.5)
    assert [w["code"] for w in overpowering] == ["discriminator_overpowering"]
    assert overpowering[0]["epoch"] == 3
