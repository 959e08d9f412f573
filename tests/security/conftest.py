# The service tests' fixtures (a dataset, a trained model, a job runner) serve here too.
from tests.service.conftest import dataset_id, run_job, submit, trained_model_id

__all__ = ["dataset_id", "run_job", "submit", "trained_model_id"]
