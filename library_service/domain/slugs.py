"""Slugs: the file names of mirrored scripts, made by the server from the script's name.

A slug is lowercase ``[a-z0-9-]``, never empty, never starts or ends with ``-``, and is at
most MAX_SLUG_LENGTH characters, so ``<slug>.sh`` is always a plain file name inside the
mirror directory: no client string ever becomes a path (``../x`` becomes ``x``). Names
that slug alike ("Stop Docker", "stop-docker") get numbered suffixes ("stop-docker-2").
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from library_service.domain.search import ESCAPE, escape_like
from library_service.store import models

# Leaves room for "-<n>" and ".sh" within the 255 bytes a file name may have.
MAX_SLUG_LENGTH = 200
FALLBACK = "script"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


def slugify(name: str) -> str:
    """The base slug of a name: accents folded to ASCII, every other run of characters
    outside ``[a-z0-9]`` becomes one ``-``. A name with nothing left gives ``script``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_name.lower()).strip("-")
    slug = slug[:MAX_SLUG_LENGTH].rstrip("-")
    return slug or FALLBACK


def is_slug(value: str) -> bool:
    """True for strings slugify and unique_slug can produce (a safe file name stem)."""
    return len(value) <= MAX_SLUG_LENGTH + 12 and bool(_SLUG.match(value))


def fits(slug: str, base: str) -> bool:
    """True when ``slug`` is ``base`` or ``base`` with a numbered suffix: a script whose
    new name slugs to ``base`` can keep it (a rename that changes only case or spacing
    does not move the file)."""
    if slug == base:
        return True
    prefix = f"{base}-"
    return slug.startswith(prefix) and slug[len(prefix) :].isdigit()


def first_free(base: str, taken: set[str]) -> str:
    """``base``, else ``base-2``, ``base-3``... whichever is not taken."""
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


async def unique_slug(session: AsyncSession, name: str) -> str:
    """A slug for ``name`` that no script has yet. The unique constraint on
    ``scripts.slug`` settles a race between two creates; the loser retries."""
    base = slugify(name)
    S = models.Script
    rows = await session.scalars(
        select(S.slug).where(
            or_(S.slug == base, S.slug.like(f"{escape_like(base)}-%", escape=ESCAPE))
        )
    )
    return first_free(base, set(rows))
