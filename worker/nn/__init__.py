"""The NumPy backprop core: networks, losses, datasets, optimizers and the training loop."""

from .csvdata import CSVError, parse_csv
from .datasets import Dataset, DatasetInfo, make_dataset
from .network import Gradients, Network
from .telemetry import layer_stats
from .training import Training, stamp

__all__ = [
    "CSVError",
    "Dataset",
    "DatasetInfo",
    "Gradients",
    "Network",
    "Training",
    "layer_stats",
    "make_dataset",
    "parse_csv",
    "stamp",
]
