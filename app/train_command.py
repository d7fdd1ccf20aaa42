"""`deltaboard train SPEC.json [--events OUT.jsonl] [--quiet]`: train a spec locally, no server.

Runs the same event generator as the worker (worker.nn.training) with a tqdm progress bar on stderr and
a summary table on stdout at the end. With --events every event (contract §5, run_id "local-<spec file
stem>") is written as one JSON line; the file appears only when training ends (written to a temporary
file beside it, then renamed), so bad input leaves nothing behind. The last step always emits a step
event, so the summary's per-layer figures describe the final weights' last minibatch.

Exit status: 0 finished; 1 training diverged (the events are still written); 2 bad input (missing or
unreadable file, invalid JSON, a spec that fails validation, an uploaded dataset, an unwritable output).
"""

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from pydantic import ValidationError

from worker.nn.datasets import make_dataset
from worker.nn.spec import RunSpec
from worker.nn.training import Training, stamp
from worker.store import encode_event


class BadInput(Exception):
    """Input the command refuses; the message is printed as is."""


def error_path(loc: tuple) -> str:
    """A pydantic error location as a field path: ('layers', 2, 'activation') -> 'layers[2].activation'."""
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif i and loc[i - 1] == "optimizer" and part in ("sgd", "adam"):
            continue  # pydantic puts the discriminated union's tag in the path; users never write it
        else:
            path += f".{part}" if path else str(part)
    return path or "(spec)"


def validation_messages(error: ValidationError) -> list[str]:
    return [f"{error_path(tuple(e['loc']))}: {e['msg']}" for e in error.errors()]


def load_spec(path: Path) -> RunSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a directory, not a spec file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read the spec: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    try:
        return RunSpec.model_validate(data)
    except ValidationError as e:
        lines = "\n".join(f"  {m}" for m in validation_messages(e))
        raise BadInput(f"{path}: the spec is invalid ({e.error_count()} error(s)):\n{lines}") from None


def check_output(path: Path) -> None:
    if path.is_dir():
        raise BadInput(f"--events {path}: is a directory")
    if not path.parent.is_dir():
        raise BadInput(f"--events {path}: the directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise BadInput(f"--events {path}: cannot write in {path.parent}")


def build(spec: RunSpec) -> Training:
    if spec.dataset.name.startswith("upload:"):
        raise BadInput(
            f"dataset {spec.dataset.name!r} is an uploaded CSV, stored on a deltaboard server; "
            "`deltaboard train` runs the built-in datasets only (train it through the server instead)"
        )
    data = make_dataset(spec.dataset)
    try:
        return Training(spec, data)
    except ValidationError as e:
        lines = "\n".join(f"  {m}" for m in validation_messages(e))
        raise BadInput(f"the spec does not fit dataset {data.info.name!r}:\n{lines}") from None


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def summary(spec_name: str, training: Training, last_step: dict | None, seconds: float, status: str) -> str:
    m, p = training.metrics, training.progress
    out = [
        f"{status}: {spec_name or 'spec'}  ({p['epoch']}/{p['epochs']} epochs, {p['step']} steps, "
        f"{seconds:.1f} s)",
        f"{'':<8}{'loss':>12}{'accuracy':>12}",
        f"{'train':<8}{_fmt(m['train_loss']):>12}{_fmt(m['train_accuracy']):>12}",
        f"{'test':<8}{_fmt(m['test_loss']):>12}{_fmt(m['test_accuracy']):>12}",
    ]
    if last_step is not None:
        out.append(f"\nlast minibatch (step {last_step['step']}):")
        out.append(f"{'layer':<7}{'units':>7}  {'activation':<12}{'grad_W_norm':>13}{'delta_rms':>13}")
        for s in last_step["layers"]:
            out.append(
                f"{s['layer']:<7}{s['units']:>7}  {s['activation']:<12}"
                f"{_fmt(s['grad_W_norm']):>13}{_fmt(s['delta']['rms']):>13}"
            )
    return "\n".join(out)


def run(training: Training, run_id: str, sink, quiet: bool) -> tuple[dict | None, dict | None]:
    """Drive the events into `sink` (a file or None) under a progress bar; (last step event, final status)."""
    from tqdm import tqdm

    last_step = final = None
    total = training.total_steps
    with tqdm(total=total, unit="step", file=sys.stderr, disable=quiet, dynamic_ncols=True) as bar:
        count = 0

        def before_step() -> bool:
            nonlocal count
            count += 1
            bar.update()
            return count == total  # the last step always reports its layers (for the summary)

        for event in stamp(training.events(before_step), run_id):
            if sink is not None:
                sink.write(encode_event(event) + "\n")
            if event["type"] == "step":
                last_step = event
            elif event["type"] == "epoch":
                acc = event["test_accuracy"]
                acc = event["train_accuracy"] if acc is None else acc
                bar.set_postfix_str(
                    f"epoch {event['epoch']}/{training.spec.epochs} loss {_fmt(event['train_loss'])}"
                    + (f" acc {acc:.3f}" if acc is not None else ""),
                    refresh=False,
                )
            elif event["type"] == "status" and event["status"] != "running":
                final = event
    return last_step, final


def train_command(spec_path: str, events_path: str | None = None, quiet: bool = False) -> int:
    path = Path(spec_path)
    out = Path(events_path) if events_path else None
    try:
        spec = load_spec(path)
        if out is not None:
            check_output(out)
        training = build(spec)
    except BadInput as e:
        print(f"deltaboard train: error: {e}", file=sys.stderr)
        return 2

    run_id = f"local-{path.stem}"
    t0 = time.monotonic()
    tmp = None
    try:
        if out is not None:
            fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as sink:
                last_step, final = run(training, run_id, sink, quiet)
            os.replace(tmp, out)
            tmp = None
        else:
            last_step, final = run(training, run_id, None, quiet)
    except KeyboardInterrupt:
        print("deltaboard train: interrupted; no events written", file=sys.stderr)
        return 130
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    status = final["status"] if final else "stopped"
    print(summary(spec.name or path.stem, training, last_step, time.monotonic() - t0, status))
    if status != "finished":
        message = (final or {}).get("error", {}).get("message", "training did not finish")
        print(f"deltaboard train: error: {message}", file=sys.stderr)
        return 1
    return 0
