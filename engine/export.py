"""A model folder exported as one file another runtime can load: ONNX, TorchScript or
safetensors.

The exported file is the network alone. Its input is the preprocessed tensor, float32
[N, *input_shape] (what the model's pipeline `inputs(instances)` makes from raw rows: scaled
values, one-hot columns, category codes for embedded columns, images as [C, H, W]); its output
is the network's raw output (logits for classification, scaled values for regression, the
reconstruction for an autoencoder). The batch dimension is dynamic. The preprocessing state
is JSON, the model folder's `preprocess.json`, carried inside each file so the file alone is
enough to replay it: an ONNX metadata entry, a TorchScript extra file, a safetensors metadata
entry, each named `preprocess.json`.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping
from typing import Literal

import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from engine.artifacts import PREPROCESS_FILE, SPEC_FILE, load_model
from engine.errors import EngineError
from engine.pipeline import Pipeline
from engine.spec import Spec

ExportFormat = Literal["onnx", "torchscript", "safetensors"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("onnx", "torchscript", "safetensors")

INPUT_NAME = "inputs"
OUTPUT_NAME = "outputs"
# The example batch the graph is recorded on; 2, not 1, so no exporter takes the batch for a
# constant of 1.
EXAMPLE_ROWS = 2
ONNX_OPSET = 17

MEDIA_TYPE = "application/octet-stream"
FILENAMES: dict[str, str] = {
    "onnx": "model.onnx",
    "torchscript": "model.torchscript.pt",
    "safetensors": "model.safetensors",
}


class ExportFailed(EngineError):
    """The model cannot be written in the asked format; the message names the family."""

    code = "export_failed"


def export_model(files: Mapping[str, bytes], fmt: str) -> tuple[bytes, str, str]:
    """The model folder `files` as one file in `fmt`: (content, media type, file name)."""
    if fmt not in EXPORT_FORMATS:
        raise ExportFailed(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    spec, pipeline, model = load_model(files)
    if spec.task == "generation" and fmt != "safetensors":
        raise ExportFailed(
            f"a GAN's generator reads noise, not the data: export it as safetensors, not {fmt}"
        )
    preprocess = files[PREPROCESS_FILE].decode()
    if fmt == "safetensors":
        content = _safetensors_bytes(model, files[SPEC_FILE].decode(), preprocess)
    else:
        example = example_inputs(pipeline)
        try:
            if fmt == "onnx":
                content = _onnx_bytes(model, example, preprocess)
            else:
                content = _torchscript_bytes(model, example, preprocess)
        except Exception as exc:  # any exporter failure is this family's, said plainly
            raise ExportFailed(
                f"the {family_of(spec, pipeline)} model cannot be exported to {fmt}: {exc}"
            ) from exc
    return content, MEDIA_TYPE, FILENAMES[fmt]


def example_inputs(pipeline: Pipeline, rows: int = EXAMPLE_ROWS) -> torch.Tensor:
    """A zero batch of preprocessed inputs; zero is a valid code for every embedded column
    (the reserved unseen/missing code)."""
    return torch.zeros((rows, *pipeline.input_shape), dtype=torch.float32)


def family_of(spec: Spec, pipeline: Pipeline) -> str:
    if spec.model is not None:
        return spec.model.family
    from engine.models import default_model_config

    return default_model_config(spec.task, pipeline.input_shape).family


def _onnx_bytes(model: nn.Module, example: torch.Tensor, preprocess: str) -> bytes:
    """The TorchScript-based exporter (`dynamo=False`): it needs only `onnx`, records a model
    in about a second, and keeps the batch dynamic through `dynamic_axes`."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # Its deprecation notice, and tracer notes about python values, which these models
        # do not branch on.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=ONNX_OPSET,
        )
    proto = onnx.load_model_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = PREPROCESS_FILE, preprocess
    proto.producer_name = "trainyard"
    return proto.SerializeToString()


def _torchscript_bytes(model: nn.Module, example: torch.Tensor, preprocess: str) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        traced = torch.jit.trace(model, (example,))
        torch.jit.save(traced, buffer, _extra_files={PREPROCESS_FILE: preprocess})
    return buffer.getvalue()


def _safetensors_bytes(model: nn.Module, spec: str, preprocess: str) -> bytes:
    """The state dict, with the spec and the preprocessing state as metadata: the same
    tensors as the folder's `weights.safetensors`, rebuilt with `build_model`."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": "pt", SPEC_FILE: spec, PREPROCESS_FILE: preprocess}
    return save_safetensors(state, metadata=metadata)


def preprocess_state(content: bytes, fmt: str) -> dict:
    """The `preprocess.json` carried inside an exported file (for readers and tests)."""
    if fmt == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load_model_from_string(content).metadata_props}
        return json.loads(props[PREPROCESS_FILE])
    if fmt == "torchscript":
        extra = {PREPROCESS_FILE: ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.load(io.BytesIO(content), _extra_files=extra)
        return json.loads(extra[PREPROCESS_FILE])
    # safetensors: an 8-byte little-endian header length, then a JSON header whose
    # `__metadata__` holds string entries.
    length = int.from_bytes(content[:8], "little")
    header = json.loads(content[8 : 8 + length])
    return json.loads(header["__metadata__"][PREPROCESS_FILE])
