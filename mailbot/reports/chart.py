"""The digest's chart, made with matplotlib: the period's mails by kind and decision, and the
four-week trend by decision (a PNG shown inline in the HTML part; the text part has the same
figures as tables).  Japanese labels with the IPA Gothic font (fonts-ipafont-gothic), else the
kinds' and decisions' values."""

from __future__ import annotations

import io
from pathlib import Path

from mailbot.reports.summary import DigestData
from mailbot.rules.digest import DECISIONS

FONT = Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf")
SIZE = (7.6, 3.2)  # inches at 100 dpi: 760 × 320 pixels, the digest's width
COLOURS = {"accept": "#2e8b57", "remand": "#d66028", "hold": "#e6b41e", "defer": "#4678c8", "ignore": "#a0a0a0"}


def chart_png(data: DigestData, font_path: Path = FONT) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    from matplotlib import font_manager
    from matplotlib.figure import Figure

    japanese = font_path.exists()
    family = "sans-serif"
    if japanese:
        font_manager.fontManager.addfont(str(font_path))
        family = font_manager.FontProperties(fname=str(font_path)).get_name()
    labels = data.decision_labels if japanese else {d: d for d in DECISIONS}
    with matplotlib.rc_context({"font.family": family, "font.size": 8}):
        fig = Figure(figsize=SIZE, dpi=100, facecolor="white")
        kinds_ax, weeks_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
        rows = [r for r in data.today.kinds if r.total] or data.today.kinds[:1]
        names = [r.label if japanese else r.key for r in rows]
        left = [0] * len(rows)
        for d in DECISIONS:
            values = [r.counts[d] for r in rows]
            kinds_ax.barh(names, values, left=left, color=COLOURS[d], label=labels.get(d, d))
            left = [a + b for a, b in zip(left, values)]
        kinds_ax.invert_yaxis()
        kinds_ax.set_title("期間の受信（種別・判定別）" if japanese else "Mails by kind and decision")
        kinds_ax.xaxis.get_major_locator().set_params(integer=True)
        weeks = data.weeks
        bottom = [0] * len(weeks)
        # two lines: they fit; without a Japanese font, digits only
        ticks = [w.label.replace("〜", "\n～") if japanese else f"{w.start.month}/{w.start.day}\n-{w.end.month}/{w.end.day}"
                 for w in weeks]
        for d in DECISIONS:
            values = [w.counts[d] for w in weeks]
            weeks_ax.bar(ticks, values, bottom=bottom, color=COLOURS[d])
            bottom = [a + b for a, b in zip(bottom, values)]
        for x, (w, top) in enumerate(zip(weeks, bottom)):
            if w.total:
                weeks_ax.annotate(f"{w.total}", (x, top), ha="center", va="bottom", fontsize=7)
        weeks_ax.set_title("4週間の推移（7日ごと）" if japanese else "Four weeks (7 days each)")
        weeks_ax.yaxis.get_major_locator().set_params(integer=True)
        weeks_ax.margins(y=0.15)
        for ax in (kinds_ax, weeks_ax):
            ax.spines[["top", "right"]].set_visible(False)
        fig.legend(loc="lower center", ncol=len(DECISIONS), frameon=False)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=100, metadata={"Software": None})
    return out.getvalue()
