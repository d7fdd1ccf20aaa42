"""The dashboard in Debian's Chromium against a real `deltaboard up` (fixtures in conftest.py).

Each test drives the page like a user (editor, run list, run view, compare) and asserts on what is drawn:
canvases with coloured pixels, chart series, numbers that match the run's events, the seq list a
reconnecting page received. Screenshots of the views go to tests/artifacts/.
"""

import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]

# Pixels drawn on a canvas (or every canvas inside an element): `drawn` = not blank/white,
# `colored` = clearly coloured (series, heatmaps, nodes), not grey axes or text.
PIXELS_JS = """(el) => {
  const canvases = el.tagName === 'CANVAS' ? [el] : [...el.querySelectorAll('canvas')];
  let drawn = 0, colored = 0;
  for (const c of canvases) {
    if (!c.width || !c.height) continue;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] < 16) continue;
      const r = d[i], g = d[i + 1], b = d[i + 2];
      if (r < 245 || g < 245 || b < 245) drawn++;
      if (Math.max(r, g, b) - Math.min(r, g, b) > 60) colored++;
    }
  }
  return {canvases: canvases.length, drawn, colored};
}"""

LONG_SPEC = {
    "name": "long xor for controls",
    "dataset": {"name": "xor", "samples": 400, "noise": 0.1, "seed": 1},
    "layers": [
        {"units": 8, "activation": "tanh"},
        {"units": 8, "activation": "tanh"},
        {"units": 1, "activation": "sigmoid"},
    ],
    "loss": "binary_cross_entropy",
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "epochs": 5000,
    "batch_size": 10,
}


def pixels(page, testid: str) -> dict:
    return page.get_by_test_id(testid).evaluate(PIXELS_JS)


def number_after(text: str, label: str) -> float:
    m = re.search(re.escape(label) + r"\s*=\s*([-+0-9.e]+)", text)
    assert m, f"no number after {label!r} in {text!r}"
    return float(m.group(1))


def open_run(page, run_id: str) -> None:
    page.goto(f"{page.base}/#/runs/{run_id}")
    page.get_by_test_id("run-view").wait_for(state="visible")
    page.wait_for_function("id => window.__deltaboard && window.__deltaboard.state.runId === id", arg=run_id)


def wait_badge(page, status: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "s => document.querySelector('[data-testid=run-status]')?.dataset.status === s",
        arg=status,
        timeout=timeout,
    )


def wait_text(page, testid: str, text, timeout: float = 30_000) -> None:
    """Wait until the element with data-testid `testid` contains `text`."""
    page.wait_for_function(
        "([id, t]) => (document.querySelector(`[data-testid=${id}]`)?.textContent ?? '').includes(t)",
        arg=[testid, str(text)],
        timeout=timeout,
    )


def wait_counter(page, n: int) -> None:
    """Wait until the run view's step counter reads exactly n."""
    page.wait_for_function(
        "n => document.querySelector('[data-testid=step-counter]').textContent === String(n)", arg=n
    )


# Canvas pixels clearly blue (W > 0) and clearly orange (W < 0).
SIGN_COLORS_JS = """c => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let blue = 0, orange = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 2] > d[i] + 60) blue++;
    if (d[i] > d[i + 2] + 80 && d[i + 1] > 100) orange++;
  }
  return {blue, orange};
}"""


