"""Issue 4 end to end on the embedded default (`trainyard run`, what `make run` starts): a
TSV with a byte-order mark, its profile, a job that cleans, encodes, cross-validates and
balances, its report scored on the test split, and predict replaying the fitted rules."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.sample_data import mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_e2e_" + "d" * 24


def tsv_with_bom(columns: dict[str, list]) -> bytes:
    names = list(columns)
    lines = ["\t".join(names)]
    for row in zip(*columns.values(), strict=True):
        lines.append("\t".join("" if v is None else str(v) for v in row))
    return b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode()


def test_a_tsv_is_profiled_trained_with_the_data_section_and_scored_on_its_test_split(
    tmp_path,
) -> None:
    columns = mixed_classification(n=400)
    # An identifier column a careless spec would feed the model: the profile flags it.
    columns["row_id"] = [f"r{i}" for i in range(400)]
    columns["label_copy"] = list(columns["label"])
    port = free_port()
    run = trainyard("run", env=service_env(tmp_path / "data", port, KEY), log=tmp_path / "log")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [run])
        with Client(f"http://127.0.0.1:{port}", KEY, timeout=300) as client:
            dataset = client.upload_dataset(tsv_with_bom(columns), "people.tsv")
            assert dataset["source_format"] == "tsv" and dataset["rows"] == 400
            assert [c["name"] for c in dataset["columns"]][0] == "x1"  # BOM not in the name

            profile = client.dataset_profile(dataset["id"], target="label")
            by_name = {c["name"]: c for c in profile["columns"]}
            assert by_name["x2"]["missing"] == sum(v is None for v in columns["x2"])
            suspects = {w["column"] for w in profile["warnings"] if w["code"] == "leakage_suspect"}
            assert "label_copy" in suspects and "x1" not in suspects

            spec = {
                "task": "classification",
                "target": "label",
                "features": ["x1", "x2", "colour"],
                "data": {
                    "preprocess": {
                        "numeric": {"impute": "mean", "missing_indicator": True, "scale": "robust"},
                        "columns": {"colour": {"encoding": "onehot", "unseen": "other"}},
                    },
                    "split": {"validation": 0.2, "test": 0.2, "folds": 3},
                    "sampling": {"method": "oversample"},
                },
                "training": {"epochs": 20},
            }
            job = client.wait_for_job(client.create_job(dataset["id"], spec)["id"])
            assert job["status"] == "succeeded", job
            report = job["report"]
            assert report["rows"]["test"] == 80
            assert len(report["cross_validation"]["folds"]) == 3
            assert set(report["cross_validation"]["mean"]) >= {"accuracy", "f1_macro"}
            evaluation = report["evaluation"]
            assert evaluation["rows"] == 80
            assert evaluation["metrics"]["accuracy"] >= 0.8
            matrix = np.array(evaluation["confusion_matrix"]["matrix"])
            assert matrix.sum() == 80
            assert evaluation["metrics"]["accuracy"] == pytest.approx(
                np.trace(matrix) / matrix.sum()
            )
            counts = report["sampling"]["after"]
            assert len(set(counts.values())) == 1  # oversampled to the largest class

            fresh = mixed_classification(n=200, seed=1)
            instances = [
                {"x1": a, "x2": b, "colour": c}
                for a, b, c in zip(fresh["x1"], fresh["x2"], fresh["colour"], strict=True)
            ]
            instances[0] = {"x1": 0.3, "x2": None, "colour": "violet"}  # missing + unseen
            predicted = client.predict(job["model_id"], instances)
            assert len(predicted) == 200
            labels = [p["label"] for p in predicted[1:]]
            assert accuracy_score(fresh["label"][1:], labels) >= 0.8
    finally:
        stop(run)
