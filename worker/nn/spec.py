"""The network spec (contract §3): pydantic models, unknown fields rejected, limits from `LIMITS`.

`NetworkSpec` is the part `Network.from_spec` needs (layers, loss, init, regularization, dtype);
`RunSpec` adds the dataset and the training sections. Names are validated against the same tables
the core computes with (ACTIVATIONS, LOSSES, INITIALIZERS, the built-in datasets). Rules that tie
fields together (softmax only on the output, loss vs output activation, output units vs dataset,
total parameters) are checked after the fields and reported with the path of the field at fault.
"""

import itertools
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from .activations import ACTIVATIONS
from .datasets import BUILTIN, DatasetInfo
from .init import INITIALIZERS
from .limits import LIMITS
from .losses import LOSSES

ActivationName = Literal[tuple(ACTIVATIONS)]  # type: ignore[valid-type]
LossName = Literal[tuple(LOSSES)]  # type: ignore[valid-type]
InitName = Literal[tuple(INITIALIZERS)]  # type: ignore[valid-type]
UPLOAD_NAME = re.compile(r"^upload:[A-Za-z0-9_-]{1,64}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LayerSpec(Strict):
    units: int = Field(ge=1, le=LIMITS.max_units)
    activation: ActivationName = "tanh"


class RegularizationSpec(Strict):
    l1: float = Field(0.0, ge=0, le=10)
    l2: float = Field(0.0, ge=0, le=10)


class SGDSpec(Strict):
    name: Literal["sgd"] = "sgd"
    learning_rate: float = Field(0.1, gt=0, le=100)
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False


class AdamSpec(Strict):
    name: Literal["adam"]
    learning_rate: float = Field(0.01, gt=0, le=100)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0, le=1)


OptimizerSpec = Annotated[SGDSpec | AdamSpec, Field(discriminator="name")]


class DatasetSpec(Strict):
    name: str = Field(description="a built-in dataset name or 'upload:<id>' for an uploaded CSV")
    samples: int = Field(400, ge=10, le=LIMITS.max_samples)
    noise: float = Field(0.0, ge=0, le=10)
    test_fraction: float = Field(0.2, ge=0, le=0.9)
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _known_name(self) -> "DatasetSpec":
        if self.name not in BUILTIN and not UPLOAD_NAME.match(self.name):
            raise _rule_error(
                [("name",)],
                "unknown dataset '{name}': use one of {known} or 'upload:<id>'",
                {"name": self.name, "known": ", ".join(BUILTIN)},
            )
        return self


class TelemetrySpec(Strict):
    every_steps: int | None = Field(None, ge=1, description="null: chosen by the server")
    histogram_bins: int = Field(20, ge=2, le=200)


def _rule_error(locs: list[tuple], message: str, ctx: dict | None = None, title: str = "spec"):
    details = [
        InitErrorDetails(type=PydanticCustomError("spec_rule", message, ctx or {}), loc=loc, input=None)
        for loc in locs
    ]
    return ValidationError.from_exception_data(title, details)


def default_loss(output_activation: str) -> str:
    """The loss a spec gets when it names none: the natural pair of its output activation."""
    return {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}.get(output_activation, "mse")


class NetworkSpec(Strict):
    layers: list[LayerSpec] = Field(min_length=1, max_length=LIMITS.max_layers)
    loss: LossName | None = Field(None, description="null: chosen from the output activation")
    init: InitName = "xavier"
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)
    dtype: Literal["float64", "float32"] = "float64"

    @model_validator(mode="after")
    def _layer_rules(self) -> "NetworkSpec":
        last = len(self.layers) - 1
        out = self.layers[last].activation
        for k, layer in enumerate(self.layers[:last]):
            if layer.activation == "softmax":
                raise _rule_error(
                    [("layers", k, "activation")], "softmax is allowed on the output layer only"
                )
        if self.loss is None:
            self.loss = default_loss(out)
        if (out == "softmax") != (self.loss == "cross_entropy"):
            raise _rule_error(
                [("loss",)],
                "cross_entropy goes with a softmax output layer and softmax with cross_entropy "
                "(output activation '{out}', loss '{loss}')",
                {"out": out, "loss": self.loss},
            )
        if self.loss == "binary_cross_entropy" and out != "sigmoid":
            raise _rule_error(
                [("layers", last, "activation")],
                "binary_cross_entropy needs outputs in (0, 1): use a sigmoid output layer, not '{out}'",
                {"out": out},
            )
        return self

    def parameter_count(self, input_dim: int) -> int:
        sizes = [input_dim] + [layer.units for layer in self.layers]
        return sum(n_out * (n_in + 1) for n_in, n_out in itertools.pairwise(sizes))

    def check_dataset(self, info: DatasetInfo) -> None:
        """Raise a ValidationError unless the layers fit `info` and the parameter limit."""
        need = info.output_units(self.loss)
        last = len(self.layers) - 1
        if info.task == "regression" and self.loss != "mse":
            raise _rule_error(
                [("loss",)], "dataset '{d}' is a regression dataset: use loss 'mse'", {"d": info.name}
            )
        if info.task == "classification" and (info.n_classes or 0) > 2 and self.loss != "cross_entropy":
            raise _rule_error(
                [("loss",)],
                "dataset '{d}' has {k} classes: use loss 'cross_entropy' with a softmax output layer",
                {"d": info.name, "k": info.n_classes},
            )
        if self.layers[last].units != need:
            raise _rule_error(
                [("layers", last, "units")],
                "dataset '{d}' with loss '{loss}' needs {need} output unit(s), got {got}",
                {"d": info.name, "loss": self.loss, "need": need, "got": self.layers[last].units},
            )
        count = self.parameter_count(info.input_dim)
        if count > LIMITS.max_parameters:
            raise _rule_error(
                [("layers",)],
                "the network has {count} parameters, more than the limit of {limit}",
                {"count": count, "limit": LIMITS.max_parameters},
            )


class RunSpec(NetworkSpec):
    name: str = Field("", max_length=200)
    dataset: DatasetSpec
    optimizer: OptimizerSpec = Field(default_factory=SGDSpec)
    epochs: int = Field(100, ge=1, le=LIMITS.max_epochs)
    batch_size: int = Field(10, ge=1, le=LIMITS.max_batch_size)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    telemetry: TelemetrySpec = Field(default_factory=TelemetrySpec)
    gradcheck: bool = False

    @model_validator(mode="after")
    def _builtin_dataset_fits(self) -> "RunSpec":
        if self.dataset.name in BUILTIN:
            self.check_dataset(BUILTIN[self.dataset.name][0])
        return self


NETWORK_FIELDS = tuple(NetworkSpec.model_fields)


def network_spec(spec: dict[str, Any] | NetworkSpec) -> NetworkSpec:
    """The network part of a spec given as a dict or a model; dataset and training sections are ignored."""
    if isinstance(spec, NetworkSpec):
        return spec
    return NetworkSpec.model_validate({k: v for k, v in spec.items() if k in NETWORK_FIELDS})
