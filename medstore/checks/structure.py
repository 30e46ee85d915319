"""Markdown nested lists: parse them, measure depth and breadth, and check a hierarchical answer.

Pure functions, no I/O, so the recipe's validator, ``report`` and the benchmark share them.
Error lines start with a stable tag (``format``, ``markers``, ``depth``, ``breadth``, ``pyramid``,
``preservation``) followed by the measured violation, in words a repair prompt can quote.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

MIN_DEPTH = 3
MAX_SIBLINGS = 5
MIN_PRESERVATION = 0.6

ITEM = re.compile(r"^(?P<indent> *)(?P<marker>[-*+]|\d{1,3}[.)])(?:[ ]+(?P<text>.*))?$")
FENCE = re.compile(r"^\s*```[\w-]*\s*\n(?P<body>.*?)\n\s*```\s*$", re.DOTALL)
# Possessive (++, *+): no backtracking, half the time, the same words (a run of letters and
# digits can never give one back to the [.'] that must follow it).
WORD = re.compile(r"[a-z0-9]++(?:[.'][a-z0-9]++)*+")
EMPHASIS = re.compile(r"[*_`#]+")

# Words that mark the first top-level item as the conclusion (the pyramid principle's "answer
# first"). The rewrite prompt asks for "Assessment:"; the others are what teachers also use.
CONCLUSION_TERMS = (
    "answer",
    "assessment",
    "bottom line",
    "conclusion",
    "diagnosis",
    "impression",
    "in short",
    "key message",
    "key point",
    "likely cause",
    "main point",
    "most likely",
    "summary",
    "takeaway",
    "verdict",
)
CONCLUSION = re.compile(r"\b(?:" + "|".join(re.escape(t) for t in CONCLUSION_TERMS) + r")")

# Frequent words of five letters or more that carry no medical content, and the courtesy
# phrases of online consultations ("Hi, thanks for your query").
STOPWORD_TEXT = """
    about above according actually after again against almost along already also although
    always among another anything around because become before being below between cannot
    certain could doctor doing during either enough especially every everything expect first
    following further getting given going great happy having hello hence however important
    instead kindly later least little might model needs never often other others otherwise
    people perhaps please possible possibly probably queries query question questions rather
    really regards right second should since single something sometimes start still suggest
    suggested sure thank thanks their there therefore these thing things think those though
    three through times today under understand unless until usually various welcome wellness
    where whether which while whole within without would write wrote years yours
