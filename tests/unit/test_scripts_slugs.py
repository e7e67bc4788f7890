"""Slugs (domain.slugs): file names made from script names, never paths."""

from __future__ import annotations

import pytest

from library_service.domain.slugs import MAX_SLUG_LENGTH, first_free, fits, is_slug, slugify


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Stop Docker", "stop-docker"),
        ("  pg_dump: nightly!! ", "pg-dump-nightly"),
        ("Café Ünïcode", "cafe-unicode"),
        ("../../etc/passwd", "etc-passwd"),
        ("..", "script"),
        ("/", "script"),
        ("中文", "script"),
        ("a/b\\c", "a-b-c"),
        ("---x---", "x"),
        ("CON", "con"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug
    assert is_slug(slug)


def test_long_names_are_cut_without_a_trailing_dash() -> None:
    slug = slugify("a" * (MAX_SLUG_LENGTH - 1) + " b" + "c" * 50)
    assert len(slug) <= MAX_SLUG_LENGTH
    assert not slug.endswith("-")
    assert is_slug(slug)


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "x.sh", "-x", "x-", "A", "a b"])
def test_is_slug_refuses_anything_else(bad: str) -> None:
    assert not is_slug(bad)


def test_collisions_get_the_first_free_suffix() -> None:
    assert first_free("x", set()) == "x"
    assert first_free("x", {"x"}) == "x-2"
    assert first_free("x", {"x", "x-2", "x-3"}) == "x-4"
    assert first_free("x", {"x-2"}) == "x"


def test_a_script_keeps_a_slug_that_still_fits_its_name() -> None:
    assert fits("stop-docker", "stop-docker")
    assert fits("stop-docker-3", "stop-docker")
    assert not fits("stop-docker-x", "stop-docker")
    assert not fits("stop", "stop-docker")
