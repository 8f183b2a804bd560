"""Manipulate's training as the server's worker pool runs it (:mod:`ui.jobs`): no Streamlit or plotting
here, so a worker imports only torch, the core and the zoo (a worker's memory is per replica)."""
from __future__ import annotations

from dataclasses import astuple, fields

import numpy as np

import sample_models
from cka_core.pitfalls.manipulation import EpochRecord, ManipulationResult, ManipulationSettings, MapManipulator, manipulate

from .. import jobs


def epoch_row(record: EpochRecord, best_epoch: int) -> tuple[float, ...]:
    """One epoch as the worker reports it: the record's numbers, then the best epoch so far."""
    return (*astuple(record), best_epoch)


def from_rows(rows: list[tuple[float, ...]]) -> tuple[list[EpochRecord], int | None]:
    """The epochs reported so far and the best one (None before the first): :func:`epoch_row` read back."""
    width = len(fields(EpochRecord))
    records = [EpochRecord(int(row[0]), *row[1:width]) for row in rows]
    return records, (int(rows[-1][width]) if rows else None)


def fine_tune(model: str, layers: tuple[str, ...], target: np.ndarray, settings: ManipulationSettings,
              X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, *,
              progress) -> ManipulationResult:
    """In a worker process: fine-tune a copy of the zoo network ``model`` toward ``target`` on the training
    digits (the server passes the arrays: reading them here would import scikit-learn into every worker),
    reporting each epoch (:func:`epoch_row`; epoch 0 is the original). Stop ends it after the epoch it is
    in, with the best network so far."""

    def after_epoch(record: EpochRecord, run: MapManipulator) -> bool:
        try:
            progress(run.epoch, settings.epochs, epoch_row(record, run.best_epoch))
        except jobs.Stopped:
            return False  # manipulate() stops here and returns the best so far
        return True

    return manipulate(sample_models.load(model), layers, target, X_train, y_train, settings, callback=after_epoch,
                      X_eval=X_test, y_eval=y_test)
