"""The README's settings table names every setting, so the documentation stays true."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = (
            [alias]
            if isinstance(alias, str)
            else list(alias.choices)
            if alias is not None  # type: ignore[union-attr]
            else [f"CAUSA_{name.upper()}"]
        )
        assert any(f"`{n}`" in readme for n in names), f"{names} missing from README.md"
