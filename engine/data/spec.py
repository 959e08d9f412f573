"""The `data` section of a spec: how rows are split, and the shape of array and window inputs."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from engine.spec_model import SpecModel

# Small enough that a resized image set of typical size fits in memory; large enough for
# ImageNet-style inputs. Below 4 pixels no convolution preset has room to work.
ImageSide = Annotated[int, Field(ge=4, le=512)]


class SplitConfig(SpecModel):
    validation: float = Field(default=0.2, gt=0.0, lt=1.0)
    test: float = Field(default=0.0, ge=0.0, lt=1.0)
    stratify: bool = True

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> SplitConfig:
        if self.validation + self.test >= 0.9:
            raise ValueError("validation + test must leave at least 10% of rows for training")
        return self


class DataConfig(SpecModel):
    split: SplitConfig = Field(default_factory=SplitConfig)
    image_size: tuple[ImageSide, ImageSide] | None = Field(
        default=None,
        description="(height, width) every image is resized to; default: the dataset's size.",
    )
    window: int | None = Field(
        default=None,
        ge=2,
        le=10_000,
        description="Forecasting: how many past time steps each input window holds.",
    )
    horizon: int = Field(
        default=1,
        ge=1,
        le=1_000,
        description="Forecasting: how many future steps each window predicts.",
    )
