"""The HTML report: one self-contained file an auditor can read on screen and on paper.

No scripts, no fonts, no images from anywhere: inline CSS and inline SVG only, and a
Content-Security-Policy that forbids every fetch, so the file shows the same offline, in an
archive, ten years from now. Sections (:mod:`dalp_dr.export.report_sections`): a cover
with the period's dates, the signer (or that the file is not signed) and the chain head;
the methodology; the coverage matrix (quarter x drill, every outcome worst first); per
drill its targets, trends (:mod:`dalp_dr.export.report_charts`) and every run's verdicts,
margins, operator, failure reason, recovery timeline and approvals as text. Print CSS
lays it out on A4 (``dalp-dr export -o report.pdf``: :mod:`dalp_dr.adapters.chromium`).
"""

from __future__ import annotations

from dalp_dr.export import report_sections as sections
from dalp_dr.export.records import Selection

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;color:#1d2733;
max-width:1100px;padding:0 1rem;overflow-wrap:anywhere}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #d5dbe3;
padding-bottom:.3rem}h4{margin:.2rem 0}
.muted{color:#5b6775}.note{font-size:.85rem;color:#5b6775}
code{font-size:.85em}code.digest{word-break:break-all}
.unsigned{border:2px solid #d62828;padding:.5rem .8rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem;max-width:100%}
th,td{border:1px solid #d5dbe3;padding:.3rem .45rem;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{background:#f2f5f8}
table.runs{width:100%;table-layout:fixed}
col.c-date{width:13%}col.c-outcome{width:11%}col.c-verdict{width:14%}col.c-figure{width:10%}
col.c-who{width:12%}col.c-id{width:16%}
td.run-id code{word-break:break-all}
#coverage-matrix{table-layout:fixed;width:100%}
td.met{background:#d8f3dc}td.missed-objectives{background:#ffd6d6}td.failed{background:#ffc9a9}
td.inconclusive,td.aborted,td.preflight-failed,td.refused{background:#fde2c4}
td.missed-schedule{background:#ffe9a8}td.not-run{background:#eceff3;color:#5b6775}
.chart{margin:.5rem 0 1.2rem}svg.chart-svg{width:100%;max-width:730px;height:auto}
svg.phases{width:100%;max-width:600px;height:auto}
.legend span{margin-right:1rem}
dt{font-weight:600;margin-top:.4rem}dd{margin-left:1.2rem}
.run{border-top:1px solid #e3e8ee;padding:.4rem 0;break-inside:avoid}
ul.timeline{margin:.2rem 0;font-size:.85rem}
@page{size:A4;margin:14mm 12mm}
@media print{
body{margin:0;max-width:none;padding:0;font-size:10pt}
#cover{break-after:page}section.drill{break-before:page}
table,figure{break-inside:avoid}tr{break-inside:avoid}
a{color:inherit}
}
"""


def to_html(selection: Selection, drills: list[str] | None = None, *,
            signer: str | None = None, in_bundle: bool = False) -> str:
    """The report. ``signer``: the fingerprint of the key signing the bundle this report
    goes into (None: a standalone export, which says it is not signed). ``in_bundle``:
    evidence is linked relative to the bundle's root."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>dalp-dr drill evidence</title>"
        f"<style>{CSS}</style></head><body>"
        + sections.cover(selection, signer)
        + sections.methodology()
        + f"<h2>Coverage by quarter</h2>{sections.matrix(selection, drills)}"
        + sections.drills(selection, in_bundle)
        + "</body></html>")
