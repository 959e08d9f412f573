"""The `model` section of a spec: a family preset with a few knobs, or an explicit layer list.

`ModelConfig` is a union discriminated on `family`; a document with `layers` and no `family`
is the `layers` family, any other document without `family` is the default MLP. Layers in a
list are discriminated on `type`. Every size has a bound, so no spec can ask for a layer that
would not fit in memory. Input sizes never appear here: they are inferred from the data.

Error locations leave out pydantic's union tag, so a mistake reads `model.layers[3].size`,
the path the user wrote, not `model.layers.layers.3.max_pool1d.size`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from engine.spec.base import SpecModel, tagged_union

Activation = Literal["relu", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "tanh"]
Init = Literal[
    "default", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "orthogonal"
]
Cell = Literal["rnn", "lstm", "gru"]

# Bounds: generous for real work, far below what would exhaust a worker's memory.
Units = Annotated[int, Field(ge=1, le=65536)]
Filters = Annotated[int, Field(ge=1, le=4096)]
RecurrentUnits = Annotated[int, Field(ge=1, le=4096)]
KernelSize = Annotated[int, Field(ge=1, le=255)]
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]
NegativeSlope = Annotated[float, Field(ge=0.0, lt=1.0)]

INIT_DESCRIPTION = (
    "Weight initialisation of dense and convolutional layers; recurrent weight matrices are "
    "orthogonal whatever the scheme."
)


# ---------------------------------------------------------------------------------------------
# Layers of an explicit list
# ---------------------------------------------------------------------------------------------


class DenseLayer(SpecModel):
    """Acts on the last axis, like `nn.Linear`: [F] -> [units], [T, C] -> [T, units]."""

    type: Literal["dense"] = "dense"
    units: Units
    activation: Activation | None = None
    negative_slope: NegativeSlope = 0.01


class _ConvLayer(SpecModel):
    filters: Filters
    kernel_size: KernelSize = 3
    stride: int = Field(default=1, ge=1, le=16)
    padding: Literal["same", "valid"] | Annotated[int, Field(ge=0, le=64)] = "same"
    activation: Activation | None = None
    negative_slope: NegativeSlope = 0.01

    @model_validator(mode="after")
    def _same_padding_fits_stride(self) -> _ConvLayer:
        # With a stride, "same" needs symmetric padding, which an even kernel cannot have.
        if self.padding == "same" and self.stride > 1 and self.kernel_size % 2 == 0:
            raise ValueError("padding 'same' with stride > 1 needs an odd kernel_size")
        return self


class Conv1dLayer(_ConvLayer):
    """Over time on sequence input [T, C] -> [T', filters]."""

    type: Literal["conv1d"] = "conv1d"


class Conv2dLayer(_ConvLayer):
    """Over height and width on image input [C, H, W] -> [filters, H', W']."""

    type: Literal["conv2d"] = "conv2d"


class _PoolLayer(SpecModel):
    size: int = Field(default=2, ge=1, le=64, description="Window and stride.")


class MaxPool1dLayer(_PoolLayer):
    type: Literal["max_pool1d"] = "max_pool1d"


class MaxPool2dLayer(_PoolLayer):
    type: Literal["max_pool2d"] = "max_pool2d"


class AvgPool1dLayer(_PoolLayer):
    type: Literal["avg_pool1d"] = "avg_pool1d"


class AvgPool2dLayer(_PoolLayer):
    type: Literal["avg_pool2d"] = "avg_pool2d"


class GlobalAvgPoolLayer(SpecModel):
    """Mean over time ([T, C] -> [C]) or over the image ([C, H, W] -> [C])."""

    type: Literal["global_avg_pool"] = "global_avg_pool"


class BatchNormLayer(SpecModel):
    """Normalises features ([F]) or channels ([T, C], [C, H, W])."""

    type: Literal["batch_norm"] = "batch_norm"


class DropoutLayer(SpecModel):
    type: Literal["dropout"] = "dropout"
    rate: Rate = 0.5


class FlattenLayer(SpecModel):
    type: Literal["flatten"] = "flatten"


class _RecurrentLayer(SpecModel):
    """Sequence input [T, C] -> [directions * units], or [T, directions * units] with
    return_sequences."""

    units: RecurrentUnits
    layers: int = Field(default=1, ge=1, le=8)
    bidirectional: bool = False
    return_sequences: bool = False
    dropout: Rate = Field(default=0.0, description="Between stacked layers.")


class RNNLayer(_RecurrentLayer):
    type: Literal["rnn"] = "rnn"


class LSTMLayer(_RecurrentLayer):
    type: Literal["lstm"] = "lstm"


class GRULayer(_RecurrentLayer):
    type: Literal["gru"] = "gru"


class EmbeddingLayer(SpecModel):
    """Integer codes [T] -> [T, dim]; only as the first layer."""

    type: Literal["embedding"] = "embedding"
    num_embeddings: int = Field(ge=1, le=1_000_000)
    dim: int = Field(ge=1, le=4096)
    padding_idx: int | None = Field(
        default=None,
        ge=0,
        description="The code that pads a sequence to its length (often 0): its vector is "
        "zero and never trained, and the self_attention, attention_pooling, global_avg_pool, "
        "rnn, lstm and gru layers after it leave padded steps out (a mask, kept while the "
        "layers keep the sequence length).",
    )

    # Field validators (not model validators), so an error names the field.
    @field_validator("padding_idx")
    @classmethod
    def _padding_is_a_code(cls, padding_idx: int | None, info: ValidationInfo) -> int | None:
        size = info.data.get("num_embeddings")
        if padding_idx is not None and size is not None and padding_idx >= size:
            raise ValueError(f"padding_idx {padding_idx} is not a code below num_embeddings {size}")
        return padding_idx


class SelfAttentionLayer(SpecModel):
    """Multi-head scaled dot-product self-attention over time, [T, C] -> [T, C]: every step
    attends to every (unpadded) step. No positional encoding; C must be divisible by heads.
    Wrap it in a `residual` for a transformer-style block."""

    type: Literal["self_attention"] = "self_attention"
    heads: int = Field(default=1, ge=1, le=64)
    dropout: Rate = Field(default=0.0, description="On the attention weights, in training.")


class AttentionPoolingLayer(SpecModel):
    """A learned weighted mean over time, [T, C] -> [C]: a softmax over a score per step
    (linear, or additive with `hidden` tanh units); padded steps get zero weight."""

    type: Literal["attention_pooling"] = "attention_pooling"
    hidden: Units | None = Field(
        default=None, description="Units of the additive (Bahdanau) score; default: linear."
    )


class ActivationLayer(SpecModel):
    type: Literal["activation"] = "activation"
    function: Activation
    negative_slope: NegativeSlope = 0.01


class ResidualLayer(SpecModel):
    """`x + f(x)` around the inner layers. f may change only the channels (the features of
    [F], the last axis of [T, C], the first of [C, H, W]); then the skip path gets a learned
    1x1 projection, as in ResNet."""

    type: Literal["residual"] = "residual"
    layers: list[Layer] = Field(min_length=1, max_length=32)


LAYER_TYPES: dict[str, type[SpecModel]] = {
    "dense": DenseLayer,
    "conv1d": Conv1dLayer,
    "conv2d": Conv2dLayer,
    "max_pool1d": MaxPool1dLayer,
    "max_pool2d": MaxPool2dLayer,
    "avg_pool1d": AvgPool1dLayer,
    "avg_pool2d": AvgPool2dLayer,
    "global_avg_pool": GlobalAvgPoolLayer,
    "batch_norm": BatchNormLayer,
    "dropout": DropoutLayer,
    "flatten": FlattenLayer,
    "rnn": RNNLayer,
    "lstm": LSTMLayer,
    "gru": GRULayer,
    "embedding": EmbeddingLayer,
    "self_attention": SelfAttentionLayer,
    "attention_pooling": AttentionPoolingLayer,
    "activation": ActivationLayer,
    "residual": ResidualLayer,
}

_layer_discriminator, _layer_relocator = tagged_union("type", list(LAYER_TYPES), lambda _: None)

Layer = Annotated[
    Annotated[DenseLayer, Tag("dense")]
    | Annotated[Conv1dLayer, Tag("conv1d")]
    | Annotated[Conv2dLayer, Tag("conv2d")]
    | Annotated[MaxPool1dLayer, Tag("max_pool1d")]
    | Annotated[MaxPool2dLayer, Tag("max_pool2d")]
    | Annotated[AvgPool1dLayer, Tag("avg_pool1d")]
    | Annotated[AvgPool2dLayer, Tag("avg_pool2d")]
    | Annotated[GlobalAvgPoolLayer, Tag("global_avg_pool")]
    | Annotated[BatchNormLayer, Tag("batch_norm")]
    | Annotated[DropoutLayer, Tag("dropout")]
    | Annotated[FlattenLayer, Tag("flatten")]
    | Annotated[RNNLayer, Tag("rnn")]
    | Annotated[LSTMLayer, Tag("lstm")]
    | Annotated[GRULayer, Tag("gru")]
    | Annotated[EmbeddingLayer, Tag("embedding")]
    | Annotated[SelfAttentionLayer, Tag("self_attention")]
    | Annotated[AttentionPoolingLayer, Tag("attention_pooling")]
    | Annotated[ActivationLayer, Tag("activation")]
    | Annotated[ResidualLayer, Tag("residual")],
    _layer_discriminator,
    _layer_relocator,
]

ResidualLayer.model_rebuild()


# ---------------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------------


class PretrainConfig(SpecModel):
    """Greedy layer-wise pretraining of an MLP's hidden layers as a deep belief network: one
    restricted Boltzmann machine per hidden layer, trained with contrastive divergence on the
    layer below's sigmoid output (the data for the first), whose weights and hidden biases
    then initialise that layer before supervised fine-tuning (engine/training/pretraining.py)."""

    method: Literal["dbn"] = "dbn"
    epochs: int = Field(default=10, ge=1, le=1000, description="Per hidden layer.")
    cd_k: int = Field(default=1, ge=1, le=50, description="Gibbs steps per update (CD-k).")
    persistent: bool = Field(
        default=False,
        description="Persistent CD: the negative phase goes on from the chains of the last "
        "update instead of restarting at the batch.",
    )
    learning_rate: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="Of the RBM updates (SGD, momentum 0.5). Default: 0.1 for bernoulli "
        "visible units, 0.01 for gaussian ones.",
    )
    visible: Literal["gaussian", "bernoulli"] | None = Field(
        default=None,
        description="Visible units of the first RBM (the others read probabilities: "
        "bernoulli). gaussian (unit variance) suits standardised inputs, bernoulli inputs in "
        "[0, 1]. Default: bernoulli when every preprocessed training input lies in [0, 1] "
        "(minmax scaling, one-hot columns only), else gaussian.",
    )


