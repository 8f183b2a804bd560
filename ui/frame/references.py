"""Where the pages' claims come from: the papers (with links a reader can click) and the sections
of docs/theory.md, the project's own derivations (shown in the app on the Derivations page)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DERIVATIONS = Path(__file__).resolve().parents[2] / "docs" / "theory.md"
DERIVATIONS_PAGE = "theory"  # url_path of the page that renders docs/theory.md


@dataclass(frozen=True)
class Paper:
    short: str   # "Davari et al., ICLR 2023"
    title: str
    url: str


PAPERS = {
    "kornblith2019": Paper("Kornblith et al., ICML 2019", "Similarity of Neural Network Representations Revisited",
                           "https://arxiv.org/abs/1905.00414"),
    "davari2023": Paper("Davari et al., ICLR 2023", "Reliability of CKA as a Similarity Measure in Deep Learning",
                        "https://arxiv.org/abs/2210.16156"),
    "geadah2024": Paper("Geadah et al., PLOS Comput. Biol. 2024",
                        "Neural networks with optimized single-neuron adaptation uncover biologically plausible "
                        "regularization", "https://doi.org/10.1101/2022.04.29.489963"),
    "nguyen2021": Paper("Nguyen, Raghu & Kornblith, ICLR 2021", "Do Wide and Deep Networks Learn the Same Things?",
                        "https://arxiv.org/abs/2010.15327"),
    "nguyen2022": Paper("Nguyen, Raghu & Kornblith, TMLR 2022",
                        "On the Origins of the Block Structure Phenomenon in Neural Network Representations",
                        "https://arxiv.org/abs/2202.07184"),
    "song2012": Paper("Song et al., JMLR 2012", "Feature Selection via Dependence Maximization",
                      "https://jmlr.org/papers/v13/song12a.html"),
    "murphy2024": Paper("Murphy, Zylberberg & Fyshe, 2024",
                        "Correcting Biased Centered Kernel Alignment Measures in Biological and Artificial Neural "
                        "Networks", "https://arxiv.org/abs/2405.01012"),
    "alvarez2021": Paper("Alvarez, 2021", "Gaussian RBF Centered Kernel Alignment (CKA) in the Large-Bandwidth Limit",
                         "https://arxiv.org/abs/2112.09305"),
    "ding2021": Paper("Ding, Denain & Steinhardt, NeurIPS 2021",
                      "Grounding Representation Similarity with Statistical Testing", "https://arxiv.org/abs/2108.01661"),
    "morcos2018": Paper("Morcos, Raghu & Bengio, NeurIPS 2018",
                        "Insights on Representational Similarity in Neural Networks with Canonical Correlation",
                        "https://arxiv.org/abs/1806.05759"),
    "raghu2017": Paper("Raghu et al., NeurIPS 2017", "SVCCA: Singular Vector Canonical Correlation Analysis for Deep "
                       "Learning Dynamics and Interpretability", "https://arxiv.org/abs/1706.05806"),
    "williams2021": Paper("Williams et al., NeurIPS 2021", "Generalized Shape Metrics on Neural Representations",
                          "https://arxiv.org/abs/2110.14739"),
    "kriegeskorte2008": Paper("Kriegeskorte, Mur & Bandettini, 2008",
                              "Representational Similarity Analysis – Connecting the Branches of Systems Neuroscience",
                              "https://doi.org/10.3389/neuro.06.004.2008"),
    "cui2022": Paper("Cui et al., NeurIPS 2022", "Deconfounded Representation Similarity for Comparison of Neural "
                     "Networks", "https://arxiv.org/abs/2202.00095"),
    "dinh2017": Paper("Dinh et al., ICML 2017", "Sharp Minima Can Generalize for Deep Nets",
                      "https://arxiv.org/abs/1703.04933"),
    "klabunde2025": Paper("Klabunde et al., ICLR 2025",
                          "ReSi: A Comprehensive Benchmark for Representational Similarity Measures",
                          "https://arxiv.org/abs/2408.00531"),
}


def cite(key: str, where: str = "") -> str:
    """A paper as a markdown link, with the part of it meant: "[Davari et al., ICLR 2023](…), Theorem 1"."""
    paper = PAPERS[key]
    return f"[{paper.short}]({paper.url} \"{paper.title}\")" + (f", {where}" if where else "")


def section_anchor(section: str) -> str:
    """The anchor of section "3.1" of docs/theory.md on the Derivations page ("s3-1")."""
    return "s" + section.replace(".", "-")


def derivation(section: str) -> str:
    """A section of docs/theory.md as a markdown link to the Derivations page."""
    return f"[docs/theory.md §{section}](./{DERIVATIONS_PAGE}#{section_anchor(section)})"


HEADING = re.compile(r"^(#{2,3}) §(\d+(?:\.\d+)*) (.+)$")


def sections() -> list[tuple[int, str, str, str]]:
    """docs/theory.md cut at its numbered headings: (level, number, title, body markdown)."""
    found, body, current = [], [], None
    for line in DERIVATIONS.read_text(encoding="utf-8").splitlines():
        match = HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        if current is not None:
            found.append((*current, "\n".join(body).strip()))
        current, body = (len(match.group(1)), match.group(2), match.group(3)), []
    if current is not None:
        found.append((*current, "\n".join(body).strip()))
    return found


def introduction() -> str:
    """docs/theory.md before its first numbered section, without the title line."""
    lines = []
    for line in DERIVATIONS.read_text(encoding="utf-8").splitlines():
        if HEADING.match(line):
            break
        if not line.startswith("# "):
            lines.append(line)
    return "\n".join(lines).strip()
