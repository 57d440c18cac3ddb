"""The malformed-CSV corpus (tests/fixtures/malformed_csv): every file lands whole or quarantined.

Per file: input rows = landed + quarantined + skipped, every quarantined row has a field and a
reason (and the row as read), and landing it through dlt into a warehouse never raises.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from connectors.csv_folder import CsvFolderSource
from connectors.landing import land_source
from connectors.mapping import MappingError, load_mapping

CORPUS = Path(__file__).parent / "fixtures" / "malformed_csv"
MAPPING = CORPUS / "mapping.yaml"

# file -> (input rows, landed, quarantined, skipped, reason fragments of the quarantined rows)
EXPECTED = {
    "huge_field.csv": (3, 3, 0, 0, []),
    "invalid_utf8.csv": (3, 2, 1, 0, ["not valid in the file's encoding (utf-8)"]),
    "nul_byte.csv": (3, 2, 1, 0, ["NUL byte"]),
    "too_many_fields.csv": (3, 2, 1, 0, ["more fields than the header"]),
    "too_few_fields.csv": (3, 2, 1, 0, ["fewer fields than the header"]),
    "bom_crlf_newlines.csv": (3, 3, 0, 0, []),
    "latin1.csv": (3, 1, 2, 0, ["set formats.encoding"]),
    "formula_text.csv": (3, 2, 1, 0, ["amount: not a number: '=1+1'"]),
    "unterminated_quote.csv": (2, 1, 1, 0, ["fewer fields than the header"]),
    "duplicate_keys.csv": (5, 3, 1, 1, ["duplicate primary key: kept row 2 (the latest Modified)"]),
    "implausible_values.csv": (4, 1, 3, 0, ["outside the plausible window", "outside the plausible window", "above the ceiling"]),
    "missing_created.csv": (2, 2, 0, 0, []),
    "empty.csv": (0, 0, 0, 0, []),
    "blank_lines.csv": (3, 2, 1, 0, ["more fields than the header"]),
    "header_only_no_newline.csv": (0, 0, 0, 0, []),
}


def _folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name.removesuffix(".csv")
    folder.mkdir()
    shutil.copy(CORPUS / name, folder / "Deals.csv")
    return folder


def _read(source: CsvFolderSource):
    rows, rejected = [], []
    for batch in source.read("opportunities", batch_size=2):
        rows += batch.row_dicts()
        rejected += batch.rejected
    return rows, rejected


def test_the_corpus_covers_every_file():
    assert sorted(p.name for p in CORPUS.glob("*.csv")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_row_is_landed_quarantined_or_skipped(tmp_path, name):
    source = CsvFolderSource(_folder(tmp_path, name), MAPPING)
    rows, rejected = _read(source)
    report = source.reports["opportunities"]
    n_input, n_landed, n_quarantined, n_skipped, reasons = EXPECTED[name]
    assert (report.input_count, report.rows, report.rejected, report.skipped) == (n_input, n_landed, n_quarantined, n_skipped)
    assert report.input_count == report.rows + report.rejected + report.skipped
    assert len(rows) == report.rows and len(rejected) == report.rejected
    for r in rejected:
        assert r["row_number"] >= 1 and r["field"] and r["reason"] and r["source_file"] == "Deals.csv"
        assert r["raw_record"], r
    for fragment in reasons:
        assert any(fragment in r["reason"] for r in rejected), (fragment, rejected)
    # row numbers are record numbers in the file, landed and quarantined alike, each once
    numbers = sorted([r["_source_row"] for r in rows] + [r["row_number"] for r in rejected])
    assert len(numbers) == len(set(numbers))


def test_row_numbers_count_records_not_lines(tmp_path):
    source = CsvFolderSource(_folder(tmp_path, "bom_crlf_newlines.csv"), MAPPING)
    rows, _ = _read(source)
    assert [r["_source_row"] for r in rows] == [1, 2, 3]
    assert rows[1]["opportunity_name"] == "Deal 2\r\nsecond line, with comma"
    assert rows[0]["opportunity_id"] == "O-1"  # the BOM is not part of the first header


def test_row_numbers_stay_right_after_a_blank_line(tmp_path):
    rows, rejected = _read(CsvFolderSource(_folder(tmp_path, "blank_lines.csv"), MAPPING))
    # the blank line is record 2 (DuckDB's line numbers count it): O-2 is 3, O-3 is 4
    assert [(r["opportunity_id"], r["_source_row"]) for r in rows] == [("O-1", 1), ("O-3", 4)]
    assert [r["row_number"] for r in rejected] == [3] and "O-2" in rejected[0]["raw_record"]


def test_invalid_bytes_travel_with_the_quarantined_row(tmp_path):
    source = CsvFolderSource(_folder(tmp_path, "invalid_utf8.csv"), MAPPING)
    _, rejected = _read(source)
    assert rejected[0]["row_number"] == 2 and "Caf" in rejected[0]["raw_record"] and "O-2" in rejected[0]["raw_record"]


def test_huge_fields_land_and_rows_over_the_reader_limit_are_quarantined(tmp_path):
    folder = tmp_path / "huge"
    folder.mkdir()
    text = (CORPUS / "huge_field.csv").read_text()
    lines = text.splitlines(keepends=True)
    (folder / "Deals.csv").write_text(lines[0] + lines[1] + "O-9," + "y" * 2_100_000 + ",Discovery,1,2026-01-01 00:00:00,,\n" + lines[3])
    source = CsvFolderSource(folder, MAPPING)
    rows, rejected = _read(source)
    assert [r["opportunity_id"] for r in rows] == ["O-1", "O-3"]
    assert rejected[0]["row_number"] == 2 and "larger than the reader's limit" in rejected[0]["reason"]
    source = CsvFolderSource(_folder(tmp_path, "huge_field.csv"), MAPPING)
    rows, _ = _read(source)
    assert len(rows[1]["opportunity_name"]) == 200_000  # larger than the csv module's default field limit


def test_latin1_lands_with_its_declared_encoding_and_a_wrong_guess_quarantines(tmp_path):
    folder = _folder(tmp_path, "latin1.csv")
    rows, rejected = _read(CsvFolderSource(folder, MAPPING))
    assert len(rows) == 1 and len(rejected) == 2  # utf-8 guessed: rows quarantined, the run goes on
    mapping = load_mapping(MAPPING).model_copy(deep=True)
    mapping.formats.encoding = "latin-1"
    rows, rejected = _read(CsvFolderSource(folder, mapping))
    assert [r["opportunity_name"] for r in rows] == ["Müller GmbH", "Société Générale", "Plain"] and rejected == []


def test_an_unsupported_encoding_is_a_mapping_error(tmp_path):
    mapping = load_mapping(MAPPING).model_copy(deep=True)
    mapping.formats.encoding = "shift_jis"
    with pytest.raises(MappingError, match="Deals.csv: formats.encoding 'shift_jis' is not supported"):
        CsvFolderSource(_folder(tmp_path, "latin1.csv"), mapping).check()


def test_a_missing_required_column_is_a_mapping_error_naming_file_and_column(tmp_path):
    folder = tmp_path / "nostage"
    folder.mkdir()
    (folder / "Deals.csv").write_text("Id,Name,Amount,Created,Close,Modified\nO-1,a,1,,,\n")
    mapping = load_mapping(MAPPING).model_copy(deep=True)
    del mapping.objects["opportunities"].columns["stage"]
    with pytest.raises(MappingError, match=r"Deals.csv: no column for the required field\(s\) stage of opportunities"):
        CsvFolderSource(folder, mapping).check()


def test_duplicates_keep_the_latest_modified_else_the_last(tmp_path):
    rows, rejected = _read(CsvFolderSource(_folder(tmp_path, "duplicate_keys.csv"), MAPPING))
    by_id = {r["opportunity_id"]: r for r in rows}
    assert by_id["O-1"]["opportunity_name"] == "Deal 1 renamed"  # modified 2026-03-01, later than row 1
    assert [r["row_number"] for r in rejected] == [1]
    mapping = load_mapping(MAPPING).model_copy(deep=True)
    mapping.objects["opportunities"].modified = None
    rows, rejected = _read(CsvFolderSource(_folder(tmp_path / "x", "duplicate_keys.csv") if (tmp_path / "x").mkdir() is None else None, mapping))
    assert {r["opportunity_id"]: r["_source_row"] for r in rows}["O-1"] == 2 and "the last in the file" in rejected[0]["reason"]


def test_plausibility_window_and_ceiling_are_configurable(tmp_path):
    mapping = load_mapping(MAPPING).model_copy(deep=True)
    mapping.plausibility.min_date = __import__("datetime").date(1800, 1, 1)
    mapping.plausibility.max_years_ahead = 100
    mapping.plausibility.max_amount = 1e16
    rows, rejected = _read(CsvFolderSource(_folder(tmp_path, "implausible_values.csv"), mapping))
    assert len(rows) == 4 and rejected == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_landing_each_file_through_dlt_never_raises(tmp_path, name):
    source = CsvFolderSource(_folder(tmp_path, name), MAPPING)
    warehouse = tmp_path / "w.duckdb"
    reports = {r["object"]: r for r in land_source(source, warehouse, tmp_path / "work", "corpus")}
    n_input, n_landed, n_quarantined, n_skipped, _ = EXPECTED[name]
    assert (reports["opportunities"]["rows"], reports["opportunities"]["rejected"]) == (n_landed, n_quarantined)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw.opportunities").fetchone()[0] == n_landed
        assert con.execute("select count(*) from raw.rejected_rows where reason is not null").fetchone()[0] == n_quarantined


@pytest.mark.slow
def test_sales_supervisor_run_on_a_file_with_every_kind_of_damage_exits_1_without_a_traceback(tmp_path):
    """The whole run on one file mixing the corpus' damage: no traceback, an ERROR check for the
    quarantined share, exit code 1 and 'succeeded with N failed checks' on the first line."""
    from typer.testing import CliRunner

    from sales_supervisor.cli import app

    folder = tmp_path / "export"
    folder.mkdir()
    header = (CORPUS / "nul_byte.csv").read_bytes().split(b"\n", 1)[0] + b"\n"
    body = b"".join(
        (CORPUS / name).read_bytes().split(b"\n", 1)[1].replace(b"O-", name[:3].encode() + b"-")
        for name in ("invalid_utf8.csv", "nul_byte.csv", "too_many_fields.csv", "duplicate_keys.csv",
                     "implausible_values.csv", "formula_text.csv", "unterminated_quote.csv")
    )
    (folder / "Deals.csv").write_bytes(header + body)
    result = CliRunner().invoke(
        app, ["run", "--home", str(tmp_path / "var"), "--source", "csv", "--csv-folder", str(folder), "--mapping", str(MAPPING)]
    )
    out = " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in out
    assert result.exit_code == 1, result.output
    assert "succeeded with 1 failed check" in out or "succeeded with" in out and "failed checks" in out
    assert "ERROR raw/opportunities no_rejected_rows" in out
