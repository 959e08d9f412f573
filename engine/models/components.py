"""Pieces every family shares: activations, initialisation, shape arithmetic, and the small
modules that adapt layouts (sequence input is time-major [N, T, C], as recurrent layers want
it; convolutions want channels first).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from engine.errors import SpecMismatch
from engine.spec.model import Activation, Cell, Init

Shape = tuple[int, ...]
"""The shape of one example, without the batch dimension."""


class Built(NamedTuple):
    module: nn.Module
    output_shape: Shape


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def activation(name: Activation, negative_slope: float = 0.01) -> nn.Module:
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    return ACTIVATIONS[name]()


def show(shape: Shape) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"


def require_rank(
    shape: Shape, ranks: tuple[int, ...], field: str, what: str, seen: str = "this dataset gives"
) -> None:
    """Raise SpecMismatch(field) unless `shape` has one of `ranks`, before torch would."""
    if len(shape) not in ranks:
        wanted = " or ".join(
            {1: "features [F]", 2: "sequence input [T, C]", 3: "image input [C, H, W]"}[rank]
            for rank in ranks
        )
        raise SpecMismatch(field, f"{what} needs {wanted}; {seen} {show(shape)}")


def conv_padding(padding: int | str, kernel: int, stride: int) -> int | str:
    """The `padding` argument for torch: its "same" exists for stride 1 only; with a stride
    (the spec then requires an odd kernel) half the kernel on each side gives ceil(L/stride)."""
    if padding == "valid":
        return 0
    if padding == "same" and stride > 1:
        return (kernel - 1) // 2
    return padding


def conv_length(length: int, kernel: int, stride: int, padding: int | str) -> int:
    """Output length of a convolution along one axis (PyTorch's formula)."""
    if padding == "same":
        return -(-length // stride)
    pad = 0 if padding == "valid" else int(padding)
    return (length + 2 * pad - kernel) // stride + 1


# ---------------------------------------------------------------------------------------------
# Layout adapters and small modules
# ---------------------------------------------------------------------------------------------


class ChannelsFirst(nn.Module):
    """[N, T, C] -> [N, C, T]: sequence input arrives time-major; conv1d wants channels first."""

    kind = "transpose"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class TimeMajor(nn.Module):
    """Runs a channels-first 1-D module (conv1d, pooling, batch norm) on a time-major
    [N, T, C] tensor, so an explicit layer list keeps one sequence layout throughout."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.transpose(1, 2)).transpose(1, 2)


class AddChannel(nn.Module):
    """[N, H, W] -> [N, 1, H, W]: a grey image without a channel axis."""

    kind = "add_channel"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


class GlobalAvgPool(nn.Module):
    """Mean over every axis after the channels: [N, C, *spatial] -> [N, C]."""

    kind = "global_avg_pool"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).mean(dim=2)


class Recurrent(nn.Module):
    """A (stacked, optionally bidirectional) RNN/LSTM/GRU on [N, T, C].

    Without return_sequences it returns the final state of the top layer of each direction,
    [N, directions * hidden]. For the forward direction that is the output at the last step;
    for the backward direction it is the output at step 0, the one that has read the whole
    sequence (its output at the last step has seen a single element).
    """

    CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

    def __init__(
        self,
        cell: Cell,
        input_size: int,
        hidden: int,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        return_sequences: bool = False,
    ) -> None:
        super().__init__()
        self.kind = cell
        self.directions = 2 if bidirectional else 1
        self.return_sequences = return_sequences
        self.rnn = self.CELLS[cell](
            input_size,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            # PyTorch applies this dropout between stacked layers only, and warns without any.
            dropout=dropout if layers > 1 else 0.0,
        )

    def output_shape(self, steps: int) -> Shape:
        width = self.directions * self.rnn.hidden_size
        return (steps, width) if self.return_sequences else (width,)

    # In a layers list after an embedding with a padding_idx, the padding mask [N, T].
    takes_mask = True
    # True for a model saved before recurrent layers took the mask (engine/artifacts.py):
    # it was trained and validated reading padded steps, and is served so.
    reads_padding = False

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None and not self.reads_padding:
            return self._over_real_steps(x, mask)
        output, state = self.rnn(x)
        return output if self.return_sequences else self._final(state)

    def _final(self, state: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        final = state[0] if isinstance(state, tuple) else state  # [layers * dirs, N, hidden]
        return final[-self.directions :].transpose(0, 1).reshape(final.shape[1], -1)

    def _over_real_steps(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The RNN over each sequence's real steps alone, in order, wherever the padding is
        (after, before or between them): no amount of padding changes the output. Returned
        sequences hold each real step's output at its own position and zeros at the padded
        ones.

        Layer by layer and direction by direction, each over its steps moved to the front:
        in order for the forward direction, reversed for the backward one, so each reads its
        real steps before any padding (what it reads after them is never used). Index
        arithmetic, no packing and no sort, so that ONNX can export it."""
        real = mask.long()
        lengths = real.sum(dim=1, keepdim=True)
        rank = real.cumsum(dim=1) - 1  # a real step's index among the real ones
        # Each step's place in the compacted sequence: the real ones first, then the padding.
        place = torch.where(mask, rank, lengths + (1 - real).cumsum(dim=1) - 1)
        steps = torch.zeros_like(x).scatter(1, place.unsqueeze(-1).expand_as(x), x)
        # In compacted places: the real steps reversed, the padding where it was.
        slot = torch.arange(x.shape[1], device=x.device).expand_as(place)
        flipped = torch.where(slot < lengths, lengths - 1 - slot, slot)
        for layer in range(self.rnn.num_layers):
            if layer > 0:
                steps = nn.functional.dropout(steps, self.rnn.dropout, self.training)
            outputs = [self._direction(layer, steps)]
            if self.directions == 2:
                backward = self._direction(layer, _take(steps, flipped), reverse=True)
                outputs.append(_take(backward, flipped))
            steps = torch.cat(outputs, dim=-1)
        if self.return_sequences:
            return _take(steps, place) * mask.unsqueeze(-1)
        hidden = self.rnn.hidden_size
        last = (lengths - 1).clamp(min=0)
        final = [_take(steps[..., :hidden], last).squeeze(1)]
        if self.directions == 2:
            final.append(steps[:, 0, hidden:])  # the backward direction ends at step 0
        return torch.cat(final, dim=-1)

    def _direction(self, layer: int, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """One layer and direction of the stack over x: its outputs, with its own weights."""
        width = self.rnn.input_size if layer == 0 else self.directions * self.rnn.hidden_size
        # A one-layer RNN of that shape holding the stack's own parameters (so gradients and
        # DistributedDataParallel see them as the stack's), made per call: a shared one
        # would swap weights under concurrent predictions.
        with torch.device("meta"):
            one = self.CELLS[self.kind](width, self.rnn.hidden_size, batch_first=True)
        suffix = f"_l{layer}_reverse" if reverse else f"_l{layer}"
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(one, f"{name}_l0", getattr(self.rnn, name + suffix))
        output, _ = one(x)
        return output


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[n, index[n, i]] for each row n: steps picked per sequence."""
    return x.gather(1, index.unsqueeze(-1).expand(*index.shape, x.shape[-1]))


class Embedding(nn.Module):
    """Integer codes, delivered as floats like every input, -> vectors."""

    kind = "embedding"

    def __init__(self, num_embeddings: int, dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, dim, padding_idx=padding_idx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x.long())


class Residual(nn.Module):
    """x + f(x), with a learned 1x1 projection on the skip path when f changes the channels."""

    kind = "residual"

    def __init__(self, body: nn.Module, projection: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.projection = projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.projection is None else self.projection(x)
        return skip + self.body(x)


def dense_head(
    width: int,
    hidden: list[int],
    output_dim: int,
    act: Activation,
    negative_slope: float,
    dropout: float = 0.0,
) -> nn.Sequential:
    """[dropout?] [dense, activation] * len(hidden), dense(output_dim) with identity output:
    softmax, when the task wants one, belongs to the loss and to inference."""
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
    for units in hidden:
        layers += [nn.Linear(width, units), activation(act, negative_slope)]
        width = units
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------------------------

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)


def initialise(
    module: nn.Module, scheme: Init, act: Activation = "relu", negative_slope: float = 0.01
) -> None:
    """Initialise the dense and convolutional weights of `module` by `scheme` (biases to
    zero), and every recurrent layer: hidden-to-hidden matrices orthogonal whatever the
    scheme, since repeated multiplication by them must neither shrink nor blow up a signal.

    "default" leaves PyTorch's own initialisation of dense and conv layers, so models saved
    before this option existed rebuild identically. He initialisation uses the slope of
    leaky_relu when that is the activation, else the ReLU gain.
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, WEIGHTED) and scheme != "default":
                _init_weight(layer.weight, scheme, act, negative_slope)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            elif isinstance(layer, nn.RNNBase):
                _init_recurrent(layer, scheme, act, negative_slope)


def _init_weight(weight: torch.Tensor, scheme: Init, act: Activation, slope: float) -> None:
    if weight.is_meta:
        return
    nonlinearity = "leaky_relu" if act == "leaky_relu" else "relu"
    a = slope if act == "leaky_relu" else 0.0
    if scheme == "xavier_uniform":
        nn.init.xavier_uniform_(weight)
    elif scheme == "xavier_normal":
        nn.init.xavier_normal_(weight)
    elif scheme == "he_uniform":
        nn.init.kaiming_uniform_(weight, a=a, nonlinearity=nonlinearity)
    elif scheme == "he_normal":
        nn.init.kaiming_normal_(weight, a=a, nonlinearity=nonlinearity)
    elif scheme == "orthogonal":
        nn.init.orthogonal_(weight)


def _init_recurrent(rnn: nn.RNNBase, scheme: Init, act: Activation, slope: float) -> None:
    hidden = rnn.hidden_size
    for name, parameter in rnn.named_parameters():
        if parameter.is_meta:
            continue
        # One square matrix per gate: orthogonalise each, not the stacked [gates*H, H] block.
        chunks = parameter.split(hidden, dim=0)
        if name.startswith("weight_hh"):
            for chunk in chunks:
                nn.init.orthogonal_(chunk)
        elif name.startswith("weight_ih") and scheme != "default":
            for chunk in chunks:
                if scheme == "orthogonal":
                    nn.init.orthogonal_(chunk)
                else:
                    _init_weight(chunk, scheme, act, slope)
        elif name.startswith("bias"):
            if scheme != "default":
                nn.init.zeros_(parameter)
            if rnn.mode == "LSTM":
                # A forget-gate bias of 1 (split over the two bias vectors) keeps the cell
                # remembering early in training (Jozefowicz et al., 2015).
                nn.init.constant_(chunks[1], 1.0 if name.startswith("bias_ih") else 0.0)
