"""CSV uploads: the happy paths, every rejected input with its line (and column), and arbitrary bytes."""

import numpy as np
import pytest

from worker.nn.csvdata import CSVError, parse_csv


def rows(n: int = 12, label=lambda i: i % 2) -> list[str]:
    return [f"{i * 0.5},{-i},{label(i)}" for i in range(n)]


def csv_bytes(lines: list[str], newline: str = "\n") -> bytes:
    return (newline.join(lines) + newline).encode()


def error(data: bytes, task: str = "auto", **limits) -> CSVError:
    with pytest.raises(CSVError) as info:
        parse_csv(data, "d", task, **limits)
    return info.value


def test_header_and_binary_labels_give_classification():
    X, y, info = parse_csv(csv_bytes(["x1,x2,label", *rows()]), "upload:abc")
    assert X.shape == (12, 2) and X.dtype == np.float64
    np.testing.assert_array_equal(X[:3], [[0.0, 0.0], [0.5, -1.0], [1.0, -2.0]])
    assert y.dtype == np.int64 and y.shape == (12,)
    np.testing.assert_array_equal(y, np.arange(12) % 2)
    assert (info.name, info.task, info.input_dim, info.n_classes) == ("upload:abc", "classification", 2, 2)


def test_without_header_the_first_row_is_data():
    X, y, _ = parse_csv(csv_bytes(rows()), "d")
    assert X.shape == (12, 2) and y[0] == 0


def test_non_integer_targets_give_regression_with_a_target_column():
    _, y, info = parse_csv(csv_bytes(rows(label=lambda i: i / 4)), "d")
    assert y.shape == (12, 1) and y.dtype == np.float64
    np.testing.assert_allclose(y[:, 0], np.arange(12) / 4)
    assert (info.task, info.n_classes, info.target_dim) == ("regression", None, 1)


def test_auto_classes_up_to_twenty_and_regression_beyond():
    _, y, info = parse_csv(csv_bytes(rows(40, lambda i: i % 20)), "d")
    assert info.task == "classification" and info.n_classes == 20 and y.max() == 19
    _, _, info = parse_csv(csv_bytes(rows(42, lambda i: i % 21)), "d")
    assert info.task == "regression"


def test_negative_integer_targets_are_regression_in_auto_mode():
    _, _, info = parse_csv(csv_bytes(rows(label=lambda i: i % 3 - 1)), "d")
    assert info.task == "regression"


def test_explicit_regression_keeps_integer_labels_as_numbers():
    _, y, info = parse_csv(csv_bytes(rows()), "d", "regression")
    assert info.task == "regression" and y.shape == (12, 1)


def test_explicit_classification_allows_many_classes():
    _, y, info = parse_csv(csv_bytes(rows(30, lambda i: i)), "d", "classification")
    assert info.n_classes == 30 and y.max() == 29


def test_crlf_bom_quotes_spaces_and_blank_lines_are_accepted():
    lines = ['"a", "b" ,"t"', *[f' "{i}" , {i * 2} , {i % 2} ' for i in range(10)], "", "  "]
    data = "\ufeff".encode() + csv_bytes(lines, "\r\n")
    X, _, info = parse_csv(data, "d")
    assert X.shape == (10, 2) and X[3].tolist() == [3.0, 6.0] and info.n_classes == 2


def test_scientific_notation_and_signs_parse():
    X, _, _ = parse_csv(csv_bytes(["1e-3,+2,0", "-4.5E2,.5,1", *rows(10)]), "d")
    np.testing.assert_allclose(X[:2], [[1e-3, 2.0], [-450.0, 0.5]])