def test_train_from_editor_draws_every_view(page, server, artifacts):
    page.goto(page.base + "/")
    editor = page.get_by_test_id("spec-editor")
    editor.wait_for(state="visible")
    spec = json.loads(page.get_by_test_id("spec-json").input_value())
    assert spec["dataset"]["name"] == "xor" and len(spec["layers"]) == 3  # the working example
    assert pixels(page, "dataset-preview")["colored"] > 100  # the preview scatter

    page.get_by_test_id("train-button").click()
    page.wait_for_function("() => location.hash.startsWith('#/runs/')")
    run_id = page.evaluate("() => location.hash.split('/')[2].split('?')[0]")
    page.locator(f'[data-testid=run-list] [data-run-id="{run_id}"]').wait_for()
    wait_badge(page, "finished", timeout=120_000)
    page.wait_for_function("() => window.__deltaboard.streamStats()?.done === true")

    run = server.get(f"/api/runs/{run_id}")
    events = server.events(run_id)
    steps = [e for e in events if e["type"] == "step"]
    assert run["status"] == "finished" and steps
    # The page got every event once, in order.
    assert page.evaluate("() => window.__deltaboard.seqs()") == [e["seq"] for e in events]

    # Every view of contract §7 is drawn.
    for testid in ("network-view", "boundary-view"):
        assert pixels(page, testid)["colored"] > 500, testid
    for testid in ("loss-chart", "grad-chart", "delta-chart", "accuracy-chart", "ratio-chart", "hist-view"):
        px = pixels(page, testid)
        assert px["canvases"] >= 1 and px["colored"] > 150, (testid, px)
    # Per-layer charts: one series per layer (plus x) in the legend.
    for testid in ("grad-chart", "delta-chart"):
        assert page.get_by_test_id(testid).locator(".u-legend .u-series").count() == 1 + 3

    # Numbers: the counter is the run's last step, the equations show the last step's numbers.
    wait_counter(page, run["progress"]["steps"])
    last = steps[-1]["layers"]
    page.get_by_test_id("layer-select").select_option("2")  # the output layer, L3
    wait_text(page, "equations", f"Layer 3 of 3 · sigmoid · numbers from step {steps[-1]['step']}")
    eq = page.get_by_test_id("equations").inner_text()
    assert number_after(eq, "‖∂J/∂W3‖") == pytest.approx(last[2]["grad_W_norm"], rel=2e-3)
    page.get_by_test_id("layer-select").select_option("0")
    wait_text(page, "equations", "Layer 1 of 3")
    eq1 = page.get_by_test_id("equations").inner_text()
    assert number_after(eq1, "‖∂J/∂b1‖") == pytest.approx(last[0]["grad_b_norm"], rel=2e-3)
    factor = page.get_by_test_id("factor-view").inner_text()
    assert "L1" in factor and "L3" in factor and re.search(r"\d\.\d", factor)
    assert page.get_by_test_id("alerts").locator(".alert").count() >= 1
    # The model was fetched on finish: edges now show weights by sign.
    page.wait_for_function("() => document.querySelector('#net-legend').textContent.includes('W>0')")
    signs = page.locator("#net-canvas").evaluate(SIGN_COLORS_JS)
    assert signs["blue"] > 50 and signs["orange"] > 50, signs
    # Hover over an output-layer node shows its numbers.
    box = page.locator("#net-canvas").bounding_box()
    # The output node: last column, vertically centred (see NetworkView.layout).
    page.mouse.move(box["x"] + box["width"] - 64, box["y"] + 34 + (box["height"] - 60) / 2)
    tip = page.locator("#net-tip")
    tip.wait_for(state="visible")
    assert "mean |δ|" in tip.inner_text() and "layer 3" in tip.inner_text()
    page.screenshot(path=str(artifacts / "run-view-xor.png"), full_page=True)
    page.get_by_test_id("run-view").screenshot(path=str(artifacts / "run-view-xor-panels.png"))


def test_pause_step_resume_cancel(page, server, artifacts):
    run = server.create_run(LONG_SPEC)
    open_run(page, run["id"])
    wait_badge(page, "running")
    page.wait_for_function("() => window.__deltaboard.lastStep() !== null")
    page.get_by_test_id("pause-button").click()
    wait_badge(page, "paused")
    paused = server.wait_status(run["id"], {"paused"})
    n = paused["progress"]["step"]
    wait_counter(page, n)
    assert page.get_by_test_id("step-button").is_enabled()

    for k in (1, 2):
        page.get_by_test_id("step-button").click()
        wait_counter(page, n + k)
        # Every view shows that minibatch: the latest step event is step n+k, and the equations say so.
        assert page.evaluate("() => window.__deltaboard.lastStep().step") == n + k
        wait_text(page, "equations", f"numbers from step {n + k}")
        wait_badge(page, "paused")
        assert server.wait_status(run["id"], {"paused"})["progress"]["step"] == n + k
    step_event = [e for e in server.events(run["id"]) if e["type"] == "step"][-1]
    assert step_event["step"] == n + 2
    loss_shown = float(page.get_by_test_id("loss-now").inner_text())
    assert loss_shown == pytest.approx(step_event["loss"], rel=2e-3)
    page.screenshot(path=str(artifacts / "run-view-paused.png"), full_page=True)

    page.get_by_test_id("resume-button").click()
    wait_badge(page, "running")
    page.wait_for_function(
        "n => Number(document.querySelector('[data-testid=step-counter]').textContent) > n", arg=n + 2
    )
    page.get_by_test_id("cancel-button").click()
    wait_badge(page, "canceled")
    assert server.wait_status(run["id"], {"canceled"})["status"] == "canceled"
    page.wait_for_function("() => window.__deltaboard.streamStats().done === true")
    assert page.get_by_test_id("pause-button").is_disabled()


