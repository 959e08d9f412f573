"""Export over HTTP (the files run outside Trainyard and agree with its own predictions) and
predict bodies in MLflow's scoring shapes and CSV."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime
import pytest
import torch

from engine.export import preprocess_state
from engine.pipeline import pipeline_from_dict
from tests.conftest import Api
from tests.sample_data import mixed_classification

ROWS = mixed_classification(n=12, seed=5)
COLUMNS = ["x1", "x2", "colour"]
INSTANCES = [
    dict(zip(COLUMNS, row, strict=True)) for row in zip(*(ROWS[c] for c in COLUMNS), strict=True)
]


def _probabilities(api: Api, model_id: str, **request) -> np.ndarray:
    response = api.post(f"/v1/models/{model_id}/predict", **request)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    keys = list(predictions[0]["probabilities"])
    return np.array([[p["probabilities"][k] for k in keys] for p in predictions])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_an_exported_model_gives_the_services_own_probabilities(
    api: Api, trained_model_id: str, fmt: str
) -> None:
    response = api.get(f"/v1/models/{trained_model_id}/export", params={"format": fmt})
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    content = response.content
    # The file carries the preprocessing state: raw rows -> the tensor the network reads.
    pipeline = pipeline_from_dict(preprocess_state(content, fmt))
    inputs = pipeline.inputs(INSTANCES).astype(np.float32)
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(content)
        outputs = session.run(None, {session.get_inputs()[0].name: inputs})[0]
    else:
        module = torch.jit.load(io.BytesIO(content))
        with torch.inference_mode():
            outputs = module(torch.from_numpy(inputs)).numpy()
    exported = torch.softmax(torch.from_numpy(outputs).double(), dim=1).numpy()
    served = _probabilities(api, trained_model_id, json={"instances": INSTANCES})
    assert np.abs(exported - served).max() <= 1e-4


def test_safetensors_export_holds_the_weights(api: Api, trained_model_id: str) -> None:
    from safetensors.torch import load

    response = api.get(f"/v1/models/{trained_model_id}/export", params={"format": "safetensors"})
    assert response.status_code == 200
    tensors = load(response.content)
    assert tensors and all(t.dtype.is_floating_point or t.numel() for t in tensors.values())


def test_export_refuses_an_unknown_format_and_another_projects_model(
    api: Api, other_api: Api, trained_model_id: str
) -> None:
    bad = api.get(f"/v1/models/{trained_model_id}/export", params={"format": "pickle"})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "format"
    theirs = other_api.get(f"/v1/models/{trained_model_id}/export", params={"format": "onnx"})
    assert theirs.status_code == 404


def test_mlflow_payloads_and_csv_predict_like_instances(api: Api, trained_model_id: str) -> None:
    expected = _probabilities(api, trained_model_id, json={"instances": INSTANCES})
    rows = [[row[c] for c in COLUMNS] for row in INSTANCES]
    csv = "x1,x2,colour\n" + "\n".join(
        ",".join("" if v is None else str(v) for v in row) for row in rows
    )
    bodies = [
        {"json": {"dataframe_split": {"columns": COLUMNS, "data": rows}}},
        {"json": {"dataframe_records": INSTANCES}},
        {"json": {"inputs": {c: [row[c] for row in INSTANCES] for c in COLUMNS}}},
        {"content": csv.encode(), "headers": {**api.headers, "Content-Type": "text/csv"}},
    ]
    for body in bodies:
        if "headers" in body:
            response = api.client.post(
                f"/v1/models/{trained_model_id}/predict",
                content=body["content"],
                headers=body["headers"],
            )
            assert response.status_code == 200, response.text
            predictions = response.json()["predictions"]
            keys = list(predictions[0]["probabilities"])
            got = np.array([[p["probabilities"][k] for k in keys] for p in predictions])
        else:
            got = _probabilities(api, trained_model_id, **body)
        np.testing.assert_allclose(got, expected, atol=1e-9)


def test_a_malformed_payload_is_422_naming_the_field(api: Api, trained_model_id: str) -> None:
    body = {"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 2.0]]}}
    response = api.post(f"/v1/models/{trained_model_id}/predict", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"].startswith("dataframe_split.data[0]")