class MLPConfig(SpecModel):
    """Dense network: [dense, batch norm?, activation, dropout] per hidden width, then the
    output layer. Input of rank > 1 is flattened first."""

    family: Literal["mlp"] = "mlp"
    hidden: list[Units] = Field(default_factory=lambda: [64, 32], max_length=64)
    activation: Activation = Field(
        default="relu", description="Default: relu; sigmoid with `pretrain`."
    )
    negative_slope: NegativeSlope = Field(default=0.01, description="For leaky_relu.")
    dropout: Rate = 0.1
    batch_norm: bool = False
    init: Init = Field(
        default="default",
        description=INIT_DESCRIPTION + " With `pretrain`, only the output layer's.",
    )
    pretrain: PretrainConfig | None = Field(
        default=None,
        description="DBN pretraining of the hidden layers before training (sigmoid "
        "activations, no batch_norm).",
    )

    @model_validator(mode="before")
    @classmethod
    def _sigmoid_by_default_when_pretrained(cls, data: Any) -> Any:
        # An RBM's hidden units are sigmoid units: its weights mean the same in the MLP only
        # behind a sigmoid, so that is the activation a pretrained MLP gets unless told.
        if isinstance(data, dict) and data.get("pretrain") is not None and "activation" not in data:
            return {**data, "activation": "sigmoid"}
        return data

    # A field validator (declared after activation and batch_norm), so the error names
    # model.pretrain.
    @field_validator("pretrain")
    @classmethod
    def _pretraining_fits_the_layers(
        cls, pretrain: PretrainConfig | None, info: ValidationInfo
    ) -> PretrainConfig | None:
        if pretrain is None:
            return None
        activation = info.data.get("activation")
        if activation is not None and activation != "sigmoid":
            raise ValueError(
                f"DBN pretraining trains sigmoid hidden units; with activation {activation!r} "
                "the pretrained weights would not compute what the RBMs learned: use "
                "activation 'sigmoid' (the default with pretrain)"
            )
        if info.data.get("batch_norm"):
            raise ValueError(
                "DBN pretraining cannot be used with batch_norm: a batch norm between the "
                "layers would rescale what each pretrained layer feeds the next; set "
                "batch_norm to false"
            )
        return pretrain


