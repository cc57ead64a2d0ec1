"""The README's settings table names every setting, so the documentation stays true."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from pydantic import AliasPath

from shared.settings import Settings, env_names

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        assert not isinstance(alias, AliasPath), f"{name}: an AliasPath names no variable"
        names = env_names(name)
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


def test_every_reference_is_inside_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    outside = re.findall(r"[^\s`(\[]*\.\./[^\s`)\]]*", readme)
    assert not outside, f"README.md sends readers outside the repository: {outside}"
    assert "reference README" not in readme, "README.md cites a README newcomers do not have"


def flower_example() -> str:
    blocks: list[str] = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if "/api/task/async-apply/" in b]
    return block


def test_the_flower_curl_example_says_what_to_do_without_a_set_password() -> None:
    # the example's lines before its first request (they set the credentials), run by bash
    setup = flower_example().split("curl ", 1)[0]
    assert "AUTH=" in setup, setup
    script = f'{setup}\nprintf %s "$AUTH"'
    bash = shutil.which("bash")
    assert bash is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAUSA_FLOWER_")}

    # with CAUSA_FLOWER_PASSWORD set, the credentials are causa's user and that password
    done = subprocess.run(
        [bash, "-c", script],
        env={**env, "CAUSA_FLOWER_PASSWORD": "pw"},
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout) == (0, "causa:pw")

    # without it (Flower generated one), the reader is told to use the printed password,
    # not handed an empty one
    done = subprocess.run([bash, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode != 0, f"an empty password was used: {done.stdout!r}"
    assert "printed" in done.stderr, done.stderr


def test_the_readme_table_shape_is_one_causa_accepts(database_url: str, settings: Settings) -> None:
    import uuid

    import psycopg

    from shared import schema

    # given the CREATE TABLE example of the README's connection section, before `causa migrate`
    section = (ROOT / "README.md").read_text().split("## Connecting to your database", 1)[1]
    before_migrate = section.split("causa migrate", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", before_migrate, re.S)
    (example,) = [b for b in blocks if "CREATE TABLE tickets" in b]
    for name in ("CAUSA_TABLE", "CAUSA_NUMBER_COLUMN", "CAUSA_TEXT_COLUMNS", "CAUSA_CAUSE_COLUMN"):
        assert f"`{name}`" in before_migrate, f"the section says how {name} maps other names"
    # when it runs in a throwaway schema of the test database
    where = f"readme_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {where}")
        try:
            conn.execute(f"SET search_path TO {where}")
            conn.execute(example)
            # then causa's check accepts that table with the default names
            schema.check_table(conn, settings)
            found = conn.execute(
                "SELECT relnamespace::regnamespace::text FROM pg_class"
                " WHERE oid = to_regclass('tickets')"
            ).fetchone()
            assert found == (where,), "the check looked at the example's table"
        finally:
            conn.execute(f"DROP SCHEMA {where} CASCADE")


def test_every_limit_of_a_setting_is_in_its_readme_row() -> None:
    """A bounded setting's row says its bounds (`≥ 1, ≤ 10000`), a literal's row its choices."""
    import typing

    from annotated_types import Ge, Gt, Le, Lt

    symbols = ((Ge, "≥", "ge"), (Gt, ">", "gt"), (Le, "≤", "le"), (Lt, "<", "lt"))
    rows = {
        line.split("`")[1]: line
        for line in (ROOT / "README.md").read_text().split("## Settings", 1)[1].splitlines()
        if line.startswith("| `")
    }
    checked = 0
    for name, field in Settings.model_fields.items():
        row = rows.get(env_names(name)[0], "")
        for constraint in field.metadata:
            for kind, symbol, attr in symbols:
                if isinstance(constraint, kind):
                    value = float(getattr(constraint, attr))
                    bound = f"{symbol} {int(value) if value.is_integer() else value}"
                    assert bound in row, f"README's row of {env_names(name)[0]} lacks {bound!r}"
                    checked += 1
        if typing.get_origin(field.annotation) is typing.Literal:
            for choice in typing.get_args(field.annotation):
                assert f"`{choice}`" in row, f"README's row of {name} lacks `{choice}`"
                checked += 1
    assert checked > 30, "the bounds were found"
