"""The README's configuration table names every setting the services read, and only those."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_configuration_table_lists_every_setting() -> None:
    text = README.read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    documented = set(re.findall(r"^\| `(HOOKSHELF_[A-Z_]+)` \|", section, re.MULTILINE))
    actual = {f"HOOKSHELF_{name.upper()}" for name in Settings.model_fields}
    assert documented == actual, (
        f"missing from README: {sorted(actual - documented)}; "
        f"not settings: {sorted(documented - actual)}"
    )
