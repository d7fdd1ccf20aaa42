"""The NumPy backprop core: networks, losses, datasets, optimizers and the training loop."""

from .network import Gradients, Network

__all__ = ["Gradients", "Network"]
