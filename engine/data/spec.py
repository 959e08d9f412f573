"""The `data` section of a spec: how rows are split (and later cleaned, sampled, augmented)."""

from __future__ import annotations

from pydantic import Field, model_validator

from engine.spec_model import SpecModel


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
