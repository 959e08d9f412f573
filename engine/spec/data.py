"""The `data` section of a spec: cleaning and encoding, splitting, sampling and augmentation,
and the shape of array and window inputs.

Every choice here is fitted on the training split only and saved with the model as JSON, so
predict replays it exactly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from engine.spec.base import SpecModel

# Small enough that a resized image set of typical size fits in memory; large enough for
# ImageNet-style inputs. Below 4 pixels no convolution preset has room to work.
ImageSide = Annotated[int, Field(ge=4, le=512)]

ImputeStrategy = Literal["drop", "mean", "median", "most_frequent", "constant"]
Scaling = Literal["standard", "minmax", "robust", "none"]
CategoricalEncoding = Literal["onehot", "ordinal", "embedding"]


class OutlierConfig(SpecModel):
    """Outliers are judged on the training rows only; held-out and predict rows are clipped to
    the same bounds (never dropped)."""

    method: Literal["iqr", "zscore"] = "iqr"
    threshold: float | None = Field(
        default=None,
        gt=0.0,
        le=100.0,
        description="iqr: how many IQRs beyond the quartiles (default 1.5); "
        "zscore: how many standard deviations from the mean (default 3).",
    )
    action: Literal["clip", "drop"] = Field(
        default="clip", description="clip values to the bounds, or drop the training row."
    )


class BinningConfig(SpecModel):
    method: Literal["equal_width", "quantile", "edges"] = "quantile"
    bins: int = Field(default=5, ge=2, le=1000)
    edges: list[float] | None = Field(
        default=None, description="method 'edges': the inner bin edges, ascending."
    )
    encode: Literal["onehot", "ordinal"] = "onehot"

    @model_validator(mode="after")
    def _edges_fit_method(self) -> BinningConfig:
        if self.method == "edges":
            if not self.edges:
                raise ValueError("binning method 'edges' needs edges")
            if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
                raise ValueError("edges must be strictly ascending")
        elif self.edges is not None:
            raise ValueError("edges apply to binning method 'edges' only")
        return self


class ColumnPreprocess(SpecModel):
    """How one column (or every column of a type) is cleaned and encoded. A field left out
    takes the type's default; a field that does not apply to the column's type is refused."""

    impute: ImputeStrategy | None = Field(
        default=None,
        description="Missing values. Default: median for numbers; for categories, missing "
        "maps to the all-zero one-hot row.",
    )
    fill_value: float | str | None = Field(
        default=None, description="The value impute 'constant' fills in."
    )
    missing_indicator: bool | None = Field(
        default=None, description="Add a 0/1 column that says the value was missing."
    )
    scale: Scaling | None = Field(default=None, description="Numbers. Default: standard.")
    outliers: OutlierConfig | None = None
    binning: BinningConfig | None = Field(
        default=None, description="Numbers: replace the value by its bin."
    )
    encoding: CategoricalEncoding | None = Field(
        default=None,
        description="Categories. Default: onehot. embedding learns a dense vector per "
        "category, for high cardinality.",
    )
    unseen: Literal["zero", "other"] | None = Field(
        default=None,
        description="Categories not seen in training (and those past max_categories): an "
        "all-zero row (default) or a shared 'other' slot.",
    )
    max_categories: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Keep the most frequent; default 100 (embedding: 10,000).",
    )
    embedding_dim: int | None = Field(
        default=None, ge=1, le=1024, description="embedding: default min(50, (n + 1) // 2)."
    )

    @model_validator(mode="after")
    def _fill_value_with_constant(self) -> ColumnPreprocess:
        if self.impute == "constant" and self.fill_value is None:
            raise ValueError("impute 'constant' needs fill_value")
        if self.fill_value is not None and self.impute != "constant":
            raise ValueError("fill_value applies to impute 'constant' only")
        return self


class FeatureSelection(SpecModel):
    drop_constant: bool = Field(
        default=True, description="Drop columns with a single value in the training rows."
    )
    variance_threshold: float | None = Field(
        default=None,
        ge=0.0,
        description="Drop numeric columns whose training variance (before scaling) is at or "
        "below this.",
    )
    top_k: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Keep the k columns with the highest mutual information with the target.",
    )


class PreprocessConfig(SpecModel):
    numeric: ColumnPreprocess = Field(
        default_factory=ColumnPreprocess, description="Defaults for every numeric column."
    )
    categorical: ColumnPreprocess = Field(
        default_factory=ColumnPreprocess, description="Defaults for every categorical column."
    )
    columns: dict[str, ColumnPreprocess] = Field(
        default_factory=dict,
        description="Per-column settings; they override the type's defaults field by field.",
    )
    drop_duplicates: bool = Field(
        default=False, description="Drop repeated rows from the training split."
    )
    selection: FeatureSelection = Field(default_factory=FeatureSelection)


class SplitConfig(SpecModel):
    validation: float = Field(
        default=0.2,
        ge=0.0,
        lt=1.0,
        description="Rows held out for early stopping and the validation curves. 0 trains on "
        "every non-test row for the given epochs (as a final refit after cross-validation "
        "does); it needs training.early_stopping null and no reduce_on_plateau schedule, or "
        "a job's validation_dataset_id.",
    )
    test: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Held out until the end: the final model is evaluated on it once.",
    )
    stratify: bool = Field(default=True, description="Classification: keep class proportions.")
    group: str | None = Field(
        default=None,
        min_length=1,
        description="A column whose rows of one value (a patient, a user) all land on the "
        "same side of every split.",
    )
    order_by: str | None = Field(
        default=None,
        min_length=1,
        description="Split in time order on this column: the latest rows are validation and "
        "test. Forecasting is always split in time order.",
    )
    folds: int | None = Field(
        default=None,
        ge=2,
        le=20,
        description="k-fold cross-validation on the training rows (stratified for "
        "classification); the job reports each fold and keeps a model trained on all of them.",
    )
    repeats: int = Field(
        default=1,
        ge=1,
        le=10,
        description="Repeated k-fold: the folds are cut this many times, each time from a "
        "fresh shuffle, and each repeat's fold models train from a seed of their own (seed + "
        "repeat); the mean is over repeats x folds. Steadier than one partition on small "
        "data (a study's cv_ objective). Needs data.split.folds; not with order_by (a time "
        "order has one partition).",
    )

    # A field validator, so the error names spec.data.split.repeats.
    @field_validator("repeats")
    @classmethod
    def _repeats_of_folds(cls, repeats: int, info: ValidationInfo) -> int:
        if repeats == 1:
            return repeats
        if info.data.get("folds") is None:
            raise ValueError("repeats repeat the cross-validation: set data.split.folds too")
        if info.data.get("order_by") is not None:
            raise ValueError("a time-ordered split has one partition into folds: no repeats")
        return repeats

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> SplitConfig:
        if self.validation + self.test >= 0.9:
            raise ValueError("validation + test must leave at least 10% of rows for training")
        if self.group is not None and self.order_by is not None:
            raise ValueError("choose group or order_by, not both")
        return self


class SamplingConfig(SpecModel):
    """Class imbalance, for classification; applied to the training rows only."""

    method: Literal[
        "none", "undersample", "oversample", "class_weights", "smote", "smotenc", "smoten"
    ] = Field(
        default="none",
        description="undersample: drop rows of larger classes down to the smallest; "
        "oversample: repeat rows of smaller classes up to the largest; class_weights: "
        "weigh the loss by n_rows / (n_classes * rows of the class); smote: add synthetic "
        "rows of the smaller classes up to the largest, each between a row and one of its "
        "k_neighbors nearest same-class rows (numeric features only); smotenc: the same with "
        "categorical features, which take the most frequent category of the neighbours; "
        "smoten: every feature categorical.",
    )
    k_neighbors: int = Field(
        default=5,
        ge=1,
        le=100,
        description="smote, smotenc, smoten: the neighbours a synthetic row is drawn "
        "towards; every class needs at least k_neighbors + 1 training rows.",
    )

    # A field validator, so the error names spec.data.sampling.k_neighbors.
    @field_validator("k_neighbors")
    @classmethod
    def _neighbours_for_smote(cls, k_neighbors: int, info: ValidationInfo) -> int:
        if k_neighbors != 5 and info.data.get("method") not in SYNTHETIC_METHODS:
            raise ValueError("k_neighbors applies to methods smote, smotenc and smoten only")
        return k_neighbors


SYNTHETIC_METHODS = ("smote", "smotenc", "smoten")


class AugmentConfig(SpecModel):
    """On the fly, in training batches only. Image options need an image dataset, sequence
    options a sequence dataset."""

    horizontal_flip: bool = Field(default=False, description="Images: flip left-right, p=0.5.")
    vertical_flip: bool = Field(default=False, description="Images: flip top-bottom, p=0.5.")
    crop_padding: int = Field(
        default=0, ge=0, le=64, description="Images: pad by this many pixels, crop back at random."
    )
    rotation_degrees: float = Field(
        default=0.0, ge=0.0, le=45.0, description="Images: rotate by up to this many degrees."
    )
    noise_std: float = Field(
        default=0.0, ge=0.0, le=10.0, description="Images and sequences: add Gaussian noise."
    )
    jitter_std: float = Field(
        default=0.0, ge=0.0, le=10.0, description="Sequences: Gaussian noise per time step."
    )
    scaling_std: float = Field(
        default=0.0,
        ge=0.0,
        le=10.0,
        description="Sequences: multiply each channel by 1 + N(0, scaling_std).",
    )
    time_shift: int = Field(
        default=0, ge=0, le=10_000, description="Sequences: roll by up to this many steps."
    )


class DataConfig(SpecModel):
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
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
