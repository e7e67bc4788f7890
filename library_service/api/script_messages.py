"""Script messages of ListScripts rows, kept by the rows' own values.

Building a Script message field by field is most of the CPU a page of ListScripts costs
(~16 µs a row; a page is 100). The same rows come back page after page, and a kept
message is copied into a response in under a microsecond. The key is every value the
message is built from (the row, derived counts included), so a row that changed in any
way, by any writer, is a different key: nothing needs invalidating, and stale entries
just age out. Bounded by count, least recently used out.
"""

from __future__ import annotations

import functools
import operator
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from library_service.domain.scripts import ScriptView
from shared.stubs import library_pb2

MAX_KEPT = 20_000  # ~10 MB of small messages: the busiest pages of a large library


@functools.cache
def _plain_values(fields: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """Picks a row's hashable values: all but the parameter list (keyed separately)."""
    return operator.itemgetter(*(i for i, name in enumerate(fields) if name != "parameters"))


def _key_of(view: ScriptView) -> Hashable:
    row: Any = view.script
    parameters = row.parameters
    return (
        _plain_values(row._fields)(row),
        repr(parameters) if parameters else None,
        view.version_count,
        view.usage_count,
        view.last_used_at,
        view.file_path,
    )


class ScriptMessages:
    def __init__(self, build: Callable[[ScriptView], library_pb2.Script]) -> None:
        self._build = build
        self._kept: OrderedDict[Hashable, library_pb2.Script] = OrderedDict()

    def of(self, view: ScriptView) -> library_pb2.Script:
        """The message for a listed row (no content). Shared: copy it, never modify it."""
        key: Any = _key_of(view)
        message = self._kept.get(key)
        if message is not None:
            self._kept.move_to_end(key)
            return message
        message = self._build(view)
        self._kept[key] = message
        if len(self._kept) > MAX_KEPT:
            self._kept.popitem(last=False)
        return message
