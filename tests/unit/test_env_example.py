"""Every setting is documented: in .env.example (with a value) and in the README."""

from pathlib import Path

from leadgen.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_env_example_and_readme():
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    names = [name.upper() for name in Settings.model_fields]
    assert [n for n in names if f"\n{n}=" not in example] == []
    assert [n for n in names if f"`{n}`" not in readme] == []


def test_env_example_loads_as_valid_settings(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.postgres_password == "change-me"
