"""The naive peer of bench/predict.py: a bare FastAPI app that loads one Trainyard model
folder and, per request, builds the tensor from the JSON body and calls the model. No auth, no
registry, no batching. `PEER_MODEL_DIR` names the folder, `PEER_ASYNC=1` makes the endpoint
`async def` (run on the event loop) instead of `def` (run in the threadpool).

    PEER_MODEL_DIR=... .venv/bin/uvicorn bench.predict_peer:app --port 8001
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI

from engine.artifacts import MODEL_FILES, load_model

folder = Path(os.environ["PEER_MODEL_DIR"])
_, pipeline, model = load_model({name: (folder / name).read_bytes() for name in MODEL_FILES})
model.train(False)  # eval mode
app = FastAPI()


def _predict(body: dict[str, Any]) -> dict[str, Any]:
    inputs = torch.from_numpy(pipeline.inputs(body["instances"]))
    with torch.inference_mode():
        outputs = model(inputs)
    return {"predictions": pipeline.predictions(outputs, inputs)}


if os.environ.get("PEER_ASYNC") == "1":

    @app.post("/predict")
    async def predict(body: dict[str, Any]) -> dict[str, Any]:
        return _predict(body)

else:

    @app.post("/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        return _predict(body)
