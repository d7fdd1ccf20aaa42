"""Live weights, the run's real points and CSV upload in the dashboard (Debian's Chromium, real
`deltaboard up`; fixtures in conftest.py, which also fails a test on any unexpected console error).

- a paused run's network view shows the snapshot of its paused step (edges coloured by sign), and
  the edges change after one `Step`; while running the page keeps fetching newer snapshots;
- the boundary view draws exactly the points GET /api/runs/{id}/data returns (train filled, test rings);
- the editor uploads a CSV, picks it and fits the output layer, trains on it; a bad CSV's 422 message
  (line and column) is shown next to the upload.
Screenshots go to tests/artifacts/.
"""

import io
import json
import urllib.request

import numpy as np
import pytest
from test_dashboard import LONG_SPEC, SIGN_COLORS_JS, open_run, pixels, wait_badge

pytestmark = pytest.mark.browser

CANVAS_DIGEST_JS = """c => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 0;
  for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) >>> 0;
  return h;
}"""


def server_model(server, run_id: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    with urllib.request.urlopen(f"{server.base}/api/runs/{run_id}/model", timeout=30) as res:
        headers = {k.lower(): v for k, v in res.headers.items()}
        with np.load(io.BytesIO(res.read()), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}, headers


def wait_model_step(page, step: int, timeout: float = 30_000) -> None:
    page.wait_for_function("n => window.__deltaboard.model()?.step === n", arg=step, timeout=timeout)


def wait_points(page, train: int, test: int) -> None:
    """Wait until the boundary view has drawn exactly `train` filled and `test` hollow points."""
    js = "([a, b]) => { const p = __deltaboard.boundaryPoints(); return p?.train === a && p?.test === b; }"
    page.wait_for_function(js, arg=[train, test])


def page_weights(page) -> list[np.ndarray]:
    return [np.array(W) for W in page.evaluate("() => window.__deltaboard.weights()")]


def test_paused_run_shows_its_weights_and_they_change_after_a_step(page, server, artifacts):
    run = server.create_run({**LONG_SPEC, "name": "live weights"})
    open_run(page, run["id"])
    wait_badge(page, "running")
    # The initial weights (stored before the run turned running) colour the edges from the start.
    page.wait_for_function("() => window.__deltaboard.model() !== null")

    page.get_by_test_id("pause-button").click()
    wait_badge(page, "paused")
    n = server.wait_status(run["id"], {"paused"})["progress"]["step"]
    wait_model_step(page, n)
    arrays, headers = server_model(server, run["id"])
    assert headers["x-deltaboard-step"] == str(n)
    shown = page_weights(page)
    for k, W in enumerate(shown, start=1):
        np.testing.assert_array_equal(W, arrays[f"W{k}"])
    net = page.locator("#net-canvas")
    page.wait_for_function(
        "() => document.querySelector('#net-legend').textContent.includes('live snapshot')"
    )
    signs = net.evaluate(SIGN_COLORS_JS)
    assert signs["blue"] > 200 and signs["orange"] > 200, signs  # coloured edges, not grey
    assert f"after step {n}" in page.locator("#net-legend").inner_text()
    before = net.evaluate(CANVAS_DIGEST_JS)
    # The boundary follows the same weights (computed in the page from the snapshot). When the pause
    # fell right after an epoch that carried a boundary, that epoch's grid is of the same weights, and
    # the page shows it under the epoch's name (an epoch wins a tie).
    progress = server.get(f"/api/runs/{run['id']}")["progress"]
    steps_per_epoch = progress["steps"] // progress["epochs"]
    labels = [f"after step {n} (weight snapshot)"]
    if n % steps_per_epoch == 0:
        labels.append(f"after epoch {n // steps_per_epoch}")
    page.wait_for_function("labels => labels.includes(window.__deltaboard.boundaryLabel())", arg=labels)
    page.locator(".run-grid > .panel").first.screenshot(path=str(artifacts / "live-weights-paused.png"))

    page.get_by_test_id("step-button").click()
    wait_model_step(page, n + 1)
    wait_badge(page, "paused")
    after = page_weights(page)
    assert any(not np.array_equal(a, b) for a, b in zip(shown, after, strict=True))
    arrays, headers = server_model(server, run["id"])
    assert headers["x-deltaboard-step"] == str(n + 1)
    np.testing.assert_array_equal(after[0], arrays["W1"])
    page.wait_for_function(
        "d => { const c = document.querySelector('#net-canvas'); return ("
        + CANVAS_DIGEST_JS
        + ")(c) !== d; }",
        arg=before,
    )
    assert f"after step {n + 1}" in page.locator("#net-legend").inner_text()
    signs = net.evaluate(SIGN_COLORS_JS)
    assert signs["blue"] > 200 and signs["orange"] > 200, signs
    page.locator(".run-grid > .panel").first.screenshot(path=str(artifacts / "live-weights-stepped.png"))
    page.locator("#boundary-panel").screenshot(path=str(artifacts / "live-boundary-stepped.png"))

    # Running again: the page keeps fetching newer snapshots while the network is in view.
    page.get_by_test_id("resume-button").click()
    wait_badge(page, "running")
    page.wait_for_function("n => window.__deltaboard.model()?.step > n", arg=n + 1, timeout=30_000)
    assert page.evaluate("() => window.__deltaboard.model().final") is False
    server.post(f"/api/runs/{run['id']}/cancel")
    wait_badge(page, "canceled")
    final = server.wait_status(run["id"], {"canceled"})
    wait_model_step(page, final["progress"]["step"])
    assert page.evaluate("() => window.__deltaboard.model().final") is True


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ({"name": "moons", "samples": 400, "noise": 0.1, "test_fraction": 0.25, "seed": 3}, (300, 100)),
        ({"name": "spiral", "samples": 3000, "noise": 0.1, "test_fraction": 0.2, "seed": 1}, (1600, 400)),
    ],
)
def test_boundary_draws_the_runs_real_points(page, server, artifacts, dataset, expected):
    spec = {**LONG_SPEC, "name": f"real points: {dataset['name']}", "dataset": dataset, "epochs": 2}
    run = server.create_run(spec)
    server.wait_status(run["id"], {"finished"})
    data = server.get(f"/api/runs/{run['id']}/data?max_points=2000")
    assert (len(data["train"]["X"]), len(data["test"]["X"])) == expected
    open_run(page, run["id"])
    page.wait_for_function("() => window.__deltaboard.streamStats()?.done === true")
    wait_points(page, *expected)
    legend = page.get_by_test_id("boundary-points").inner_text()
    assert f"{expected[0]} training" in legend and f"{expected[1]} test" in legend
    assert "preview" not in legend
    assert "after epoch 2" in page.get_by_test_id("boundary-caption").inner_text()
    assert pixels(page, "boundary-view")["colored"] > 2000
    page.locator("#boundary-panel").screenshot(path=str(artifacts / f"boundary-{dataset['name']}.png"))