def test_422_is_shown_next_to_its_field(page, server, artifacts):
    page.expect_console_errors(r"status of 422")
    runs_before = len(server.get("/api/runs?limit=100")["runs"])
    page.goto(page.base + "/")
    page.get_by_test_id("spec-editor").wait_for(state="visible")

    # An unknown activation typed into the JSON view: the form follows, the server's error lands beside it.
    box = page.get_by_test_id("spec-json")
    text = box.input_value()
    box.fill(text.replace('"activation": "tanh"', '"activation": "swish"', 1))
    select = page.get_by_test_id("layer-activation-0")
    assert select.input_value() == "swish"
    page.get_by_test_id("train-button").click()
    slot = page.locator('[data-error-for="layers.0.activation"]')
    slot.wait_for(state="visible")
    assert "tanh" in slot.inner_text()  # pydantic lists the allowed names
    assert "has-error" in select.get_attribute("class")
    assert "layers.0.activation" in page.get_by_test_id("error-list").inner_text()
    page.screenshot(path=str(artifacts / "editor-422-activation.png"))

    # Units 0 typed in the form.
    select.select_option("tanh")
    units = page.get_by_test_id("layer-units-1")
    units.fill("0")
    assert json.loads(box.input_value())["layers"][1]["units"] == 0  # JSON view in sync
    page.get_by_test_id("train-button").click()
    slot = page.locator('[data-error-for="layers.1.units"]')
    slot.wait_for(state="visible")
    assert re.search(r"greater than or equal to 1", slot.inner_text())
    assert page.locator('[data-error-for="layers.0.activation"]').inner_text() == ""
    assert "has-error" in units.get_attribute("class")
    assert len(server.get("/api/runs?limit=100")["runs"]) == runs_before  # nothing was queued
    page.screenshot(path=str(artifacts / "editor-422-units.png"))


def test_reconnect_resumes_without_gap_or_duplicate(page, server):
    spec = {**LONG_SPEC, "name": "reconnect", "telemetry": {"every_steps": 25}}
    run = server.create_run(spec)
    open_run(page, run["id"])
    for i in range(4):
        page.wait_for_function("n => window.__deltaboard.seqs().length > n", arg=40 * (i + 1), timeout=60_000)
        assert page.evaluate("() => window.__deltaboard.dropSocket()") is True
        time.sleep(0.15)  # events keep coming while the page is away
    page.wait_for_function("() => window.__deltaboard.streamStats().connects >= 5")
    server.post(f"/api/runs/{run['id']}/cancel")
    page.wait_for_function("() => window.__deltaboard.streamStats().done === true", timeout=60_000)
    final = server.wait_status(run["id"], {"canceled"})
    seqs = page.evaluate("() => window.__deltaboard.seqs()")
    assert seqs == list(range(1, final["last_seq"] + 1))
    stats = page.evaluate("() => window.__deltaboard.streamStats()")
    assert stats["drops"] >= 4 and stats["gaps"] == 0


def test_compare_two_runs(page, server, artifacts):
    base = {**LONG_SPEC, "epochs": 15}
    a = server.create_run({**base, "name": "compare: adam 0.01"})
    b = server.create_run(
        {**base, "name": "compare: sgd 0.5", "optimizer": {"name": "sgd", "learning_rate": 0.5}}
    )
    server.wait_status(a["id"], {"finished"})
    server.wait_status(b["id"], {"finished"})
    page.goto(page.base + "/")
    for run in (a, b):
        page.locator(f'[data-run-id="{run["id"]}"] input[data-compare]').check()
    page.get_by_test_id("compare-button").click()
    page.get_by_test_id("compare-view").wait_for(state="visible")
    page.get_by_test_id("compare-table").wait_for()
    assert page.get_by_test_id("compare-table").locator("tbody tr").count() == 2
    assert page.evaluate("() => location.hash") == f"#/compare/{a['id']},{b['id']}"
    loss = page.get_by_test_id("compare-loss-chart")
    assert loss.locator(".u-legend .u-series").count() == 1 + 2 * 2  # train and test per run
    grad = page.get_by_test_id("compare-grad-chart")
    assert grad.locator(".u-legend .u-series").count() == 1 + 2 * 3  # 3 layers per run
    assert pixels(page, "compare-loss-chart")["colored"] > 300
    assert pixels(page, "compare-grad-chart")["colored"] > 300
    page.get_by_test_id("compare-layer").select_option("0")
    assert grad.locator(".u-legend .u-series").count() == 1 + 2
    page.screenshot(path=str(artifacts / "compare.png"), full_page=True)


