"""Spec validation: every rule fails at the exact field path, with a message that names the problem."""

import pytest
from pydantic import ValidationError

from worker.nn.limits import LIMITS
from worker.nn.spec import NetworkSpec, RunSpec, network_spec


def layers(*pairs):
    return [{"units": units, "activation": act} for units, act in pairs]


def spec(**overrides):
    base = {"dataset": {"name": "xor"}, "layers": layers((8, "tanh"), (1, "sigmoid"))}
    return {**base, **overrides}


def errors(data: dict, model=RunSpec) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return info.value.errors()


def only_error(data: dict, model=RunSpec) -> dict:
    errs = errors(data, model)
    assert len(errs) == 1, errs
    return errs[0]


def test_contract_example_is_valid_and_defaults_fill_in():
    run = RunSpec.model_validate(spec())
    assert run.loss == "binary_cross_entropy"  # inferred from the sigmoid output
    assert (run.init, run.dtype, run.epochs, run.batch_size) == ("xavier", "float64", 100, 10)
    assert run.gradcheck is False
    assert run.optimizer.name == "sgd" and run.optimizer.learning_rate == 0.1
    assert (run.regularization.l1, run.regularization.l2) == (0.0, 0.0)
    assert run.telemetry.every_steps is None and run.telemetry.histogram_bins == 20
    assert run.dataset.samples == 400


@pytest.mark.parametrize(
    ("output", "loss"), [("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy"), ("linear", "mse")]
)
def test_loss_is_inferred_from_the_output_activation(output, loss):
    units = 2 if output == "softmax" else 1
    assert RunSpec.model_validate(spec(layers=layers((4, "relu"), (units, output)))).loss == loss


def test_unknown_activation():
    err = only_error(spec(layers=layers((8, "tanh"), (1, "swish"))))
    assert err["loc"] == ("layers", 1, "activation")
    assert err["type"] == "literal_error"
    assert err["input"] == "swish"
    assert "'tanh'" in err["msg"] and "'leaky_relu'" in err["msg"]


def test_softmax_in_a_hidden_layer():
    err = only_error(spec(layers=layers((8, "tanh"), (4, "softmax"), (2, "softmax"))))
    assert err["loc"] == ("layers", 1, "activation")
    assert "softmax is allowed on the output layer only" in err["msg"]


def test_softmax_without_cross_entropy():
    err = only_error(spec(layers=layers((8, "tanh"), (2, "softmax")), loss="mse"))
    assert err["loc"] == ("loss",)
    assert "cross_entropy" in err["msg"] and "'mse'" in err["msg"]


def test_cross_entropy_without_softmax():
    err = only_error(spec(layers=layers((8, "tanh"), (2, "sigmoid")), loss="cross_entropy"))
    assert err["loc"] == ("loss",)
    assert "softmax" in err["msg"] and "'sigmoid'" in err["msg"]


def test_binary_cross_entropy_without_sigmoid():
    err = only_error(spec(layers=layers((8, "tanh"), (1, "tanh")), loss="binary_cross_entropy"))
    assert err["loc"] == ("layers", 1, "activation")
    assert "binary_cross_entropy" in err["msg"] and "sigmoid" in err["msg"] and "'tanh'" in err["msg"]


@pytest.mark.parametrize(
    ("output", "units", "need"), [("softmax", 3, 2), ("sigmoid", 2, 1), ("linear", 2, 1)]
)
def test_wrong_output_units_for_the_dataset(output, units, need):
    err = only_error(spec(layers=layers((8, "tanh"), (units, output))))
    assert err["loc"] == ("layers", 1, "units")
    assert "dataset 'xor'" in err["msg"] and f"needs {need} output unit(s), got {units}" in err["msg"]


def test_regression_dataset_with_a_classification_loss():
    err = only_error(spec(dataset={"name": "plane"}, layers=layers((8, "tanh"), (1, "sigmoid"))))
    assert err["loc"] == ("loss",)
    assert "'plane' is a regression dataset" in err["msg"] and "'mse'" in err["msg"]
    RunSpec.model_validate(spec(dataset={"name": "plane"}, layers=layers((8, "tanh"), (1, "linear"))))