def blobs_csv(rows: int = 150) -> str:
    """Three 2-D clusters with labels 0, 1, 2 (a header row, then x1,x2,label)."""
    rng = np.random.default_rng(7)
    centres = np.array([[-1.0, -0.5], [1.0, -0.5], [0.0, 1.0]])
    labels = np.arange(rows) % 3
    X = centres[labels] + 0.3 * rng.standard_normal((rows, 2))
    lines = ["x1,x2,label"] + [f"{x:.4f},{y:.4f},{c}" for (x, y), c in zip(X, labels, strict=True)]
    return "\n".join(lines) + "\n"


def test_csv_upload_picks_the_dataset_fits_the_output_and_trains(page, server, artifacts, tmp_path):
    path = tmp_path / "three blobs.csv"
    path.write_text(blobs_csv())
    page.goto(page.base + "/")
    page.get_by_test_id("spec-editor").wait_for(state="visible")
    assert page.get_by_label("Upload CSV…").count() == 1  # a labelled file input
    page.get_by_test_id("csv-upload").set_input_files(str(path))
    msg = page.get_by_test_id("csv-msg")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=csv-msg]').textContent.startsWith('uploaded')"
    )
    assert "150 rows, 2 inputs" in msg.inner_text() and "3 classes" in msg.inner_text()
    assert page.get_by_test_id("csv-error").inner_text() == ""
    picked = page.get_by_test_id("dataset-select").input_value()
    assert picked.startswith("upload:")
    spec = json.loads(page.get_by_test_id("spec-json").input_value())
    assert spec["dataset"]["name"] == picked
    assert (spec["loss"], spec["layers"][-1]) == ("cross_entropy", {"units": 3, "activation": "softmax"})
    assert "uploaded: " in page.locator("#preview-caption").inner_text()
    uploaded = {d["spec_name"]: d for d in server.get("/api/datasets")["uploaded"]}
    assert uploaded[picked]["name"] == "three blobs" and uploaded[picked]["rows"] == 150
    assert page.locator("[data-path='dataset.samples']").is_disabled()  # samples/noise: not for uploads
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / "editor-csv-uploaded.png"))

    # Train on it (a few epochs), then the run view draws its real points and the weights.
    box = page.get_by_test_id("spec-json")
    box.fill(json.dumps({**spec, "epochs": 30}))
    page.get_by_test_id("train-button").click()
    page.wait_for_function("() => location.hash.startsWith('#/runs/')")
    run_id = page.evaluate("() => location.hash.split('/')[2].split('?')[0]")
    wait_badge(page, "finished", timeout=120_000)
    run = server.get(f"/api/runs/{run_id}")
    assert run["spec"]["dataset"]["name"] == picked and run["status"] == "finished"
    data = server.get(f"/api/runs/{run_id}/data")
    assert data["n_classes"] == 3 and len(data["train"]["X"]) + len(data["test"]["X"]) == 150
    wait_points(page, len(data["train"]["X"]), len(data["test"]["X"]))
    page.wait_for_function("() => window.__deltaboard.model()?.final === true")
    assert [np.array(W).shape for W in page.evaluate("() => window.__deltaboard.weights()")][-1] == (3, 8)
    assert run["metrics"]["train_accuracy"] > 0.8
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / "run-view-csv.png"))


