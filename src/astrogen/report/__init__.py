"""Report: figures (matplotlib) and the self-contained HTML report comparing real and generated sets."""

from astrogen.report.evaluate import Evaluation, evaluate
from astrogen.report.html import Section, write_report
from astrogen.report.model_report import ModelEvaluation, evaluate_model

__all__ = ["Evaluation", "ModelEvaluation", "Section", "evaluate", "evaluate_model", "write_report"]