class _WithoutPretraining(SpecModel):
    """A family that has no `pretrain`: say so, not just that the field is unknown."""

    @model_validator(mode="wrap")
    @classmethod
    def _pretrain_is_for_mlp(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors()
            if not any(
                e["type"] == "extra_forbidden" and e["loc"] == ("pretrain",) for e in errors
            ):
                raise
            family = data.get("family", "layers") if isinstance(data, dict) else "?"
            details: list[InitErrorDetails] = []
            for error in errors:
                if error["type"] == "extra_forbidden" and error["loc"] == ("pretrain",):
                    problem: Any = PydanticCustomError(
                        "pretrain_family",
                        "DBN pretraining initialises the hidden layers of an mlp; the "
                        "{family} family has no pretrain (use family 'mlp')",
                        {"family": family},
                    )
                    details.append(
                        InitErrorDetails(type=problem, loc=error["loc"], input=error["input"])
                    )
                else:
                    detail = InitErrorDetails(
                        type=error["type"], loc=error["loc"], input=error["input"]
                    )
                    if "ctx" in error:
                        detail["ctx"] = error["ctx"]
                    details.append(detail)
            raise ValidationError.from_exception_data(exc.title, details) from None


class CNNConfig(_WithoutPretraining):
    """Convolutional network. `image` ([C, H, W], or [H, W] as one channel): per filter count
    a block of two 3x3 conv-batch norm-activation layers (a ResNet basic block when
    `residual`) and a 2x2 max pool while the map is at least 2x2. `sequence` ([T, C]): FCN,
    one conv1d-batch norm-activation block per filter count with kernels 7, 5, 3. Both end in
    global average pooling, dropout and a dense head."""

    family: Literal["cnn"] = "cnn"
    preset: Literal["image", "sequence"] | None = Field(
        default=None, description="Default: image for [C, H, W] input, sequence for [T, C]."
    )
    filters: list[Filters] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="One block per entry. Default: [32, 64] image, [64, 128, 128] sequence.",
    )
    kernel_size: KernelSize | None = Field(
        default=None, description="Default: 3 image; 7, 5, 3 sequence (FCN)."
    )
    residual: bool = False
    activation: Activation = "relu"
    negative_slope: NegativeSlope = 0.01
    dropout: Rate = 0.0
    head: list[Units] = Field(
        default_factory=list, max_length=8, description="Hidden dense widths before the output."
    )
    init: Init = Field(default="default", description=INIT_DESCRIPTION)