def test_unknown_dataset():
    err = only_error(spec(dataset={"name": "mnist"}))
    assert err["loc"] == ("dataset", "name")
    assert "unknown dataset 'mnist'" in err["msg"] and "upload:<id>" in err["msg"]
    RunSpec.model_validate(spec(dataset={"name": "upload:abc_123"}))  # checked against the upload later


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"learning_rate": 0.1}, ("learning_rate",)),
        ({"layers": [{"units": 1, "activation": "sigmoid", "dropout": 0.5}]}, ("layers", 0, "dropout")),
        ({"dataset": {"name": "xor", "size": 3}}, ("dataset", "size")),
        ({"optimizer": {"name": "sgd", "lr": 0.1}}, ("optimizer", "sgd", "lr")),
        ({"optimizer": {"name": "adam", "momentum": 0.9}}, ("optimizer", "adam", "momentum")),
        ({"regularization": {"l3": 1.0}}, ("regularization", "l3")),
        ({"telemetry": {"every": 5}}, ("telemetry", "every")),
    ],
)
def test_unknown_fields_are_rejected_at_top_level_and_nested(overrides, loc):
    err = only_error(spec(**overrides))
    assert err["loc"] == loc
    assert err["type"] == "extra_forbidden"
    assert err["msg"] == "Extra inputs are not permitted"


def test_unknown_optimizer_name():
    err = only_error(spec(optimizer={"name": "rmsprop"}))
    assert err["loc"] == ("optimizer",)
    assert "'rmsprop'" in err["msg"] and "'sgd'" in err["msg"] and "'adam'" in err["msg"]


def test_too_many_layers():
    err = only_error(spec(layers=layers(*[(2, "tanh")] * LIMITS.max_layers, (1, "sigmoid"))))
    assert err["loc"] == ("layers",)
    assert err["type"] == "too_long"
    assert f"at most {LIMITS.max_layers} items" in err["msg"]
    RunSpec.model_validate(spec(layers=layers(*[(2, "tanh")] * (LIMITS.max_layers - 1), (1, "sigmoid"))))


def test_too_many_units():
    err = only_error(spec(layers=layers((LIMITS.max_units + 1, "tanh"), (1, "sigmoid"))))
    assert err["loc"] == ("layers", 0, "units")
    assert f"less than or equal to {LIMITS.max_units}" in err["msg"]


def test_zero_units():
    err = only_error(spec(layers=layers((0, "tanh"), (1, "sigmoid"))))
    assert err["loc"] == ("layers", 0, "units")
    assert "greater than or equal to 1" in err["msg"]


def test_too_many_epochs():
    err = only_error(spec(epochs=LIMITS.max_epochs + 1))
    assert err["loc"] == ("epochs",)
    assert f"less than or equal to {LIMITS.max_epochs}" in err["msg"]


def test_too_many_samples_and_too_large_batches():
    err = only_error(spec(dataset={"name": "xor", "samples": LIMITS.max_samples + 1}))
    assert err["loc"] == ("dataset", "samples")
    err = only_error(spec(batch_size=LIMITS.max_batch_size + 1))
    assert err["loc"] == ("batch_size",)


def test_too_many_parameters():
    units = LIMITS.max_units
    n_layers = 2 + LIMITS.max_parameters // (units * units)  # enough square hidden layers to pass the limit
    err = only_error(spec(layers=layers(*[(units, "tanh")] * n_layers, (1, "sigmoid"))))
    assert err["loc"] == ("layers",)
    assert "parameters, more than the limit of" in err["msg"] and str(LIMITS.max_parameters) in err["msg"]


def test_missing_required_fields():
    errs = errors({})
    assert sorted(e["loc"] for e in errs) == [("dataset",), ("layers",)]
    assert all(e["type"] == "missing" for e in errs)
    err = only_error(spec(dataset={"samples": 100}))
    assert err["loc"] == ("dataset", "name")
    assert err["type"] == "missing"


def test_empty_layers():
    err = only_error(spec(layers=[]))
    assert err["loc"] == ("layers",)
    assert err["type"] == "too_short"


def test_network_spec_needs_only_layers_and_ignores_other_sections():
    net = network_spec({"layers": layers((3, "relu"), (2, "softmax")), "epochs": 5, "dataset": {"name": "x"}})
    assert isinstance(net, NetworkSpec)
    assert net.loss == "cross_entropy"
    err = only_error({"layers": layers((3, "relu"), (2, "softmax")), "extra": 1}, model=NetworkSpec)
    assert err["loc"] == ("extra",)
