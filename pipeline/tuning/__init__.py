"""Hyperparameter search on validation folds carved from the training data, budgeted in trials.

:mod:`~pipeline.tuning.search` walks the space by successive halving; :mod:`~pipeline.tuning.folds` builds the
validation folds and scores a setting on them, ranked as the service ranks; :mod:`~pipeline.tuning.decision`
guards the choice against noise (the one-standard-error rule).
"""
