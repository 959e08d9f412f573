"""Hyperparameter search: the search space over spec paths (`space`) and how a trial samples
it with Optuna (`sampling`)."""
