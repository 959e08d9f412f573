"""A model folder: spec.json, weights.safetensors, preprocess.json, metrics.json.

The folder alone rebuilds the model: the spec names the family and its knobs (the default
model already filled in), the pipeline gives the input shape, the output size and which inputs
are embedded category codes. No pickle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from engine.models import build_model
from engine.models.components import Recurrent
from engine.spec import Spec

if TYPE_CHECKING:
    from engine.pipeline import Pipeline

SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.safetensors"
PREPROCESS_FILE = "preprocess.json"
METRICS_FILE = "metrics.json"
MODEL_FILES = (SPEC_FILE, WEIGHTS_FILE, PREPROCESS_FILE, METRICS_FILE)
# The weights file's metadata names what the network computes, where that changed: "2", the
# recurrent layers under an embedding's padding mask read the real steps alone. A folder
# without it was trained reading padded steps, and is served so, as it was validated.
FORMAT_KEY = "trainyard.format"
FORMAT = "2"


def model_files(
    spec: Spec, pipeline: Pipeline, model: nn.Module, metrics: Mapping[str, Any]
) -> dict[str, bytes]:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return {
        SPEC_FILE: spec.model_dump_json(indent=2).encode(),
        WEIGHTS_FILE: save_safetensors(state, metadata={FORMAT_KEY: FORMAT}),
        PREPROCESS_FILE: json.dumps(pipeline.to_dict(), indent=2).encode(),
        METRICS_FILE: json.dumps(dict(metrics), indent=2).encode(),
    }


def load_model(files: Mapping[str, bytes]) -> tuple[Spec, Pipeline, nn.Module]:
    from engine.pipeline import pipeline_from_dict

    spec = Spec.model_validate_json(files[SPEC_FILE])
    pipeline = pipeline_from_dict(json.loads(files[PREPROCESS_FILE]))
    if spec.task == "generation":
        # A GAN's folder holds its generator, the part that is served.
        from engine.generation import load_generator

        return spec, pipeline, load_generator(spec, pipeline, load_safetensors(files[WEIGHTS_FILE]))
    model = build_model(
        spec, pipeline.input_shape, pipeline.output_dim, embedded=pipeline.embedded_inputs
    )
    model.load_state_dict(load_safetensors(files[WEIGHTS_FILE]))
    if weights_format(files[WEIGHTS_FILE]) == "1":
        for module in model.modules():
            if isinstance(module, Recurrent):
                module.reads_padding = True
    model.train(False)  # eval mode
    return spec, pipeline, model


def weights_format(weights: bytes) -> str:
    """FORMAT_KEY from a safetensors file's header ("1" where it has none)."""
    header_size = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + header_size])
    return (header.get("__metadata__") or {}).get(FORMAT_KEY, "1")