def test_link_reproduces_view_and_spec_and_exports(page, server, tmp_path):
    spec = {**LONG_SPEC, "name": "export me", "epochs": 3}
    run = server.create_run(spec)
    server.wait_status(run["id"], {"finished"})
    open_run(page, run["id"])
    wait_badge(page, "finished")
    page.wait_for_function("() => window.__deltaboard.streamStats()?.done === true")
    events = server.events(run["id"])

    with page.expect_download() as dl:
        page.get_by_test_id("export-json").click()
    path = tmp_path / "events.json"
    dl.value.save_as(path)
    assert [e["seq"] for e in json.loads(path.read_text())] == [e["seq"] for e in events]

    with page.expect_download() as dl:
        page.get_by_test_id("export-csv").click()
    dl.value.save_as(tmp_path / "events.csv")
    lines = (tmp_path / "events.csv").read_text().splitlines()
    assert lines[0].startswith("seq,type,") and "L3_delta_rms" in lines[0]
    assert len(lines) == 1 + len(events)

    with page.expect_download() as dl:
        page.get_by_test_id("export-npz").click()
    dl.value.save_as(tmp_path / "model.npz")
    model = np.load(io.BytesIO((tmp_path / "model.npz").read_bytes()))
    assert sorted(model.files) == ["W1", "W2", "W3", "b1", "b2", "b3"] and model["W1"].shape == (8, 2)
    # The page parsed the same npz for the network view.
    w = page.evaluate("() => window.__deltaboard.weights()")
    assert np.allclose(np.array(w[0]), model["W1"])

    # The editor's spec travels in the hash: a link reopens it.
    page.goto(page.base + "/")
    page.get_by_test_id("preset-select").select_option("sigmoid-vanishes")
    page.wait_for_function("() => location.hash.includes('spec=')")
    link = page.evaluate("() => location.href")
    page.goto("about:blank")
    page.goto(link)
    page.get_by_test_id("spec-editor").wait_for(state="visible")
    reopened = json.loads(page.get_by_test_id("spec-json").input_value())
    assert [layer["activation"] for layer in reopened["layers"]] == ["sigmoid"] * 7


def test_health_alerts_for_a_vanishing_sigmoid_net(page, server, artifacts):
    spec = json.loads((ROOT / "examples" / "sigmoid_vanishing.json").read_text())
    spec["epochs"] = 8
    run = server.create_run(spec)
    server.wait_status(run["id"], {"finished"})
    open_run(page, run["id"])
    page.wait_for_function("() => window.__deltaboard.streamStats()?.done === true")
    alerts = page.get_by_test_id("alerts")
    wait_text(page, "alerts", "Vanishing")
    assert "Vanishing gradients" in alerts.inner_text()
    assert "shrinks most" in page.get_by_test_id("factor-view").inner_text()
    page.screenshot(path=str(artifacts / "run-view-sigmoid-vanishing.png"), full_page=True)


def test_token_prompt_on_401_keeps_the_token(token_page, token_server):
    """With a configured token the page asks for it on the first 401, sends it as Bearer (REST) and
    ?token= (websocket), and keeps it in localStorage for the next visit."""
    page = token_page
    page.expect_console_errors(r"status of 401")
    run = token_server.create_run({**LONG_SPEC, "name": "behind a token", "epochs": 2})  # stays queued
    page.goto(f"{page.base}/#/runs/{run['id']}")
    page.get_by_test_id("token-input").wait_for(state="visible")
    page.get_by_test_id("token-input").fill("s3cret-token")
    page.get_by_test_id("token-ok").click()
    page.locator(f'[data-testid=run-list] [data-run-id="{run["id"]}"]').wait_for()
    assert page.evaluate("() => localStorage.getItem('deltaboard.token')") == "s3cret-token"
    # The stream authenticated with ?token=: the run's first event (queued) arrived.
    page.wait_for_function("() => window.__deltaboard.streamStats()?.events >= 1")
    assert page.evaluate("() => window.__deltaboard.seqs()")[0] == 1
    wait_badge(page, "queued")
    # No worker on this server: the run waits in the queue, and the list says where.
    badge = page.locator(f'[data-testid=run-list] [data-run-id="{run["id"]}"] .badge')
    assert re.fullmatch(r"queued #\d+", badge.inner_text())
    # Next visit: no prompt, the stored token is used at once.
    page.reload()
    page.locator(f'[data-testid=run-list] [data-run-id="{run["id"]}"]').wait_for()
    assert page.get_by_test_id("token-input").is_hidden()
    page.wait_for_function("() => window.__deltaboard.streamStats()?.events >= 1")
