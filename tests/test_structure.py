"""The structure validator on hand-written good and bad lists, and its parser round trip."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medstore.checks.structure import (
    check_structure,
    key_terms,
    parse_list,
    preservation,
    strip_fence,
    walk,
)

ORIGINAL = (
    "Hi, thanks for your query. Your symptoms suggest tension-type headache. Take ibuprofen "
    "400 mg with food when needed, no more than 3 days a week. Keep a headache diary and "
    "drink enough water. See a doctor urgently if you have weakness, confusion or fever."
)

GOOD = """\
- Assessment: tension-type headache is the most likely cause
  - Why
    - pressing pain on both sides, no warning signs
  - What it is not
    - no weakness, confusion or fever
- Treatment
  - Medicine
    - ibuprofen 400 mg with food when needed
    - no more than 3 days a week
  - Habits
    - keep a headache diary
    - drink enough water
- Warning signs
  - See a doctor urgently
    - weakness, confusion or fever
"""


def test_good_list_passes_and_is_measured() -> None:
    report = check_structure(GOOD, ORIGINAL)
    assert report.ok, report.errors
    assert report.depth == 3
    assert report.top_level == 3
    assert report.breadth_by_level == {1: 3, 2: 2, 3: 2}
    assert report.max_siblings == 3
    assert report.items == 15
    assert report.markers == ["-"]
    assert report.preservation is not None and report.preservation > 0.9
    assert report.missing_terms == ["symptom"]


def test_seed_style_example_passes_without_an_original() -> None:
    seed_style = """\
- Main Assessment
  - Diagnosis Category 1
    - Specific symptom observation
    - Relevant medical indicator
  - Diagnosis Category 2
    - Supporting evidence
- Treatment Recommendations
  - Primary intervention
    - Medication details
