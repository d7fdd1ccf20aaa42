"""`deltaboard train`: bad input is refused with a clear message and no output; runs write events;
and plain specs LEARN every built-in classification dataset through the real command."""

import json
import subprocess
from pathlib import Path

import pytest

from app.train_command import train_command
from worker.nn.datasets import make_dataset
from worker.nn.spec import RunSpec
from worker.nn.training import Training

ROOT = Path(__file__).resolve().parent.parent
DELTABOARD = ROOT / ".venv" / "bin" / "deltaboard"
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))

XOR = {
    "name": "xor test",
    "dataset": {"name": "xor", "samples": 100},
    "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
    "epochs": 3,
}


def write(path: Path, spec) -> Path:
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return path


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DELTABOARD), "train", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- bad input: a message, a non-zero exit, nothing written ---------------------------------------


def refuse(tmp_path: Path, capsys, spec_path: Path, out: Path | None = None) -> str:
    out = out or tmp_path / "out.jsonl"
    assert train_command(str(spec_path), events_path=str(out), quiet=True) == 2
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_missing_spec_file(tmp_path, capsys):
    err = refuse(tmp_path, capsys, tmp_path / "nope.json")
    assert "nope.json: no such file" in err


def test_invalid_json_names_file_line_and_column(tmp_path, capsys):
    path = write(tmp_path / "bad.json", '{"dataset": {"name": "xor"},\n  "layers": [{"units": 8,}]}')
    err = refuse(tmp_path, capsys, path)
    assert "bad.json:2:26: invalid JSON" in err


def test_every_validation_error_is_listed_with_its_field_path(tmp_path, capsys):
    spec = {
        "dataset": {"name": "xor"},
        "layers": [{"units": 8}, {"units": 8, "activation": "swish"}, {"units": 1, "activation": "sigmoid"}],
        "optimizer": {"name": "adam", "learning_rate": -1},
        "epochs": 0,
        "colour": "blue",
    }
    err = refuse(tmp_path, capsys, write(tmp_path / "s.json", spec))
    assert "4 error(s)" in err
    for path in (
        "layers[1].activation: Input should be",
        "optimizer.learning_rate:",
        "epochs:",
        "colour: Extra",
    ):
        assert path in err


def test_output_units_that_do_not_fit_the_dataset(tmp_path, capsys):
    spec = {**XOR, "layers": [{"units": 4}, {"units": 2, "activation": "sigmoid"}]}
    err = refuse(tmp_path, capsys, write(tmp_path / "s.json", spec))
    assert "layers[1].units: dataset 'xor'" in err and "needs 1 output unit" in err


def test_spec_that_is_not_an_object(tmp_path, capsys):
    err = refuse(tmp_path, capsys, write(tmp_path / "s.json", "[1, 2]"))
    assert "the spec is invalid" in err


def test_uploaded_dataset_is_not_available_locally(tmp_path, capsys):
    spec = {**XOR, "dataset": {"name": "upload:abc123"}}
    err = refuse(tmp_path, capsys, write(tmp_path / "s.json", spec))
    assert "'upload:abc123' is an uploaded CSV" in err and "built-in datasets only" in err


def test_events_in_a_missing_directory(tmp_path, capsys):
    err = refuse(tmp_path, capsys, write(tmp_path / "s.json", XOR), tmp_path / "no" / "out.jsonl")
    assert "does not exist" in err


# -- runs ---------------------------------------------------------------------------------------


def test_train_writes_every_event_and_a_summary(tmp_path, capsys):
    spec_path = write(tmp_path / "xor.json", XOR)
    out = tmp_path / "out.jsonl"
    assert train_command(str(spec_path), events_path=str(out), quiet=True) == 0
    events = read_events(out)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["status"] == "running" and events[-1]["status"] == "finished"
    assert {e["run_id"] for e in events} == {"local-xor"}
    steps = [e for e in events if e["type"] == "step"]
    assert steps[-1]["step"] == 24  # 80 rows, batches of 10, 3 epochs: the last step always reports
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "xor.json"]
    captured = capsys.readouterr()
    assert "finished: xor test" in captured.out and "24 steps" in captured.out
    assert "grad_W_norm" in captured.out and "delta_rms" in captured.out
    assert captured.err == ""  # --quiet: no progress bar


def test_progress_bar_goes_to_stderr(tmp_path):
    spec_path = write(tmp_path / "xor.json", XOR)
    result = cli(spec_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "24/24" in result.stderr and "epoch 3/3" in result.stderr
    assert "train" in result.stdout and "test" in result.stdout


def test_divergence_still_writes_the_events_and_exits_non_zero(tmp_path):
    spec = {
        "dataset": {"name": "plane", "samples": 100},
        "layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "linear"}],
        "optimizer": {"name": "sgd", "learning_rate": 100},
        "epochs": 50,
    }
    result = cli(write(tmp_path / "boom.json", spec), "--events", "out.jsonl", "--quiet", cwd=tmp_path)
    assert result.returncode == 1
    last = read_events(tmp_path / "out.jsonl")[-1]
    assert last["status"] == "failed" and last["error"]["type"] == "diverged"
    assert f"at step {last['error']['step']}" in result.stderr and "non-finite in layer" in result.stderr


# -- learning -------------------------------------------------------------------------------------


def plain_spec(name: str) -> dict:
    """Adam, two small hidden layers, noise 0."""
    return {
        "name": f"plain {name}",
        "dataset": {"name": name, "samples": 400, "noise": 0.0, "seed": 0},
        "layers": [
            {"units": 32, "activation": "relu"},
            {"units": 32, "activation": "relu"},
            {"units": 1, "activation": "sigmoid"},
        ],
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 100 if name == "spiral" else 50,
        "batch_size": 10,
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "accuracy"),
    [("xor", 0.95), ("circle", 0.95), ("gaussian", 0.95), ("moons", 0.95), ("spiral", 0.85)],
)
def test_plain_spec_learns_through_the_cli(tmp_path, name, accuracy):
    result = cli(write(tmp_path / f"{name}.json", plain_spec(name)), "--events", "out.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    last_epoch = [e for e in read_events(tmp_path / "out.jsonl") if e["type"] == "epoch"][-1]
    assert last_epoch["test_accuracy"] >= accuracy, last_epoch


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_specs_do_what_they_say(path):
    spec = RunSpec.model_validate(json.loads(path.read_text()))
    training = Training(spec, make_dataset(spec.dataset))
    events = list(training.events())
    assert events[-1]["status"] == "finished"
    steps = [e["layers"] for e in events if e["type"] == "step"]
    first, last = steps[0], steps[-1]
    m = training.metrics
    if path.stem == "sigmoid_vanishing":  # delta fades going down, and the net does not learn
        assert first[0]["delta"]["rms"] < 1e-3 * first[-1]["delta"]["rms"]
        assert m["test_accuracy"] < 0.7
    elif path.stem == "relu_dying":  # most relus end with f'(z) = 0 on every example of a batch
        assert last[0]["fprime"]["zero_fraction"] > 0.8 and last[1]["fprime"]["zero_fraction"] > 0.8
        assert m["test_accuracy"] < 0.8
    elif path.stem == "tanh_healthy":  # delta of similar size in every layer at the start
        rms = [s["delta"]["rms"] for s in first]
        assert max(rms) < 10 * min(rms)
        assert m["test_accuracy"] >= 0.95
    elif spec.dataset.name in ("plane", "gaussian_mix"):
        data = training.data
        assert m["test_loss"] < 0.05 * data.y_test.var() / 2 + 0.01
    else:
        assert m["test_accuracy"] >= 0.95
