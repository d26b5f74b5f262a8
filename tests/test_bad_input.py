"""Bad input files get one line naming the file and what is wrong, and exit 1: a binary or non-UTF-8 space file,
a `--data` that is a directory, a binary, latin-1 or header-repeating CSV, and `hpt predict` rows whose column
holds the wrong type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def test_a_utf16_csv_is_one_line_with_the_fix(tmp_path: Path):
    path = tmp_path / "export.csv"
    path.write_text("name,label\nx,a\n", encoding="utf-16")
    assert run_on_csv(path) == (
        f"error: data file {str(path)!r} is UTF-16 text, not UTF-8; convert it: "
        "iconv -f utf-16 -t utf-8 export.csv > utf8-export.csv"
    )


def test_a_csv_that_repeats_column_names_names_them(tmp_path: Path):
    path = tmp_path / "rows.csv"
    path.write_text("a,b,a,c,b,label\n" + "1,2,3,4,5,x\n" * 30)
    assert run_on_csv(path) == (
        f"error: data file {str(path)!r} repeats column name(s) 'a', 'b'; give each column its own name"
    )


@pytest.fixture(scope="module")
def shop_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A study on a CSV of a number (`weight`), a text (`colour`) and a true/false (`fragile`) column: its store
    and parent run."""
    pytest.importorskip("torch")
    from conftest import invoke_json

    here = tmp_path_factory.mktemp("shop")
    rows = ["weight,colour,fragile,label"] + [
        f"{10 + i * 0.37:.2f},{('red', 'blue')[i % 2]},{i % 5 == 0},{'ab'[i % 3 == 0]}" for i in range(60)
    ]
    (here / "shop.csv").write_text("\n".join(rows) + "\n")
    store = f"sqlite:///{here}/mlflow.db"
    out = invoke_json(
        "run", "--data", str(here / "shop.csv"), "--target", "label", "--trials", "1", "--max-epochs", "2",
        "--tracking-uri", store, "--quiet",
    )  # fmt: skip
    return store, out["parent_run_id"]


def predict(model: tuple[str, str], path: Path) -> Any:
    """`hpt predict` on the model's run with `--data path`: click's result."""
    from hpt_reports.predict import predict as command

    store, run_id = model
    return CliRunner().invoke(command, [run_id, "--data", str(path), "--tracking-uri", store])


@pytest.mark.slow  # trains and logs a model once for these tests (about 10 s)
@pytest.mark.parametrize(
    ("rows", "line"),
    [
        (
            "12.5,red,True\nheavy,blue,False\n",
            "column 'weight' holds text ('heavy'); the model expects numbers (double) there, "
            "as in the data it was trained on",
        ),
        (
            "12.5,red,yes\n",
            "column 'fragile' holds other values ('yes'); the model expects true/false (boolean) there, "
            "as in the data it was trained on",
        ),
        (
            "12.5,red,True\n13.5,blue,\n",
            "column 'fragile' has 1 empty value(s); the model needs true or false in every row there "
            "(the data it was trained on had no gaps in it)",
        ),
    ],
)
def test_predict_names_a_column_of_the_wrong_type_and_the_type_it_expects(shop_model, tmp_path: Path, rows, line):
    (tmp_path / "new.csv").write_text("weight,colour,fragile\n" + rows)
    result = predict(shop_model, tmp_path / "new.csv")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: {line}"]


@pytest.mark.slow  # trains and logs a model once for these tests (about 10 s)
def test_predict_reads_whole_numbers_and_numbers_in_a_text_column(shop_model, tmp_path: Path):
    """Columns that pandas reads as int64 where the model was trained on decimals or on text (MLflow's own
    schema check refuses both) are read as the training CSV's were."""
    (tmp_path / "new.csv").write_text("weight,colour,fragile\n12,red,True\n20,blue,False\n,3,False\n")
    result = predict(shop_model, tmp_path / "new.csv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "weight,colour,fragile,prediction" and len(lines) == 4
    assert {line.rsplit(",", 1)[1] for line in lines[1:]} <= {"a", "b"}


@pytest.mark.slow  # trains and logs a model once for these tests (about 10 s)
def test_predict_refuses_what_run_refuses(shop_model, tmp_path: Path):
    (tmp_path / "new.csv").write_text("weight,colour,weight\n1,red,2\n")
    assert predict(shop_model, tmp_path).stderr.strip() == (
        f"error: data file {str(tmp_path)!r} is a directory; --data takes a CSV file"
    )
    assert predict(shop_model, tmp_path / "new.csv").stderr.strip() == (
        f"error: data file {str(tmp_path / 'new.csv')!r} repeats column name(s) 'weight'; give each column its own name"
    )