"""
    report = check_structure(seed_style)
    assert report.ok, report.errors
    assert report.preservation is None


def test_fenced_numbered_and_tab_indented_lists_pass() -> None:
    numbered = "```markdown\n1. Answer: a cold\n   1. Cause\n      1. a virus\n```"
    assert check_structure(numbered).ok
    assert strip_fence(numbered).startswith("1. Answer")
    tabs = "* Summary: rest\n\t* Sleep\n\t\t* eight hours\n"
    assert check_structure(tabs).ok


def test_continuation_lines_join_their_item() -> None:
    text = "- Assessment: a cold\n  - Care\n    - drink water and rest\n      for a few days\n"
    parsed = parse_list(text)
    assert not parsed.problems
    deepest = [item for level, item in walk(parsed.items) if level == 3]
    assert deepest[0].text == "drink water and rest for a few days"


def test_too_shallow() -> None:
    report = check_structure("- Assessment: a cold\n  - rest\n  - fluids\n")
    assert report.depth == 2
    assert report.errors == [
        "depth: the list is 2 levels deep; it needs at least 3 (point, then sub-point, then detail)"
    ]


def test_flat_list_is_one_level_deep() -> None:
    report = check_structure("- Assessment: a cold\n- rest\n- fluids\n")
    assert report.depth == 1
    assert report.errors[0].startswith("depth: the list is 1 level deep")


def test_too_wide_at_the_top() -> None:
    text = "- Assessment: a cold\n  - Care\n    - rest\n" + "".join(
        f"- point {n}\n" for n in range(5)
    )
    report = check_structure(text)
    assert report.top_level == 6
    assert report.errors == [
        "breadth: the top level has 6 items; at most 5 allowed, group them under fewer headings"
    ]


def test_deep_but_with_a_six_wide_level() -> None:
    details = "".join(f"    - detail {n}\n" for n in range(6))
    text = "- Assessment: a cold\n  - Care\n" + details + "- Follow-up\n  - When\n    - a week\n"
    report = check_structure(text)
    assert report.depth == 3
    assert report.breadth_by_level == {1: 2, 2: 1, 3: 6}
    assert report.errors == [
        "breadth: level 3 under 'Care' (line 2) has 6 items; at most 5 allowed, group them "
        "under fewer headings"
    ]


def test_empty_answer() -> None:
    for empty in ("", "   \n\n", None, "```\n\n```"):
        report = check_structure(empty)
        assert report.errors == ["format: the answer is empty"], empty


def test_prose_is_not_a_list() -> None:
    report = check_structure("You have a cold. Rest and drink fluids.")
    assert len(report.errors) == 1
    assert report.errors[0].startswith("format: the answer is not a markdown list")


def test_prose_around_a_list_is_reported_by_line() -> None:
    text = "Here is the list:\n- Assessment: a cold\n  - Care\n    - rest\nHope this helps."
    report = check_structure(text)
    assert report.errors == [
        "format: line 1 is not a list item: 'Here is the list:'",
        "format: line 5 is not a list item: 'Hope this helps.'",
    ]


def test_mixed_bullets_and_numbering() -> None:
    text = "- Assessment: a cold\n  1. Care\n     - rest\n  2. Follow-up\n     - a week\n"
    report = check_structure(text)
    assert report.markers == ["-", "numbered"]
    assert report.errors == [
        "markers: the list mixes '-' (line 1) and '1.' (line 2); use '-' bullets for every item"
    ]


def test_conclusion_must_come_first() -> None:
    text = "- Background\n  - History\n    - two days of cough\n- Assessment: a cold\n"
    report = check_structure(text)
    assert report.errors == [
        "pyramid: the first top-level item 'Background' does not state the conclusion; put the "
        "answer first, e.g. '- Assessment: <the answer>'"
    ]
    for heading in ("**Bottom line**: rest", "Likely diagnosis - a cold", "Summary", "Answer"):
        assert check_structure(f"- {heading}\n  - a\n    - b\n").ok, heading


def test_lost_medical_content_is_quoted() -> None:
    lossy = "- Assessment: headache\n  - Care\n    - rest\n"
    report = check_structure(lossy, ORIGINAL)
    assert report.preservation is not None and report.preservation < 0.6
    assert "ibuprofen" in report.missing_terms and "400" in report.missing_terms
    (error,) = report.errors
    assert error.startswith("preservation: ")
    assert "'ibuprofen'" in error and "(need 60%)" in error


def test_key_terms_skip_courtesy_and_stem_plurals() -> None:
    terms = key_terms("Hi, thanks for your query. Take 2 tablets of paracetamol 500 mg.")
    assert terms == ["2", "tablet", "paracetamol", "500"]
    assert preservation("Take the tablets", "take one tablet")[0] == 1.0
    assert preservation("", "anything") == (1.0, [])


def test_empty_item_is_a_format_problem() -> None:
    report = check_structure("- Assessment: a cold\n  -\n    - rest\n")
    assert "format: line 2 is an empty list item" in report.errors


# A random tree, rendered as a markdown list and parsed back, has the same shape.
trees = st.recursive(
    st.just([]),
    lambda children: st.lists(children, min_size=1, max_size=4),
    max_leaves=20,
)


def render(tree: list, level: int = 0) -> list[str]:
    lines = []
    for index, child in enumerate(tree):
        lines.append(f"{'  ' * level}- item {level}.{index}")
        lines += render(child, level + 1)
    return lines


def shape(items: list) -> list:
    return [shape(item.children) for item in items]


@settings(max_examples=60, deadline=None)
@given(st.lists(trees, min_size=1, max_size=4))
def test_parse_round_trips_random_trees(tree: list) -> None:
    parsed = parse_list("\n".join(render(tree)))
    assert not parsed.problems
    assert shape(parsed.items) == tree


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.sampled_from(["- a", "* b", "1. c", "text"]))))
def test_flat_items_are_the_tree_walked_in_order(lines: list) -> None:
    # Any indentation, even uneven or with stray lines: the parse's flat list is the walk.
    parsed = parse_list("\n".join(" " * indent + line for indent, line in lines))
    assert parsed.flat == list(walk(parsed.items))
