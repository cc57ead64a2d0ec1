"""Named SQL in .sql files, in procrastinate's style: Python calls each query by its name.

After a header of comments, a file is blocks of `-- name: <query_name>`, then
`-- <one-line description>`, then the SQL.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

NAME = re.compile(r"^-- name: (\w+)\n(?:-- (.+)\n)?", re.M)


class Queries(dict[str, str]):
    """The queries of one file by name; a missing name says which file has which names."""

    origin = ""

    def __missing__(self, name: str) -> str:
        raise KeyError(f"no query named {name!r} in {self.origin} (it has: {', '.join(self)})")


@functools.cache
def load(package: str, filename: str) -> dict[str, str]:
    """Every query of `filename` in `package`, by name (the file is read once)."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    blocks, queries = list(NAME.finditer(text)), Queries()
    queries.origin = f"{package}/{filename}"
    header = text[: blocks[0].start()] if blocks else text
    if not blocks or any(line and line[:2] != "--" for line in header.splitlines()):
        raise ValueError(f"{queries.origin}: SQL outside a '-- name: <query>' block")
    for block, after in zip(blocks, [*blocks[1:], None], strict=True):
        name, description = block.groups()
        sql = text[block.end() : after.start() if after else None].strip()
        if not description or not sql or name in queries:
            raise ValueError(f"{queries.origin}: {name!r} repeated, or lacks description or SQL")
        queries[name] = sql
    return queries
