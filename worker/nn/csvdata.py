"""Parse an uploaded CSV into a dataset: features X (n, d) and a target column y.

The rules (the README and the upload endpoint quote them):
- UTF-8 text (a leading byte-order mark is allowed), comma-separated, one example per line.
  Cells may be quoted ("1.5") and surrounded by spaces; blank lines are skipped.
- An optional header row: the first row is a header when any of its cells is not a number.
  It must have as many cells as the data rows.
- Every other cell is a finite number (`nan`, `inf` and empty cells are rejected).
- At least 2 columns: the feature columns, then the LAST column, the target.
- At least 10 data rows, and at most `max_rows`; at most `max_columns` columns.
- Task `"auto"`: classification when every target is an integer 0..K-1 with 2 <= K <= 20
  (K = largest label + 1), otherwise regression. A target column holding a single integer in 0..19
  on every row is rejected as "one class only". Task `"classification"` requires integer labels
  0..K-1 (K up to the server's unit limit) with at least two distinct labels present; `"regression"`
  takes any numbers.

Returns X float64 (n, d), y int64 labels (n,) for classification or float64 (n, 1) for regression
(the shapes of the built-in datasets), and the DatasetInfo. Every problem raises CSVError, whose
message starts with the 1-based line (and column) at fault; arbitrary bytes never raise anything else.
"""

import csv
import io
import itertools
import math
from typing import Literal

import numpy as np

from .datasets import DatasetInfo
from .limits import LIMITS

MIN_ROWS = 10
MAX_AUTO_CLASSES = 20
MAX_CLASSES = LIMITS.max_units  # a softmax output layer needs one unit per class
TASKS = ("auto", "classification", "regression")


class CSVError(ValueError):
    """A CSV the rules reject; `line` and `column` are 1-based (None when not about one line/column)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        where = f"line {line}" if line is not None else ""
        if column is not None:
            where = f"{where}, column {column}" if where else f"column {column}"
        super().__init__(f"{where}: {message}" if where else message)
        self.line = line
        self.column = column


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CSVError(
            f"the file is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})", line
        ) from None


def _rows(text: str, max_columns: int):
    """Yield (line number, cells) for each non-blank row, cells stripped."""
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    try:
        for cells in reader:
            cells = [c.strip() for c in cells]
            if not any(cells):
                continue
            if len(cells) > max_columns:
                raise CSVError(f"{len(cells)} columns, more than the limit of {max_columns}", reader.line_num)
            yield reader.line_num, cells
    except csv.Error as e:
        raise CSVError(f"unreadable CSV: {e}", max(reader.line_num, 1)) from None


def _parse_row(line: int, cells: list[str]) -> list[float]:
    values = []
    for column, cell in enumerate(cells, start=1):
        v = _number(cell)
        if v is None:
            what = "empty cell" if not cell else f"{cell[:40]!r} is not a number"
            raise CSVError(what, line, column)
        if not math.isfinite(v):
            raise CSVError(f"{cell[:40]!r} is not a finite number", line, column)
        values.append(v)
    return values


def _labels(y: np.ndarray, lines: list[int], column: int, task: str) -> np.ndarray | None:
    """Integer labels 0..K-1 if the targets are such (None in auto mode when they are not)."""
    top = MAX_AUTO_CLASSES if task == "auto" else MAX_CLASSES
    bad = (y != np.floor(y)) | (y < 0) | (y >= top)
    if bad.any():
        if task == "auto":
            return None
        i = int(bad.argmax())
        raise CSVError(
            f"classification targets must be integers 0, 1, ..., {top - 1}, got {y[i]:g}", lines[i], column
        )
    labels = y.astype(np.int64)
    if len(np.unique(labels)) < 2:
        raise CSVError(
            f"one class only: every target (column {column}) is {labels[0]}; "
            "classification needs at least two classes",
            lines[0],
            column,
        )
    return labels


def parse_csv(
    data: bytes,
    name: str,
    task: Literal["auto", "classification", "regression"] = "auto",
    max_columns: int = LIMITS.max_upload_columns,
    max_rows: int = LIMITS.max_samples,
) -> tuple[np.ndarray, np.ndarray, DatasetInfo]:
    """(X (n, d), y, DatasetInfo) from CSV bytes, by the rules in the module docstring."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    text = _decode(bytes(data))
    rows = _rows(text, max_columns)
    first = next(rows, None)
    if first is None:
        raise CSVError("the file is empty (no rows)", 1)
    header_line, header = first
    if all(_number(c) is not None for c in header):  # no header: the first row is data
        header_line, rows = None, itertools.chain([first], rows)
    width = len(header)
    if width < 2:
        raise CSVError(f"{width} column; need at least 2 (one or more features, then the target)", first[0])
    values: list[list[float]] = []
    lines: list[int] = []
    last_line = first[0]

    def take(line: int, cells: list[str]) -> None:
        if len(cells) != width:
            source = f"the header (line {header_line})" if header_line else f"line {lines[0]}"
            raise CSVError(f"{len(cells)} columns, but {source} has {width}", line)
        if len(values) >= max_rows:
            raise CSVError(f"more than the limit of {max_rows} data rows", line)
        values.append(_parse_row(line, cells))
        lines.append(line)

    for line, cells in rows:
        last_line = line
        take(line, cells)
    if len(values) < MIN_ROWS:
        raise CSVError(f"only {len(values)} data row(s); need at least {MIN_ROWS}", last_line)

    table = np.array(values, dtype=np.float64)
    X, target = table[:, :-1], table[:, -1]
    if task != "regression":
        labels = _labels(target, lines, width, task)
        if labels is not None:
            info = DatasetInfo(name, "classification", width - 1, int(labels.max()) + 1)
            return X, labels, info
    return X, target[:, None], DatasetInfo(name, "regression", width - 1, None, 1)
