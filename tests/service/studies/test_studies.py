"""Studies through the API, with trials trained in this process as a worker trains them:
the study queues trials as jobs, each reports to Optuna, the study advances as they end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import optuna
import pytest

from service.jobs.training_run import run_training_job
from service.studies import service as studies_service
from service.studies.search import optuna_storage
from service.studies.trial_observer import advance_stalled_studies, observe_trial
from tests.conftest import Api, Backend, assert_invalid
from tests.service.conftest import worker_resources

SPACE = {
    "training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
    "model.hidden": {"type": "categorical", "choices": [[16], [32, 16]]},
}
BASE = {
    "task": "classification",
    "target": "label",
    "model": {"family": "mlp"},
    "training": {"epochs": 4},
}


@pytest.fixture
def run_trials(backend: Backend, api: Api) -> Callable[[str], dict]:
    """Train the study's queued trials one by one, as workers would, until it ends."""

    def run(study_id: str, limit: int = 50) -> dict:
        resources = worker_resources(backend)
        for _ in range(limit):
            study = api.get(f"/v1/studies/{study_id}").json()
            queued = [t for t in study["trials"] if t["state"] == "queued"]
            if study["status"] != "running" or not queued:
                return study
            run_training_job(resources, queued[0]["job_id"], observe=observe_trial)
        raise AssertionError("the study never ended")

    return run


def create(api: Api, dataset_id: str, **body) -> dict:
    response = api.post(
        "/v1/studies",
        json={"dataset_id": dataset_id, "spec": BASE, "search_space": SPACE} | body,
    )
    assert response.status_code == 202, response.text
    return response.json()