class RNNConfig(_WithoutPretraining):
    """Recurrent network on sequence input [T, C]: the final state of the top layer (of both
    directions when bidirectional) feeds a dense head; with `attention`, an attention-weighted
    mean of the top layer's outputs at every step does instead."""

    family: Literal["rnn"] = "rnn"
    cell: Cell = "lstm"
    hidden: RecurrentUnits = 64
    layers: int = Field(default=1, ge=1, le=8)
    bidirectional: bool = False
    dropout: Rate = Field(default=0.0, description="Between stacked layers and before the head.")
    attention: Literal["none", "pooling", "self"] = Field(
        default="none",
        description="How the recurrent outputs become one vector: none, the final state; "
        "pooling, attention pooling over every step's output; self, multi-head "
        "self-attention over the outputs (with a skip connection), then attention pooling.",
    )
    attention_heads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="attention 'self': heads; they must divide directions * hidden.",
    )
    activation: Activation = Field(default="relu", description="Of the head's hidden layers.")
    negative_slope: NegativeSlope = 0.01
    head: list[Units] = Field(
        default_factory=list, max_length=8, description="Hidden dense widths before the output."
    )
    init: Init = Field(default="default", description=INIT_DESCRIPTION)

    @field_validator("attention_heads")
    @classmethod
    def _heads_with_self_attention(cls, heads: int, info: ValidationInfo) -> int:
        if heads != 1 and info.data.get("attention") != "self":
            raise ValueError("attention_heads applies to attention 'self' only")
        return heads


