"""Generation: what a trained GAN's generator makes, decoded back to raw values.

A table row is decoded through the fitted preprocessor in reverse: each number is unscaled
(`value * scale + offset`; the generator already keeps it inside its column's training range)
and rounded for integer and boolean columns; each one-hot block becomes one of its column's
categories, drawn from the generator's probabilities. An image is unstandardised per channel
and written as a PNG in the units a PNG sent to predict would have (a 16 of the 0..16 digits
is white). Samples are seeded: the same seed, n and label give the same output.

Only tables of scaled numbers and one-hot categories can be decoded: binned numbers, missing
indicators and ordinal or embedding codes have no inverse a generator could aim at, and are
refused when the job is submitted (`check_decodable`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.data.arrays.preprocessor import ArrayPreprocessor
from engine.data.preprocess.encoding import CategoricalFeature, NumericFeature, Preprocessor
from engine.errors import EngineError, SpecMismatch
from engine.models.gan import Block, GANShapes, Generator, with_condition
from engine.pipeline import ArrayPipeline, Pipeline, TablePipeline
from engine.spec import Spec
from engine.spec.model import GANConfig

# The most examples one sample request may ask for.
MAX_SAMPLES = 1000
IMAGE_CHANNELS = {1: "L", 3: "RGB"}


class InvalidSampleRequest(EngineError):
    """A sample request the model cannot answer (a label it does not know, ...)."""

    code = "invalid_sample"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def gan_config(spec: Spec) -> GANConfig:
    if not isinstance(spec.model, GANConfig):  # pragma: no cover - the spec refuses it
        raise SpecMismatch("model.family", "task generation needs the gan family")
    return spec.model


def table_blocks(preprocessor: Preprocessor, spec: Spec | None = None) -> list[Block]:
    """The encoded row's blocks, one per feature; a feature the generator cannot decode is a
    SpecMismatch naming the preprocessing field that made it."""
    blocks, at = [], 0
    for feature in preprocessor.features:
        problem = _undecodable(feature)
        if problem is not None:
            option, reason = problem
            raise SpecMismatch(_option_field(spec, feature, option), reason)
        blocks.append(Block(at, at + feature.width, isinstance(feature, CategoricalFeature)))
        at += feature.width
    return blocks


def _undecodable(feature: NumericFeature | CategoricalFeature) -> tuple[str, str] | None:
    name = feature.name
    if feature.indicator:
        return "missing_indicator", f"a generated row cannot say {name!r} was missing"
    if isinstance(feature, NumericFeature):
        if feature.edges is not None:
            return "binning", f"binned numbers of {name!r} cannot be decoded to one value"
        return None
    if feature.encoding != "onehot":
        return "encoding", f"generation decodes one-hot categories; {name!r} is {feature.encoding}"
    if feature.unseen == "other":
        return "unseen", f"the shared 'other' slot of {name!r} is no category to generate"
    return None


def _option_field(spec: Spec | None, feature: Any, option: str) -> str:
    section = "numeric" if isinstance(feature, NumericFeature) else "categorical"
    if spec is not None and feature.name in spec.data.preprocess.columns:
        return f"data.preprocess.columns.{feature.name}.{option}"
    return f"data.preprocess.{section}.{option}"


def gan_shapes(spec: Spec, pipeline: Pipeline) -> GANShapes:
    """The shapes a GAN on this fitted pipeline is built for."""
    classes = len(pipeline.classes()) if gan_config(spec).conditional else 0
    if isinstance(pipeline, TablePipeline):
        blocks = tuple(table_blocks(pipeline.preprocessor, spec))
        return GANShapes(tuple(pipeline.input_shape), blocks, classes)
    if isinstance(pipeline, ArrayPipeline) and pipeline.preprocessor.kind == "image":
        channels = pipeline.input_shape[0]
        if channels not in IMAGE_CHANNELS:
            raise SpecMismatch(
                "task", f"generated images are PNGs of 1 or 3 channels; these have {channels}"
            )
        return GANShapes(tuple(pipeline.input_shape), None, classes)
    kind = getattr(getattr(pipeline, "preprocessor", None), "kind", pipeline.kind)
    raise SpecMismatch("task", f"generation takes a table or images; this dataset holds {kind}s")


class Sampler:
    """A trained generator and the pipeline that decodes what it makes."""

    def __init__(self, spec: Spec, pipeline: Pipeline, generator: nn.Module) -> None:
        if not isinstance(generator, Generator):
            raise EngineError("this model is not a generator")
        self.spec = spec
        self.config = gan_config(spec)
        self.pipeline = pipeline
        self.generator = generator.train(False)  # eval mode: softmax, batch-norm statistics
        self.classes = pipeline.classes() if self.config.conditional else []

    @property
    def kind(self) -> str:
        return "rows" if isinstance(self.pipeline, TablePipeline) else "images"

    @torch.inference_mode()
    def sample(self, n: int, seed: int, label: Any = None) -> list[dict[str, Any]]:
        """`n` examples: rows of raw column values, or `{"png": base64}` images; each with
        its `label` for a conditional model."""
        if not 1 <= n <= MAX_SAMPLES:
            raise InvalidSampleRequest("n", f"must be between 1 and {MAX_SAMPLES}")
        generator = torch.Generator().manual_seed(seed)
        codes = self._labels(n, label, generator)
        noise = torch.randn(n, self.config.latent_dim, generator=generator)
        onehot = None
        if codes is not None:
            onehot = torch.nn.functional.one_hot(codes, len(self.classes)).float()
        made = self.generator(with_condition(noise, onehot)).float()
        labels = [self.classes[int(c)] for c in codes] if codes is not None else None
        if isinstance(self.pipeline, TablePipeline):
            rows = decode_rows(self.pipeline.preprocessor, self.generator, made, generator)
            if labels is not None:
                target = self.spec.target
                rows = [{**row, target: value} for row, value in zip(rows, labels, strict=True)]
            return rows
        assert isinstance(self.pipeline, ArrayPipeline)
        pngs = encode_pngs(self.pipeline.preprocessor, made.numpy())
        if labels is None:
            return [{"png": png} for png in pngs]
        return [{"png": png, "label": value} for png, value in zip(pngs, labels, strict=True)]

    def _labels(self, n: int, label: Any, generator: torch.Generator) -> torch.Tensor | None:
        if not self.config.conditional:
            if label is not None:
                raise InvalidSampleRequest(
                    "label", "this model is not conditional: it takes no label"
                )
            return None
        if label is None:
            prior = self.generator.class_prior
            return torch.multinomial(prior, n, replacement=True, generator=generator)
        for index, known in enumerate(self.classes):
            if known == label or str(known) == str(label):
                return torch.full((n,), index, dtype=torch.long)
        shown = ", ".join(repr(c) for c in self.classes[:20])
        raise InvalidSampleRequest("label", f"{label!r} is not a class of this model: {shown}")


def decode_rows(
    preprocessor: Preprocessor, generator: nn.Module, made: torch.Tensor, rng: torch.Generator
) -> list[dict[str, Any]]:
    """Encoded rows -> raw rows: numbers unscaled (rounded where the column is integral),
    one category per one-hot block drawn from its probabilities."""
    output = generator[-1]
    integral = output.integral.numpy() > 0.5
    columns: dict[str, list[Any]] = {}
    at = 0
    for feature in preprocessor.features:
        block = made[:, at : at + feature.width]
        if isinstance(feature, CategoricalFeature):
            probabilities = block.double().clamp_min(0) + 1e-12
            picked = torch.multinomial(probabilities, 1, generator=rng)[:, 0].tolist()
            columns[feature.name] = [feature.categories[i] for i in picked]
        else:
            values = block[:, 0].double().numpy() * feature.scale + feature.offset
            if feature.boolean:
                columns[feature.name] = [bool(v >= 0.5) for v in values]
            elif integral[at]:
                columns[feature.name] = [int(v) for v in np.round(values)]
            else:
                columns[feature.name] = [float(v) for v in values]
        at += feature.width
    names = list(columns)
    return [dict(zip(names, cells, strict=True)) for cells in zip(*columns.values(), strict=True)]


def encode_pngs(preprocessor: ArrayPreprocessor, made: np.ndarray) -> list[str]:
    """Images in the model's input space [N, C, H, W] -> base64 PNGs, 0..255 in the units a
    PNG sent to predict has."""
    from PIL import Image  # Pillow only where images are made

    mean = np.asarray(preprocessor.mean, dtype=np.float64).reshape(1, -1, 1, 1)
    std = np.asarray(preprocessor.std, dtype=np.float64).reshape(1, -1, 1, 1)
    stored = (made * std + mean) / preprocessor.pixel_scale
    value_max = preprocessor.image_value_max or 255.0
    pixels = np.clip(np.round(stored / value_max * 255.0), 0, 255).astype(np.uint8)
    mode = IMAGE_CHANNELS[pixels.shape[1]]
    pngs = []
    for image in pixels:
        array = image[0] if mode == "L" else image.transpose(1, 2, 0)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        pngs.append(base64.b64encode(buffer.getvalue()).decode())
    return pngs


def load_generator(
    spec: Spec, pipeline: Pipeline, weights: Mapping[str, torch.Tensor]
) -> Generator:
    """The generator a model folder holds, rebuilt from its spec and pipeline."""
    from engine.models.gan import build_generator

    generator = build_generator(gan_config(spec), gan_shapes(spec, pipeline))
    generator.load_state_dict(dict(weights))
    return generator.train(False)
