"""References a reader can follow: every file the code, the pages or the docs cite exists in the
repository, every cited section of docs/theory.md and docs/peers.md exists, every paper cited by
a page has a link, and nothing cites notes that are not in the repository."""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from ui.frame import references

ROOT = Path(__file__).resolve().parents[1]
TRACKED = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
SOURCES = sorted(ROOT / f for f in TRACKED if f.endswith((".py", ".md")) and not f.startswith("benchmarks/results/")
                 and (ROOT / f).exists())
PATH = re.compile(r"(?<![\w/.])((?:docs|cka_core|ui|sample_models|tests|benchmarks|pages)/[\w./-]*\w\.(?:py|md|json|json\.gz))"
                  r"(?!\.?\w)")  # the whole name: scorecard.json.gz, not its scorecard.json
SECTION = re.compile(r"docs/(theory|peers)\.md (§\d+(?:\.\d+)*(?:(?:, | and )§\d+(?:\.\d+)*)*)")
PAGES = sorted((ROOT / "pages").glob("*.py"))


def _headings(name: str) -> set[str]:
    text = (ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#{2,3} (§\d+(?:\.\d+)*) ", text, flags=re.MULTILINE))


def _cited_paths() -> list[tuple[str, str]]:
    return [(str(source.relative_to(ROOT)), match) for source in SOURCES
            for match in PATH.findall(source.read_text(encoding="utf-8"))]


def _cited_sections() -> list[tuple[str, str, str]]:
    cited = []
    for source in SOURCES:
        for document, sections in SECTION.findall(source.read_text(encoding="utf-8")):
            cited += [(str(source.relative_to(ROOT)), document, s) for s in re.findall(r"§\d+(?:\.\d+)*", sections)]
    return cited


def test_the_checks_see_citations():
    assert len(_cited_paths()) > 30 and len(_cited_sections()) > 15


@pytest.mark.parametrize(("source", "path"), _cited_paths())
def test_every_cited_file_exists(source, path):
    assert (ROOT / path).exists(), f"{source} cites {path}, which is not in the repository"


@pytest.mark.parametrize(("source", "document", "section"), _cited_sections())
def test_every_cited_section_exists(source, document, section):
    assert section in _headings(document), f"{source} cites docs/{document}.md {section}, which has no such heading"


def _calls(path: Path, name: str) -> list[list[str]]:
    """The constant string arguments of every call to ``name`` in ``path``."""
    return [[a.value for a in node.args if isinstance(a, ast.Constant)]
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_link_sections_and_papers_that_exist(page):
    for args in _calls(page, "derivation"):
        assert f"§{args[0]}" in _headings("theory"), f"{page.name}: derivation({args[0]!r}) has no section"
    for args in _calls(page, "cite"):
        assert args[0] in references.PAPERS, f"{page.name}: cite({args[0]!r}) is not a known paper"


def test_every_page_with_a_theory_box_cites_a_paper_or_a_derivation():
    for page in PAGES:
        if _calls(page, "theory"):
            assert _calls(page, "cite") or _calls(page, "derivation"), page.name


def test_every_paper_has_a_link_a_reader_can_open():
    for key, paper in references.PAPERS.items():
        assert re.match(r"https://(arxiv\.org/abs/\d{4}\.\d{4,5}|doi\.org/10\.\d+/\S+|jmlr\.org/\S+)$", paper.url), key
        assert paper.url in (ROOT / "docs" / "theory.md").read_text() or key == "geadah2024", \
            f"{key}: docs/theory.md §11 should list {paper.url}"


def test_a_link_to_a_section_opens_the_derivations_page_at_it():
    assert references.derivation("3.5") == "[docs/theory.md §3.5](./theory#s3-5)"
    numbers = [number for _, number, _, _ in references.sections()]
    assert numbers[:3] == ["1", "1.1", "1.2"] and "11" in numbers
    assert len(set(numbers)) == len(numbers)


def test_nothing_cites_the_team_notes():
    pattern = re.compile(r"notes/(papers|peers|streamlit)\.md|DESIGN\.md|\.\./shared")
    offenders = [str(s.relative_to(ROOT)) for s in SOURCES if s.name != Path(__file__).name
                 and pattern.search(s.read_text(encoding="utf-8"))]
    assert not offenders
