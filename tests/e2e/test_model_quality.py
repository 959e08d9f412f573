"""Every model family end to end through the API, with few epochs: the quality bench's own
flows (bench/quality.py), held to its targets."""

from __future__ import annotations

import pytest

from bench import quality
from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready

pytestmark = pytest.mark.e2e
EPOCHS = 8


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("quality")
    port = free_port()
    run = trainyard(
        "run", env=service_env(scratch / "data", port, quality.KEY), log=scratch / "log"
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [run])
        with Client(f"http://127.0.0.1:{port}", quality.KEY, timeout=300) as client:
            yield client
    finally:
        stop(run)


def test_image_cnn_reads_digits(client: Client) -> None:
    assert quality.digits_cnn(client, EPOCHS) >= 0.97


@pytest.mark.parametrize(
    "model",
    [{"family": "rnn", "cell": "lstm", "hidden": 64}, {"family": "cnn", "preset": "sequence"}],
    ids=["lstm", "cnn"],
)
def test_sequence_models_classify_sine_frequencies(client: Client, model: dict) -> None:
    assert quality.sequence_task(client, model, EPOCHS) >= 0.95


def test_gru_forecast_beats_the_naive_last_value(client: Client) -> None:
    result = quality.forecast_gru(client, EPOCHS)
    assert result["rmse"] < result["naive_rmse"]


def test_autoencoder_scores_injected_anomalies_higher(client: Client) -> None:
    assert quality.autoencoder_auc(client, EPOCHS) >= 0.9
