"""Research pipeline (pure Python): labels, chronological splits with purge gaps, calibration."""

from bot4.research.calibration import (IsotonicTable, brier, ece, fit_isotonic, log_loss, mce,
                                       reliability_curve)
from bot4.research.labels import Split, chronological_split, forward_labels, label_end_index

__all__ = ["IsotonicTable", "brier", "ece", "fit_isotonic", "log_loss", "mce", "reliability_curve",
           "Split", "chronological_split", "forward_labels", "label_end_index"]

from bot4.research.dataset import Dataset, build_dataset  # noqa: E402
from bot4.research.train import TrainConfig, TrainResult, train  # noqa: E402

__all__ += ["Dataset", "build_dataset", "TrainConfig", "TrainResult", "train"]
