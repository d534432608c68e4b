"""The pure matrix expansion against GitHub Actions' documented rules and examples."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

from batchgen.manifest.matrix import MatrixTooBig, expand, raw_size


def test_github_include_example() -> None:
    """docs.github.com, "Expanding or adding matrix configurations": 6 combinations."""
    got = expand(
        {"fruit": ["apple", "pear"], "animal": ["cat", "dog"]},
        include=[
            {"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ],
    )
    assert got.combinations == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]
    assert got.variables == ("fruit", "animal", "color", "shape")


def test_github_exclude_example() -> None:
    """docs.github.com, "Excluding matrix configurations": partial matches, 9 of 12 left."""
    got = expand(
        {"os": ["macos-latest", "windows-latest"], "version": [12, 14, 16],
         "environment": ["staging", "production"]},
        exclude=[
            {"os": "macos-latest", "version": 12, "environment": "production"},
            {"os": "windows-latest", "version": 16},
        ],
    )  # fmt: skip
    assert len(got.combinations) == 12 - 1 - 2
    assert {"os": "windows-latest", "version": 16, "environment": "staging"} not in (
        got.combinations
    )


def test_github_include_expands_example() -> None:
    """docs.github.com, "Example: Expanding configurations": node 16 gets npm 6 added."""
    got = expand(
        {"os": ["windows-latest", "ubuntu-latest"], "node": [14, 16]},
        include=[{"os": "windows-latest", "node": 16, "npm": 6}],
    )
    assert got.combinations[1] == {"os": "windows-latest", "node": 16, "npm": 6}
    assert sum("npm" in c for c in got.combinations) == 1


def test_github_include_only_example() -> None:
    """docs.github.com, "Example: Adding configurations": a matrix of includes alone."""
    got = expand({}, include=[{"site": "production", "datacenter": "site-a"},
                              {"site": "staging", "datacenter": "site-b"}])  # fmt: skip
    assert got.combinations == [
        {"site": "production", "datacenter": "site-a"},
        {"site": "staging", "datacenter": "site-b"},
    ]


def test_issue_example_product_order_exclude_include() -> None:
    got = expand(
        {"season": ["spring", "summer", "winter"], "aspect_ratio": ["16:9", "9:16"]},
        exclude=[{"season": "winter", "aspect_ratio": "9:16"}],
        include=[{"season": "autumn", "aspect_ratio": "1:1"}],
    )
    assert [tuple(c.values()) for c in got.combinations] == [
        ("spring", "16:9"), ("spring", "9:16"), ("summer", "16:9"), ("summer", "9:16"),
        ("winter", "16:9"), ("autumn", "1:1"),
    ]  # fmt: skip


def test_numbers_compare_as_json() -> None:
    got = expand({"duration": [5, 10]}, exclude=[{"duration": 5.0}])
    assert got.combinations == [{"duration": 10}]


def test_cap_stops_counting_early() -> None:
    lists = {f"v{i}": list(range(10)) for i in range(12)}  # 10**12: never built
    with pytest.raises(MatrixTooBig) as caught:
        expand(lists, cap=1000)
    assert caught.value.at_least == 1001
    assert raw_size(lists) == 10**12


_values = s.lists(s.sampled_from(["a", "b", "c", 1, 2]), min_size=1, max_size=3, unique=True)
_lists = s.dictionaries(s.sampled_from(["x", "y", "z"]), _values, min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(_lists, s.data())
def test_count_is_product_minus_excluded_plus_standalone(lists, data) -> None:
    names = list(lists)
    entry = s.dictionaries(s.sampled_from([*names, "w"]), s.sampled_from(["a", "b", 1, "q"]),
                           min_size=1, max_size=2)  # fmt: skip
    exclude = data.draw(s.lists(entry, max_size=3))
    include = data.draw(s.lists(entry, max_size=3))
    got = expand(lists, exclude, include).combinations
    after_exclude = expand(lists, exclude).combinations
    excluded = raw_size(lists) - len(after_exclude)
    standalone = sum(
        1 for e in include
        if not any(all(c[k] == v for k, v in e.items() if k in lists) for c in after_exclude)
    )  # fmt: skip
    assert len(got) == raw_size(lists) - excluded + standalone
    # the expansion is a function of the matrix alone: same input, same combinations
    assert got == expand(lists, exclude, include).combinations
    # every original combination that survived keeps its original values
    for before, after in zip(after_exclude, got, strict=False):
        assert {k: after[k] for k in lists} == before