def test_csv_upload_of_a_regression_with_three_inputs_fits_a_linear_output(page, server, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (40, 3))
    path = tmp_path / "plane3.csv"
    path.write_text("\n".join(f"{a:.3f},{b:.3f},{c:.3f},{a + b - c:.3f}" for a, b, c in X) + "\n")
    page.goto(page.base + "/")
    page.get_by_test_id("csv-upload").set_input_files(str(path))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=csv-msg]').textContent.startsWith('uploaded')"
    )
    assert "regression" in page.get_by_test_id("csv-msg").inner_text()
    assert "40 rows, 3 inputs" in page.get_by_test_id("csv-msg").inner_text()
    spec = json.loads(page.get_by_test_id("spec-json").input_value())
    assert (spec["loss"], spec["layers"][-1]) == ("mse", {"units": 1, "activation": "linear"})


def test_bad_csv_shows_the_line_and_column_next_to_the_upload(page, server, artifacts, tmp_path):
    page.expect_console_errors(r"status of 422")
    rows = blobs_csv(30).splitlines()
    rows[3] = rows[3].split(",")[0] + ",abc," + rows[3].split(",")[2]  # line 4, column 2
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(rows) + "\n")
    uploads_before = len(server.get("/api/datasets")["uploaded"])
    page.goto(page.base + "/")
    page.get_by_test_id("spec-editor").wait_for(state="visible")
    page.get_by_test_id("csv-upload").set_input_files(str(path))
    error = page.get_by_test_id("csv-error")
    page.wait_for_function("() => document.querySelector('[data-testid=csv-error]').textContent !== ''")
    assert "line 4, column 2" in error.inner_text() and "'abc' is not a number" in error.inner_text()
    assert "broken.csv" in error.inner_text()
    assert page.get_by_test_id("dataset-select").input_value() == "xor"  # nothing picked
    assert len(server.get("/api/datasets")["uploaded"]) == uploads_before
    page.screenshot(path=str(artifacts / "editor-csv-422.png"))