"""
STOPWORDS = frozenset(STOPWORD_TEXT.split())


@dataclass
class ListItem:
    text: str
    marker: str  # "-", "*", "+" or "1." style numbering
    line: int  # 1-based line in the answer
    children: list[ListItem] = field(default_factory=list)

    @property
    def marker_kind(self) -> str:
        return "numbered" if self.marker[0].isdigit() else self.marker


@dataclass
class ParsedList:
    items: list[ListItem]  # the top level
    problems: list[str]  # lines that are neither items nor continuations of one
    # Every item with its level (1 = top), in document order: what walk(items) yields, kept
    # from the parse so the checks that visit every item do not each walk the tree again.
    flat: list[tuple[int, ListItem]] = field(default_factory=list)


@dataclass
class StructureReport:
    """What the validator measured on one answer, and what it found wrong."""

    depth: int = 0
    top_level: int = 0
    max_siblings: int = 0
    breadth_by_level: dict[int, int] = field(default_factory=dict)  # level -> widest group
    items: int = 0
    markers: list[str] = field(default_factory=list)
    first_item: str | None = None
    preservation: float | None = None
    missing_terms: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def strip_fence(text: str) -> str:
    """The answer without a surrounding ```markdown fence and outer blank lines."""
    match = FENCE.match(text)
    return (match.group("body") if match else text).strip("\n").rstrip()


@lru_cache(maxsize=16)
def parse_list(text: str) -> ParsedList:
    """Parse a markdown list; nesting follows indentation (tabs count as four spaces).

    Cached, so the result is shared and read-only: the structure check and the list-line gate
    of one answer, run one after the other, parse it once."""
    root = ListItem("", "", 0)
    stack: list[tuple[int, ListItem]] = []  # (indent, item) of the open ancestors
    last: tuple[int, ListItem] | None = None
    problems: list[str] = []
    flat: list[tuple[int, ListItem]] = []
    for number, raw in enumerate(strip_fence(text).splitlines(), start=1):
        line = raw.expandtabs(4).rstrip()
        if not line.strip():
            continue
        match = ITEM.match(line)
        if match:
            indent = len(match.group("indent"))
            item = ListItem((match.group("text") or "").strip(), match.group("marker"), number)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            (stack[-1][1] if stack else root).children.append(item)
            stack.append((indent, item))
            flat.append((len(stack), item))
            last = (indent, item)
            if not item.text:
                problems.append(f"format: line {number} is an empty list item")
        elif last is not None and len(line) - len(line.lstrip()) > last[0]:
            last[1].text = f"{last[1].text} {line.strip()}".strip()
        else:
            problems.append(f"format: line {number} is not a list item: {shorten(line.strip())!r}")
    return ParsedList(root.children, problems, flat)


def walk(items: list[ListItem], level: int = 1) -> Iterator[tuple[int, ListItem]]:
    for item in items:
        yield level, item
        yield from walk(item.children, level + 1)


def measure(parsed: ParsedList, report: StructureReport) -> None:
    """Fill depth, breadth and marker figures of the report from a parsed list."""
    report.top_level = len(parsed.items)
    groups = [(1, None, parsed.items)] if parsed.items else []
    for level, item in parsed.flat:
        report.items += 1
        report.depth = max(report.depth, level)
        if item.children:
            groups.append((level + 1, item, item.children))
        if item.marker_kind not in report.markers:
            report.markers.append(item.marker_kind)
    for level, _parent, children in groups:
        report.breadth_by_level[level] = max(report.breadth_by_level.get(level, 0), len(children))
    report.max_siblings = max(report.breadth_by_level.values(), default=0)
    report.first_item = parsed.items[0].text if parsed.items else None


def check_structure(
    text: str | None,
    original: str | None = None,
    *,
    min_depth: int = MIN_DEPTH,
    max_siblings: int = MAX_SIBLINGS,
    min_preservation: float = MIN_PRESERVATION,
) -> StructureReport:
    """Measure a hierarchical answer and list every rule it breaks.

    Rules: a markdown list and nothing else; one marker style; at least ``min_depth`` levels; no
    group of siblings wider than ``max_siblings``; the first top-level item is the conclusion;
    and, when the ``original`` answer is given, at least ``min_preservation`` of its key terms
    survive.
    """
    report = StructureReport()
    if text is None or not strip_fence(text).strip():
        report.errors.append("format: the answer is empty")
        return report
    parsed = parse_list(text)
    if not parsed.items:
        report.errors.append(
            "format: the answer is not a markdown list; every line must be an item starting "
            "with '- ' (nested items indented by two more spaces)"
        )
        return report
    measure(parsed, report)
    report.errors += parsed.problems[:3]
    if len(parsed.problems) > 3:
        report.errors.append(f"format: {len(parsed.problems) - 3} more lines are not list items")
    if len(report.markers) > 1:
        report.errors.append(mixed_markers_error(parsed))
    if report.depth < min_depth:
        report.errors.append(
            f"depth: the list is {report.depth} level{'s' if report.depth != 1 else ''} deep; "
            f"it needs at least {min_depth} (point, then sub-point, then detail)"
        )
    report.errors += breadth_errors(parsed, max_siblings)
    if not CONCLUSION.search(heading_of(parsed.items[0].text)):
        report.errors.append(
            f"pyramid: the first top-level item {shorten(parsed.items[0].text)!r} does not "
            "state the conclusion; put the answer first, e.g. '- Assessment: <the answer>'"
        )
    if original is not None:
        report.preservation, report.missing_terms = preservation(original, text)
        if report.preservation < min_preservation:
            missing = ", ".join(repr(term) for term in report.missing_terms[:10])
            report.errors.append(
                f"preservation: {report.preservation:.0%} of the key terms of the doctor's "
                f"answer survive (need {min_preservation:.0%}); missing: {missing}; keep "
                "every medical fact, dose and instruction"
            )
    return report


def mixed_markers_error(parsed: ParsedList) -> str:
    first = parsed.items[0]
    other = next(item for _, item in parsed.flat if item.marker_kind != first.marker_kind)
    return (
        f"markers: the list mixes {first.marker!r} (line {first.line}) and {other.marker!r} "
        f"(line {other.line}); use '-' bullets for every item"
    )


def breadth_errors(parsed: ParsedList, max_siblings: int) -> list[str]:
    errors = []
    if len(parsed.items) > max_siblings:
        errors.append(
            f"breadth: the top level has {len(parsed.items)} items; at most {max_siblings} "
            "allowed, group them under fewer headings"
        )
    for level, item in parsed.flat:
        if len(item.children) > max_siblings:
            errors.append(
                f"breadth: level {level + 1} under {shorten(item.text)!r} (line {item.line}) "
                f"has {len(item.children)} items; at most {max_siblings} allowed, group them "
                "under fewer headings"
            )
    return errors


def heading_of(text: str) -> str:
    """An item's heading: the words before its first colon, or the whole item."""
    plain = EMPHASIS.sub("", text).strip().lower()
    head, colon, _ = plain.partition(":")
    return head if colon else plain


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light English stem so 'tablets' matches 'tablet' and 'infections' 'infection'.

    Cached: a run checks the same few thousand words again and again."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@lru_cache(maxsize=65536)
def key_term(word: str) -> str | None:
    """The stem of a content-bearing word (a number or dose, or a word of five letters or more
    that is not common English or courtesy), else None."""
    has_digit = not word.isalpha() and any(ch.isdigit() for ch in word)
    if has_digit or (len(word) >= 5 and word not in STOPWORDS):
        return stem(word)
    return None


def key_terms(text: str) -> list[str]:
    """The content-bearing terms of an answer, in order: numbers and doses, and words of five
    letters or more that are not common English or courtesy words."""
    terms: dict[str, None] = {}
    for word in WORD.findall(text.lower()):
        term = key_term(word)
        if term is not None:
            terms.setdefault(term, None)
    return list(terms)


def preservation(original: str, rewrite: str) -> tuple[float, list[str]]:
    """Share of the original's key terms found in the rewrite, and the missing ones."""
    wanted = key_terms(original)
    if not wanted:
        return 1.0, []
    present = {stem(word) for word in set(WORD.findall(rewrite.lower()))}
    missing = [term for term in wanted if term not in present]
    return round(1 - len(missing) / len(wanted), 4), missing


def shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
