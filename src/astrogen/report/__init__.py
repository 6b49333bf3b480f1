"""Report: figures (matplotlib) and the self-contained HTML report comparing real and generated sets."""

from astrogen.report.evaluate import Evaluation, evaluate
from astrogen.report.html import Section, write_report

__all__ = ["Evaluation", "Section", "evaluate", "write_report"]