def test_a_study_runs_its_trials_as_jobs_and_serves_the_best(
    api: Api, dataset_id: str, run_trials
) -> None:
    study = create(
        api, dataset_id, max_trials=4, parallel_trials=2, sampler="random", pruner="none"
    )
    # The first trials are queued at once, no more than run in parallel.
    assert study["counts"]["queued"] == 2 and len(study["trials"]) == 2
    assert study["objective"] == {"metric": "val_accuracy", "direction": "maximize"}

    done = run_trials(study["id"])

    assert done["status"] == "succeeded", done
    assert done["counts"]["succeeded"] == 4
    assert sorted(t["number"] for t in done["trials"]) == [0, 1, 2, 3]
    for trial in done["trials"]:
        assert 1e-3 <= trial["params"]["training.learning_rate"] <= 1e-1
        assert trial["params"]["model.hidden"] in ([16], [32, 16])
        assert trial["epochs_run"] == 4 and trial["duration_seconds"] > 0
    best = max(done["trials"], key=lambda t: t["value"])
    assert done["best"]["value"] == best["value"]
    assert done["best"]["params"] == best["params"]

    # Every trial is a job, with its study and number.
    listed = api.get("/v1/jobs").json()["items"]
    trial_jobs = {j["id"]: j for j in listed if j["study_id"] == study["id"]}
    assert sorted(j["trial_number"] for j in trial_jobs.values()) == [0, 1, 2, 3]
    spec = trial_jobs[best["job_id"]]["spec"]
    assert spec["training"]["learning_rate"] == best["params"]["training.learning_rate"]

    # The best trial's model answers at once, by the study's name.
    model = done["best"]["model"]
    assert model == f"{done['name']}@best"
    answer = api.post(
        f"/v1/models/{model}/predict",
        json={"instances": [{"x1": 0.5, "x2": -0.1, "colour": "red"}]},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_id"] == trial_jobs[best["job_id"]]["model_id"]

    page = api.get(f"/v1/studies/{study['id']}/trials", params={"limit": 3}).json()
    assert page["total"] == 4 and len(page["items"]) == 3


def test_a_space_with_a_point_the_spec_rules_refuse_is_422_naming_its_path(
    api: Api, dataset_id: str
) -> None:
    response = api.post(
        "/v1/studies",
        json={
            "dataset_id": dataset_id,
            "spec": BASE,
            "search_space": {"model.dropout": {"type": "float", "low": 0.0, "high": 1.5}},
        },
    )
    error = assert_invalid(response, "search_space.model.dropout")
    assert "1.5" in error["message"]
    assert api.get("/v1/studies").json()["total"] == 0  # nothing was made


def test_a_malformed_space_or_objective_is_422(api: Api, dataset_id: str) -> None:
    body = {"dataset_id": dataset_id, "spec": BASE}
    bad_range = {"training.learning_rate": {"type": "float", "low": 1, "high": 0.1}}
    response = api.post("/v1/studies", json={**body, "search_space": bad_range})
    error = assert_invalid(response, "search_space.training.learning_rate")
    assert "above high" in error["message"]
    response = api.post(
        "/v1/studies",
        json={**body, "search_space": SPACE, "objective": {"metric": "val_r2"}},
    )
    error = assert_invalid(response, "objective.metric")
    assert "val_accuracy" in error["message"]
    # With no validation rows, trials would have no validation metric to report.
    no_validation = {
        **BASE,
        "training": {**BASE.get("training", {}), "early_stopping": None},
        "data": {"split": {"validation": 0}},
    }
    response = api.post("/v1/studies", json={**body, "spec": no_validation, "search_space": SPACE})
    error = assert_invalid(response, "objective.metric")
    assert "data.split.validation is 0" in error["message"]


def test_a_cancelled_study_cancels_its_queued_trials_and_queues_no_more(
    api: Api, dataset_id: str, run_trials
) -> None:
    study = create(api, dataset_id, max_trials=6, parallel_trials=2)
    cancelled = api.post(f"/v1/studies/{study['id']}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    after = run_trials(study["id"])
    assert after["counts"]["cancelled"] == 2 and len(after["trials"]) == 2


def test_a_trial_behind_the_others_is_pruned_and_says_so(
    api: Api, dataset_id: str, run_trials
) -> None:
    # A learning rate too small to learn anything in a few epochs, against one that learns.
    space = {"training.learning_rate": {"type": "categorical", "choices": [0.05, 1e-7]}}
    response = api.post(
        "/v1/studies",
        json={
            "dataset_id": dataset_id,
            "spec": {**BASE, "training": {"epochs": 8, "early_stopping": None}},
            "search_space": space,
            "max_trials": 8,
            "parallel_trials": 1,
            "sampler": "random",
            "pruner": "median",
            # Proposes 0.05 0.05 1e-7 0.05 0.05, then 1e-7 three times: the pruner has its
            # five completed trials before the last three.
            "seed": 1,
        },
    )
    assert response.status_code == 202, response.text
    done = run_trials(response.json()["id"])
    pruned = [t for t in done["trials"] if t["state"] == "pruned"]
    assert pruned, done["trials"]
    assert all(t["params"]["training.learning_rate"] == 1e-7 for t in pruned)
    assert all(t["epochs_run"] < 8 and "pruned" in t["error"] for t in pruned)
    assert done["status"] == "succeeded"
    assert done["best"]["params"]["training.learning_rate"] == 0.05


def test_another_projects_study_is_404(api: Api, other_api: Api, dataset_id: str) -> None:
    study = create(api, dataset_id, max_trials=2)
    assert other_api.get(f"/v1/studies/{study['id']}").status_code == 404
    assert other_api.post(f"/v1/studies/{study['id']}/cancel").status_code == 404
    assert other_api.get("/v1/studies").json()["total"] == 0


def test_a_study_whose_worker_died_before_advancing_it_is_advanced_by_the_sweep(
    backend: Backend, api: Api, dataset_id: str, run_trials
) -> None:
    study = create(api, dataset_id, max_trials=2, parallel_trials=1, pruner="none")
    first = study["trials"][0]["job_id"]
    # The trial trains and ends, but its worker dies before it advances the study.
    run_training_job(worker_resources(backend), first)
    stalled = api.get(f"/v1/studies/{study['id']}").json()
    assert stalled["counts"] == {**stalled["counts"], "succeeded": 1, "queued": 0}
    assert len(stalled["trials"]) == 1

    resources = worker_resources(backend)
    # A study whose trial has just ended is its worker's to advance, not the sweep's.
    assert advance_stalled_studies(resources) == []
    assert advance_stalled_studies(resources, quiet_for=timedelta(0)) == [study["id"]]
    after = api.get(f"/v1/studies/{study['id']}").json()
    assert after["counts"]["queued"] == 1 and len(after["trials"]) == 2
    done = run_trials(study["id"])
    assert done["status"] == "succeeded" and done["counts"]["succeeded"] == 2
    assert advance_stalled_studies(resources, quiet_for=timedelta(0)) == []


def test_an_optuna_trial_no_job_owns_is_closed_by_the_next_advance(
    backend: Backend, api: Api, dataset_id: str, run_trials, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = create(api, dataset_id, max_trials=2, parallel_trials=1, pruner="none")
    searched = optuna.load_study(study_name=study["id"], storage=optuna_storage(backend.settings))
    # What an advance that rolled back leaves: a trial Optuna made, with no job.
    searched.ask()
    monkeypatch.setattr(studies_service, "ORPHAN_AFTER", timedelta(0))
    done = run_trials(study["id"])
    assert done["status"] == "succeeded" and len(done["trials"]) == 2
    states = [trial.state for trial in searched.get_trials(deepcopy=False)]
    assert optuna.trial.TrialState.RUNNING not in states
    assert states.count(optuna.trial.TrialState.FAIL) == 1


def test_importances_apportion_the_objective_once_enough_trials_completed(
    api: Api, dataset_id: str, run_trials
) -> None:
    study = create(
        api, dataset_id, max_trials=5, parallel_trials=1, sampler="random", pruner="none"
    )
    assert study["importances"] is None
    done = run_trials(study["id"])
    importances = done["importances"]
    assert set(importances) == set(SPACE), done
    assert all(0 <= share <= 1 for share in importances.values())
    assert sum(importances.values()) == pytest.approx(1, abs=0.01)
    # The listing serves the same, without computing it again.
    listed = api.get("/v1/studies").json()["items"][0]
    assert listed["importances"] == importances


def test_a_cross_validated_objective_is_the_folds_mean_and_needs_folds(
    api: Api, dataset_id: str, run_trials
) -> None:
    body = {"dataset_id": dataset_id, "search_space": SPACE, "objective": {"metric": "cv_accuracy"}}
    error = assert_invalid(api.post("/v1/studies", json={**body, "spec": BASE}), "objective.metric")
    assert "data.split.folds" in error["message"]

    spec = {**BASE, "training": {"epochs": 2}, "data": {"split": {"folds": 3}}}
    response = api.post(
        "/v1/studies",
        json={**body, "spec": spec, "max_trials": 2, "sampler": "random", "pruner": "none"},
    )
    assert response.status_code == 202, response.text
    done = run_trials(response.json()["id"])
    assert done["status"] == "succeeded"
    assert done["objective"] == {"metric": "cv_accuracy", "direction": "maximize"}
    for trial in done["trials"]:
        report = api.get(f"/v1/jobs/{trial['job_id']}").json()["report"]
        assert trial["value"] == report["cross_validation"]["mean"]["accuracy"]
    assert done["best"]["value"] == max(t["value"] for t in done["trials"])


def test_trial_zero_trains_the_base_spec_where_the_space_holds_it(
    api: Api, dataset_id: str
) -> None:
    # The base names no model: the default MLP's hidden [64, 32] is among the choices.
    space = {
        "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "model.hidden": {"type": "categorical", "choices": [[16], [64, 32]]},
    }
    first = create(api, dataset_id, search_space=space, sampler="random", parallel_trials=1)
    assert first["trials"][0]["params"] == {
        "training.learning_rate": 1e-3,
        "model.hidden": [64, 32],
    }
    plain = create(
        api, dataset_id, search_space=space, sampler="random", parallel_trials=1, baseline=False
    )
    assert plain["trials"][0]["params"]["training.learning_rate"] != 1e-3
    # A base value the space cannot take: no baseline, the sampler proposes trial 0.
    narrow = {"training.learning_rate": {"type": "float", "low": 1e-2, "high": 1e-1}}
    other = create(api, dataset_id, search_space=narrow, sampler="random", parallel_trials=1)
    assert 1e-2 <= other["trials"][0]["params"]["training.learning_rate"] <= 1e-1


def test_among_trials_that_tie_the_best_is_the_earliest_the_base_spec(
    api: Api, dataset_id: str, run_trials
) -> None:
    # Patience cannot act within 2 epochs: every trial trains the same model, so all tie.
    space = {"training.early_stopping.patience": {"type": "categorical", "choices": [20, 10, 5]}}
    spec = {**BASE, "training": {"epochs": 2}}
    response = api.post(
        "/v1/studies",
        json={
            "dataset_id": dataset_id,
            "spec": spec,
            "search_space": space,
            "max_trials": 4,
            "parallel_trials": 1,
            "sampler": "random",
            "pruner": "none",
        },
    )
    assert response.status_code == 202, response.text
    done = run_trials(response.json()["id"])
    assert done["status"] == "succeeded"
    assert len({t["value"] for t in done["trials"]}) == 1, done["trials"]
    assert done["best"]["number"] == 0
    assert done["best"]["params"] == {"training.early_stopping.patience": 10}


def test_a_repeated_cross_validated_objective_is_the_mean_over_every_repeat(
    api: Api, dataset_id: str, run_trials
) -> None:
    spec = {**BASE, "training": {"epochs": 2}, "data": {"split": {"folds": 2, "repeats": 2}}}
    response = api.post(
        "/v1/studies",
        json={
            "dataset_id": dataset_id,
            "spec": spec,
            "search_space": SPACE,
            "objective": {"metric": "cv_accuracy"},
            "max_trials": 1,
            "pruner": "none",
        },
    )
    assert response.status_code == 202, response.text
    done = run_trials(response.json()["id"])
    assert done["status"] == "succeeded"
    trial = done["trials"][0]
    cv = api.get(f"/v1/jobs/{trial['job_id']}").json()["report"]["cross_validation"]
    assert cv["repeats"] == 2 and len(cv["folds"]) == 4
    accuracies = [fold["metrics"]["accuracy"] for fold in cv["folds"]]
    assert trial["value"] == pytest.approx(sum(accuracies) / 4)
