"""The report stage: what the earlier stages produced, as LaTeX from Jinja templates, and PDF.

context.py turns derivations, proof reports, checked claims and training runs
into template contexts (plain data), format.py prints math and numbers,
labels.py reads the labels of each language (reports/labels/), general.py
writes the proofs for every size step by step, drawing.py lays out the TikZ pictures, render.py renders the templates in a sandbox and
tex.py compiles the PDF.

    from derive.report import network_report_context, render, write_report
    context = network_report_context(net, explain="w")
    write_report(render("network", context), Path("net.pdf"))
"""

from derive.report.context import claims_context, class_context, network_context, training_context
from derive.report.labels import LANGS
from derive.report.render import KINDS, network_report_context, render, write_report

__all__ = [
    "KINDS",
    "LANGS",
    "claims_context",
    "class_context",
    "network_context",
    "network_report_context",
    "render",
    "training_context",
    "write_report",
]
