"""Bad input files get one line naming the file and what is wrong, and exit 1: a binary or non-UTF-8 space file,
a `--data` that is a directory, a binary, latin-1 or header-repeating CSV, and `hpt predict` rows whose column
holds the wrong type."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hpt.cli import cli

LATIN1_CSV = "name,size,label\ncafé,1,a\nthé,2,b\n".encode("latin-1")
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"


def error_line(*args: str) -> str:
    """The one line `hpt ARGS` prints on stderr, checked to be an `error:` line with exit status 1."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def run_on_space(path: Path) -> str:
    return error_line("run", "--backend", "function", "--function", "branin", "--trials", "1", "--space", str(path))


def test_a_binary_space_file_is_one_line(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_bytes(PNG_HEADER)
    assert run_on_space(path) == f"error: space file {str(path)!r} is a binary file; a space file is YAML or TOML text"


def test_a_latin1_space_file_is_one_line_with_the_fix(tmp_path: Path):
    path = tmp_path / "space.toml"
    path.write_bytes("# taux d'apprentissage élevé\n[lr]\ntype = 'float'\nlow = 0.1\nhigh = 1\n".encode("latin-1"))
    line = run_on_space(path)
    assert line.startswith(f"error: space file {str(path)!r} is not UTF-8 text (byte 0xe9 on line 1)")
    assert line.endswith("iconv -f latin1 -t utf-8 space.toml > utf8-space.toml")


def run_on_csv(path: Path) -> str:
    pytest.importorskip("torch")
    return error_line("run", "--data", str(path), "--target", "label", "--trials", "1")


def test_data_naming_a_directory_says_so(tmp_path: Path):
    assert run_on_csv(tmp_path) == f"error: data file {str(tmp_path)!r} is a directory; --data takes a CSV file"


def test_a_binary_data_file_is_one_line(tmp_path: Path):
    path = tmp_path / "rows.csv"
    path.write_bytes(PNG_HEADER)
    assert run_on_csv(path) == f"error: data file {str(path)!r} is a binary file; --data takes a CSV text file"


def test_a_latin1_csv_is_one_line_with_the_fix(tmp_path: Path):
    path = tmp_path / "shop.csv"
    path.write_bytes(LATIN1_CSV)
    assert run_on_csv(path) == (
        f"error: data file {str(path)!r} is not UTF-8 text (byte 0xe9 on line 2); "
        "convert it, e.g. from latin-1: iconv -f latin1 -t utf-8 shop.csv > utf8-shop.csv"
    )


def test_a_csv_that_repeats_column_names_names_them(tmp_path: Path):
    path = tmp_path / "rows.csv"
    path.write_text("a,b,a,c,b,label\n" + "1,2,3,4,5,x\n" * 30)
    assert run_on_csv(path) == (
        f"error: data file {str(path)!r} repeats column name(s) 'a', 'b'; give each column its own name"
    )
