"""Derivations: docs/theory.md in the app, one anchor per numbered section, so that every Theory box
can link to the derivation it relies on."""
import streamlit as st

from ui.frame import references
from ui.frame.shell import inside_app_frame
from ui.frame.widgets import page_header, takeaway

inside_app_frame()


def main() -> None:
    lesson = page_header(
        "Derivations",
        "The formulas behind every page, derived step by step, and the papers they come from. The same text is "
        "`docs/theory.md` in the repository; the Theory box of each page links to the section it relies on.",
    )
    chapters = [(number, title) for level, number, title, _ in references.sections() if level == 2]
    takeaway(lesson, f"Every number the pages show comes from one of these {len(chapters)} chapters, each derived "
                     "from the definitions step by step, with the papers it comes from.")
    contents(chapters)
    st.markdown(references.introduction())
    for level, number, title, body in references.sections():
        heading = st.header if level == 2 else st.subheader
        heading(f"§{number} {title}", anchor=references.section_anchor(number))
        st.markdown(body)


def contents(chapters: list[tuple[str, str]]) -> None:
    with st.container(key="proof"), st.expander("Contents", expanded=True):
        st.markdown("\n".join(f"- [§{number} {title}](#{references.section_anchor(number)})" for number, title in chapters))


main()