@pytest.mark.parametrize(
    ("data", "line", "column", "message"),
    [
        (b"", 1, None, "empty"),
        (b"\n  \n\n", 1, None, "empty"),
        (csv_bytes(["x,y,t", *rows(), "1,2"]), 14, None, "2 columns, but the header (line 1) has 3"),
        (csv_bytes([*rows(5), "1,2,3,4", *rows(5)]), 6, None, "4 columns, but line 1 has 3"),
        (csv_bytes([*rows(4), "1,abc,0", *rows(8)]), 5, 2, "'abc' is not a number"),
        (csv_bytes(["a,b,c", *rows(3), "1,2,", *rows(8)]), 5, 3, "empty cell"),
        (csv_bytes([*rows(7), "nan,1,0", *rows(4)]), 8, 1, "not a finite number"),
        (csv_bytes([*rows(7), "1,-inf,0", *rows(4)]), 8, 2, "not a finite number"),
        (csv_bytes([*rows(2), "1,1e400,0", *rows(9)]), 3, 2, "not a finite number"),
        (csv_bytes(["x", *[str(i) for i in range(20)]]), 1, None, "need at least 2"),
        (csv_bytes(["x,y,t", *rows(9)]), 10, None, "only 9 data row(s); need at least 10"),
        (csv_bytes(rows(3)), 3, None, "only 3 data row(s)"),
        (b"1,2,0\n3,4,1\n\xff\xfe,1,0\n", 3, None, "not UTF-8"),
        (csv_bytes(["x,y,t", *rows(12, lambda i: 1)]), 2, 3, "one class only"),
    ],
)
def test_rejected_csv_names_the_line(data, line, column, message):
    e = error(data)
    assert (e.line, e.column) == (line, column)
    assert message in str(e)
    assert str(e).startswith(f"line {line}")


def test_classification_task_rejects_fractional_and_negative_labels_and_one_class():
    e = error(csv_bytes(rows(12, lambda i: 0.5 if i == 6 else i % 2)), "classification")
    assert (e.line, e.column) == (7, 3) and "integers" in str(e)
    e = error(csv_bytes(rows(12, lambda i: -1 if i == 2 else i % 2)), "classification")
    assert (e.line, e.column) == (3, 3)
    e = error(csv_bytes(rows(12, lambda i: 4)), "classification")
    assert "one class only" in str(e) and e.line == 1
    e = error(csv_bytes(rows(12, lambda i: 10**6 if i == 9 else i % 2)), "classification")
    assert (e.line, e.column) == (10, 3) and "got 1e+06" in str(e)


def test_row_and_column_limits():
    e = error(csv_bytes(rows(30)), max_rows=20)
    assert e.line == 21 and "more than the limit of 20 data rows" in str(e)
    e = error(csv_bytes(["1,2,3,4,5"] * 12), max_columns=4)
    assert e.line == 1 and "5 columns, more than the limit of 4" in str(e)


def test_huge_field_is_a_csv_error():
    e = error(b"1," + b"9" * 200_000 + b"\n")
    assert e.line == 1 and "unreadable" in str(e)


def test_unknown_task_is_a_value_error():
    with pytest.raises(ValueError, match="task must be one of"):
        parse_csv(csv_bytes(rows()), "d", "clustering")  # type: ignore[arg-type]


def test_arbitrary_bytes_only_ever_raise_csv_error():
    rng = np.random.default_rng(0)
    good = csv_bytes(["x,y,t", *rows(15)])
    alphabet = np.frombuffer(b'0123456789,.-+eE\n\r" \t\x00abcnaif\xff\xc3', dtype=np.uint8)
    for trial in range(300):
        if trial % 3 == 0:
            data = rng.integers(0, 256, rng.integers(0, 200)).astype(np.uint8).tobytes()
        elif trial % 3 == 1:
            data = rng.choice(alphabet, rng.integers(0, 400)).tobytes()
        else:  # a good file with a few bytes changed
            buf = bytearray(good)
            for pos in rng.integers(0, len(buf), 3):
                buf[pos] = int(rng.integers(0, 256))
            data = bytes(buf)
        try:
            X, y, info = parse_csv(data, "d")
        except CSVError as e:
            assert str(e)
        else:
            assert np.isfinite(X).all() and len(X) == len(y) >= 10 and X.shape[1] == info.input_dim
