"""Pure catalog helpers: query parsing, filtering, sorting, sizes and times."""

from __future__ import annotations

from openzoo.web import catalog as cat


def row(name: str, *, size: int = 100, family: str = "llama", license_kind: str = "open-source",
        openness: str = "none", seal: cat.SealStatus = "none", modified_at: float = 0.0,
        license_name: str = "Apache License 2.0") -> cat.CatalogRow:
    return cat.CatalogRow(name=name, size=size, family=family, parameter_size="1B", quantization="Q4_K_M",
                          license_id="Apache-2.0", license_name=license_name, license_kind=license_kind,
                          openness=openness, seal=seal, modified_at=modified_at)


ROWS = [
    row("gemma3:270m", size=253 << 20, family="gemma3", license_kind="restricted", seal="certified",
        license_name="Gemma Terms of Use", modified_at=3),
    row("tiny:latest", size=3000, seal="pending", openness="III", modified_at=2),
    row("big:70b", size=40 << 30, license_kind="unknown", openness="II", modified_at=1),
    row("Alpha:1b", size=2 << 30, seal="revoked", openness="I"),
]


def names(rows: list[cat.CatalogRow]) -> list[str]:
    return [r.name for r in rows]


def test_parse_filters_keeps_known_values_and_drops_the_rest() -> None:
    f = cat.parse_filters({"q": "  gem ", "openness": "III", "license": "restricted", "size": "small",
                           "certified": "1", "sort": "size", "order": "desc"})
    assert f == cat.Filters(q="gem", openness="III", license="restricted", size="small", certified=True,
                            sort="size", descending=True)
    junk = cat.parse_filters({"openness": "IV", "license": "<script>", "size": "huge", "sort": "evil",
                              "certified": "no"})
    assert junk == cat.Filters()
    assert not junk.active


def test_search_matches_every_word_in_name_family_or_license() -> None:
    assert names(cat.select(ROWS, cat.Filters(q="gemma"))) == ["gemma3:270m"]
    assert names(cat.select(ROWS, cat.Filters(q="terms GEMMA"))) == ["gemma3:270m"]
    assert names(cat.select(ROWS, cat.Filters(q="apache tiny"))) == ["tiny:latest"]
    assert cat.select(ROWS, cat.Filters(q="mistral")) == []


def test_filters_by_openness_license_size_and_certification() -> None:
    assert names(cat.select(ROWS, cat.Filters(openness="II"))) == ["big:70b"]
    assert names(cat.select(ROWS, cat.Filters(license="restricted"))) == ["gemma3:270m"]
    assert names(cat.select(ROWS, cat.Filters(size="small"))) == ["gemma3:270m", "tiny:latest"]
    assert names(cat.select(ROWS, cat.Filters(size="medium"))) == ["Alpha:1b"]
    assert names(cat.select(ROWS, cat.Filters(size="large"))) == ["big:70b"]
    assert names(cat.select(ROWS, cat.Filters(certified=True))) == ["gemma3:270m"]


def test_sorting() -> None:
    assert names(cat.select(ROWS, cat.Filters())) == ["Alpha:1b", "big:70b", "gemma3:270m", "tiny:latest"]
    assert names(cat.select(ROWS, cat.Filters(sort="size"))) == ["tiny:latest", "gemma3:270m", "Alpha:1b",
                                                                   "big:70b"]
    assert names(cat.select(ROWS, cat.Filters(sort="size", descending=True)))[0] == "big:70b"
    # Most open first: class I (open science), II, III, then unclassified.
    assert names(cat.select(ROWS, cat.Filters(sort="openness"))) == ["Alpha:1b", "big:70b", "tiny:latest",
                                                                       "gemma3:270m"]
    assert names(cat.select(ROWS, cat.Filters(sort="seal")))[:3] == ["gemma3:270m", "tiny:latest", "Alpha:1b"]
    assert names(cat.select(ROWS, cat.Filters(sort="modified")))[0] == "gemma3:270m"
    assert names(cat.select(ROWS, cat.Filters(sort="license")))[-1] == "big:70b"


def test_sort_links_flip_the_order_of_the_current_key_and_keep_filters() -> None:
    f = cat.Filters(q="x", certified=True)
    assert cat.sort_link(f, "name") == {"q": "x", "certified": "1", "order": "desc"}
    assert cat.sort_link(f, "size") == {"q": "x", "certified": "1", "sort": "size"}
    desc = cat.Filters(sort="size", descending=True)
    assert cat.sort_link(desc, "size") == {"sort": "size"}
    assert cat.to_params(cat.Filters()) == {}


def test_human_size() -> None:
    assert cat.human_size(0) == "0 B"
    assert cat.human_size(1023) == "1023 B"
    assert cat.human_size(3000) == "2.9 KiB"
    assert cat.human_size(253 << 20) == "253 MiB"
    assert cat.human_size(int(1.5 * (1 << 30))) == "1.5 GiB"
    assert cat.human_size(5 << 40) == "5.0 TiB"


def test_format_timestamp_accepts_seconds_and_milliseconds() -> None:
    assert cat.format_timestamp(0) == "1970-01-01 00:00:00"
    assert cat.format_timestamp(1_764_063_554) == "2025-11-25 09:39:14"
    assert cat.format_timestamp(1_764_063_554_123) == "2025-11-25 09:39:14"
    assert cat.format_timestamp(None) == "—"


def test_sentence_upper_cases_only_the_first_letter() -> None:
    assert cat.sentence("restricted license (Gemma Terms of Use)") == "Restricted license (Gemma Terms of Use)"
    assert cat.sentence("") == ""
