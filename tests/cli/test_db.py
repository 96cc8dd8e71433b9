"""``guard db upgrade``, and the GUARD_CONFIG settings file every command reads."""

from __future__ import annotations

from guard.cli import main


def test_db_upgrade_migrates_a_fresh_store(tmp_path):
    from click.testing import CliRunner

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = CliRunner().invoke(main, ["db", "upgrade", "--url", url])
    assert result.exit_code == 0, result.output
    assert "Store at revision" in result.stdout


def test_a_settings_file_counts_for_every_command(tmp_path, monkeypatch):
    from click.testing import CliRunner

    policy = tmp_path / "ours.yaml"
    policy.write_text("rules:\n  - {id: stop, kind: nonsense}\n")
    (tmp_path / "guard.toml").write_text(
        f'DATABASE_URL = "sqlite:///{tmp_path / "configured.db"}"\nPOLICY = "ours.yaml"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GUARD_CONFIG", "guard.toml")  # relative to where the command runs
    monkeypatch.delenv("GUARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("GUARD_POLICY", raising=False)

    upgraded = CliRunner().invoke(main, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert (tmp_path / "configured.db").exists() and not (tmp_path / "guard.db").exists()
    checked = CliRunner().invoke(main, ["policy", "check"])
    assert checked.exit_code == 1
    assert "ours.yaml:2" in checked.output and "nonsense" in checked.output
