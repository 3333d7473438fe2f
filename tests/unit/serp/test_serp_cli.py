"""`leadgen serp parse`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from leadgen.cli import main


def test_parse_prints_docs(samples_dir: Path) -> None:
    path = samples_dir / "legacy-2015-10-21-flat-sort-by-time.trimmed.xml"
    result = CliRunner().invoke(main, ["serp", "parse", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["domain"] for d in data["docs"]] == ["php.su", "alexanderklimov.ru", "delphi-box.ru"]
    assert data["docs"][0]["title"] == "PHP.SU - Функция mysql_query()"
    text = CliRunner().invoke(main, ["serp", "parse", str(path)])
    assert text.exit_code == 0 and "delphi-box.ru" in text.output


def test_parse_error_code(samples_dir: Path) -> None:
    result = CliRunner().invoke(main, ["serp", "parse", str(samples_dir / "error-15-not-found.xml")])
    assert result.exit_code == 0
    assert "error 15" in result.output


def test_parse_malformed_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<yandexsearch><response>")
    result = CliRunner().invoke(main, ["serp", "parse", str(bad)])
    assert result.exit_code == 1
    assert "malformed SERP XML" in result.output
    missing = CliRunner().invoke(main, ["serp", "parse", str(tmp_path / "nope.xml")])
    assert missing.exit_code == 2