class AutoencoderConfig(_WithoutPretraining):
    """Encoder to a `latent` vector and a mirrored decoder back to the input shape; for task
    `reconstruction`. `dense` flattens the input; `conv` uses stride-2 convolutions on [T, C]
    or [C, H, W] input and upsampling back."""

    family: Literal["autoencoder"] = "autoencoder"
    kind: Literal["dense", "conv"] | None = Field(
        default=None, description="Default: conv for [C, H, W] input, dense otherwise."
    )
    hidden: list[Units] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Encoder widths (dense) or filters (conv). Default: [64, 32] / [16, 32].",
    )
    latent: int = Field(default=8, ge=1, le=4096)
    activation: Activation = "relu"
    negative_slope: NegativeSlope = 0.01
    init: Init = Field(default="default", description=INIT_DESCRIPTION)


class LayersConfig(_WithoutPretraining):
    """An explicit list of layers. For classification, regression and forecasting a head
    (flatten when needed, then dense(output size), identity output) is appended unless the
    last layer already is a dense layer with that many units on rank-1 output. For
    reconstruction nothing is appended: the layers must end at the input shape."""

    family: Literal["layers"] = "layers"
    layers: list[Layer] = Field(min_length=1, max_length=128)
    init: Init = Field(default="default", description=INIT_DESCRIPTION)


class GANConfig(SpecModel):
    """A generative adversarial network, for task `generation`: a generator from noise (and,
    when `conditional`, a class label) to one example, trained against a discriminator with
    the non-saturating loss. Tables get MLPs (`hidden`); images [C, H, W] a DCGAN (`filters`:
    the generator's transposed-convolution blocks, each doubling the map; the discriminator's
    strided convolutions mirror them). Only the generator is kept and served."""

    family: Literal["gan"] = "gan"
    latent_dim: int = Field(default=32, ge=1, le=1024, description="Noise values per example.")
    hidden: list[Units] = Field(
        default_factory=lambda: [128, 128],
        min_length=1,
        max_length=16,
        description="Tables: the generator's hidden widths; the discriminator's are reversed.",
    )
    filters: list[Filters] = Field(
        default_factory=lambda: [64, 32],
        min_length=1,
        max_length=6,
        description="Images: filters per generator block (each doubles height and width, so "
        "H and W must be divisible by 2 ** len(filters)); the discriminator mirrors them.",
    )
    spectral_norm: bool = Field(
        default=False, description="Spectral normalisation on the discriminator's layers."
    )
    conditional: bool | None = Field(
        default=None,
        description="Condition both networks on the class in `target`; samples then take a "
        "`label`. Default: true when the spec names a target.",
    )
    discriminator_steps: int = Field(
        default=1, ge=1, le=10, description="Discriminator updates per generator update."
    )
    discriminator_learning_rate: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Default: training.learning_rate."
    )


FAMILIES = ["mlp", "cnn", "rnn", "autoencoder", "layers", "gan"]

# A document without `family` is the layers family when it lists layers, else the default MLP.
_family_discriminator, _family_relocator = tagged_union(
    "family", FAMILIES, lambda document: "layers" if "layers" in document else "mlp"
)

ModelConfig = Annotated[
    Annotated[MLPConfig, Tag("mlp")]
    | Annotated[CNNConfig, Tag("cnn")]
    | Annotated[RNNConfig, Tag("rnn")]
    | Annotated[AutoencoderConfig, Tag("autoencoder")]
    | Annotated[LayersConfig, Tag("layers")]
    | Annotated[GANConfig, Tag("gan")],
    _family_discriminator,
    _family_relocator,
]
