"""The README's settings table names every setting, so the documentation stays true."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasPath

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        assert not isinstance(alias, AliasPath), f"{name}: an AliasPath names no variable"
        names = (
            [alias]
            if isinstance(alias, str)
            else list(alias.choices)
            if alias is not None
            else [f"CAUSA_{name.upper()}"]
        )
        assert any(f"`{n}`" in readme for n in names), f"{names} missing from README.md"


def test_the_layout_table_names_files_and_functions_that_exist() -> None:
    import importlib
    import re

    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    places = re.findall(
        r"`((?:shared|training|flows|worker|tasks)/[\w/.]*)(?::\s*([\w, `]+))?`", layout
    )
    assert len(places) > 20, "the Layout table was found"
    for path, names in places:
        assert (ROOT / path).exists(), f"README's Layout names {path}, which does not exist"
        if path.endswith(".py") and names:
            module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
            for name in re.findall(r"\w+", names):
                assert hasattr(module, name), f"README's Layout names {path}: {name}"
