"""The generic text-layout engine the forms are read with: positioned words and table cells (or
AcroForm fields) → {field: value}, by the labels, options and marks of a form's rules file
(rules/forms/*.toml).  application.py and termination.py only say which rules file and how the
values become their form's dataclass.

1. words are grouped into lines by their vertical position (tolerance from the font size);
2. label occurrences are found in each line after NFKC, case folding and with spaces removed,
   at word boundaries (a label may carry 【】, ■, ：… around it), the longest match first;
   labels several fields share (フリガナ, 住所, 電話番号) are given to a section by the nearest
   heading above them, else by their order on the page;
3. a label's value is, in this order: the rest of its line up to the next label (and the lines
   that continue it below), inside a table cell if the label is in one; the other lines of its
   cell; the cells to its right up to the next label's cell; else the lines (or the cell) below
   it up to the next label, or above it for forms that print the label under its value
   (whichever is closer; ties go to the side most labels of the form use);
4. a choice field's value is the option carrying a chosen mark (☑ ■ ✓ ✔ ● ◉, before or after
   it) in that region, else the only option printed there; a flag with no options is set by a
   mark beside its label;
5. mail addresses are every `local @ domain` in the mail label's region (the `@ uspot.jp` may be
   in its own cell), kept as written.
"""
from __future__ import annotations

import re
import statistics
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from mailbot.forms.pdf import TEXT_LIMIT, Cell, Layout, Word
from mailbot.rules.forms import FieldRule, FormRules, Option
from mailbot.text import compact as key
from mailbot.text import compact_chars as norm_chars

# --------------------------------------------------------------------------- rules


# --------------------------------------------------------------------------- lines


def group_lines(words: list[Word]) -> list[list[Word]]:
    """Words → lines (top to bottom, each left to right): a word joins a line when its vertical
    middle lies within half a font size of the line's middle."""
    lines: list[list[Word]] = []
    mids: list[float] = []
    for w in sorted(words, key=lambda w: (w.page, (w.top + w.bottom) / 2, w.x0)):
        mid = (w.top + w.bottom) / 2
        tol = max(1.5, 0.45 * max(1.0, min(w.size, w.bottom - w.top if w.bottom > w.top else w.size)))
        if lines and lines[-1][0].page == w.page and abs(mid - mids[-1]) <= tol:
            lines[-1].append(w)
            n = len(lines[-1])
            mids[-1] = mids[-1] + (mid - mids[-1]) / n
        else:
            lines.append([w])
            mids.append(mid)
    for line in lines:
        line.sort(key=lambda w: w.x0)
    return lines


@dataclass
class Line:
    words: list[Word]
    compact: str = ""
    pos: list[tuple[int, int]] = field(default_factory=list)  # compact index → (word in line, raw index)
    starts: set[int] = field(default_factory=set)  # compact indices where a word starts
    ends: set[int] = field(default_factory=set)  # compact indices just past a word's end

    def __post_init__(self) -> None:
        parts = []
        for wi, w in enumerate(self.words):
            chars = norm_chars(w.text)
            if not chars:
                continue
            self.starts.add(len(self.pos))
            for ch, ri in chars:
                parts.append(ch)
                self.pos.append((wi, ri))
            self.ends.add(len(self.pos))
        self.compact = "".join(parts)

    @property
    def top(self) -> float:
        return min(w.top for w in self.words)

    @property
    def bottom(self) -> float:
        return max(w.bottom for w in self.words)

    @property
    def size(self) -> float:
        return statistics.median(w.size for w in self.words)

    def word_start(self, i: int) -> int:
        while i > 0 and i not in self.starts:
            i -= 1
        return i

    def word_end(self, i: int) -> int:
        """The end of the word holding compact index i."""
        j = i + 1
        while j < len(self.pos) and j not in self.ends:
            j += 1
        return min(j, len(self.pos))

    def x_end(self, i: int) -> float:
        """Approximate x just past compact index i."""
        wi, ri = self.pos[i]
        w = self.words[wi]
        n = max(1, len(w.text))
        return w.x0 + (w.x1 - w.x0) * (ri + 1) / n

    def x_at(self, i: int) -> float:
        """Approximate x of compact index i (interpolated inside its word)."""
        if i >= len(self.pos):
            return self.words[-1].x1
        wi, ri = self.pos[i]
        w = self.words[wi]
        n = max(1, len(w.text))
        return w.x0 + (w.x1 - w.x0) * ri / n


@dataclass
class Frag:
    """Part of a word: words[line].words[wi].text[r0:r1]."""

    line: int
    wi: int
    r0: int
    r1: int


@dataclass
class Hit:
    """A printed label (or stop label, or section heading) found on a line."""

    kind: str  # "field" | "stop" | "header"
    names: tuple[str, ...]  # candidate fields (several for shared labels) / section name
    line: int
    start: int  # compact index of the label's first char
    end: int  # compact index just past the label
    value_start: int  # compact index where its value may start (after ：】 …)
    x0: float
    x1: float
    cell: int | None = None
    field: str = ""  # the resolved field


# --------------------------------------------------------------------------- the document


class Doc:
    def __init__(self, layout: Layout, rules: FormRules) -> None:
        self.rules = rules
        self.lines = [Line(ws) for ws in group_lines(layout.words)]
        self.lines = [ln for ln in self.lines if ln.compact]
        self.cells: list[Cell] = _dedupe_cells(layout.cells)
        # each cell's bounds as _cell_of compares them (half a point of slack), its area and index
        self._cell_bounds = [(c.page, c.x0 - 0.5, c.x1 + 0.5, c.top - 0.5, c.bottom + 0.5,
                              (c.x1 - c.x0) * (c.bottom - c.top), ci) for ci, c in enumerate(self.cells)]
        self.word_cell: dict[tuple[int, int], int] = {}
        self.cell_words: dict[int, dict[int, list[int]]] = {}  # cell → line → its words there, in order
        for li, line in enumerate(self.lines):
            for wi, w in enumerate(line.words):
                c = self._cell_of(w)
                if c is not None:
                    self.word_cell[(li, wi)] = c
                    self.cell_words.setdefault(c, {}).setdefault(li, []).append(wi)
        self.hits: list[Hit] = []
        self._find_hits()
        self._resolve_sections()
        self.orientation = self._orientation()
        # lines that are, on this form's side, the value of a label: no other label's value
        self.claimed: dict[int, int] = {}
        for hi, h in enumerate(self.hits):
            if h.kind == "field" and h.field and h.cell is None and not self.same_line(h):
                for ln in self.vertical(h, self.orientation)[0]:
                    if ln:
                        self.claimed.setdefault(ln[0].line, hi)

    # ------------------------------------------------------------------ cells

    def _cell_of(self, w: Word) -> int | None:
        """The smallest cell holding the word's centre (within half a point), the first of equals."""
        best = None
        cx, cy, page = (w.x0 + w.x1) / 2, (w.top + w.bottom) / 2, w.page
        for c_page, x0, x1, top, bottom, area, ci in self._cell_bounds:
            if c_page == page and x0 <= cx <= x1 and top <= cy <= bottom and (best is None or area < best[0]):
                best = (area, ci)
        return best[1] if best else None

    def cell_at(self, li: int, ci_compact: int) -> int | None:
        line = self.lines[li]
        if ci_compact >= len(line.pos):
            return None
        return self.word_cell.get((li, line.pos[ci_compact][0]))

    # ------------------------------------------------------------------ labels

    def _find_hits(self) -> None:
        r = self.rules
        by_key: dict[str, list[tuple[str, str]]] = {}
        for f in r.fields.values():
            for k in f.labels:
                by_key.setdefault(k, []).append(("field", f.name))
        for k in r.stops:
            by_key.setdefault(k, []).append(("stop", ""))
        headers: dict[str, str] = {}
        for section, keys in r.sections.items():
            for k in keys:
                headers.setdefault(k, section)
        # Only the labels and headings printed somewhere on the form are looked for line by line
        # (a form shows a few dozen of the rules' hundreds).
        printed = "\n".join(line.compact for line in self.lines)
        keys_sorted = [k for k in sorted(by_key, key=len, reverse=True) if k and k in printed]
        headers = {k: section for k, section in headers.items() if k in printed}
        for li, line in enumerate(self.lines):
            if any(line.compact.startswith(n) for n in r.notes if n):
                continue  # 「※ USEN SPOT Plus の場合は Original SSID をご記入ください」
            taken = [False] * len(line.compact)
            found: list[Hit] = []
            for k in keys_sorted:
                pos = line.compact.find(k)
                while pos >= 0:
                    end = pos + len(k)
                    vs = self._label_bounds(line, pos, end)
                    if vs is not None and not any(taken[pos:end]):
                        entries = by_key[k]
                        kinds = {e[0] for e in entries}
                        names = tuple(dict.fromkeys(e[1] for e in entries if e[0] == "field"))
                        kind = "field" if "field" in kinds else "stop"
                        found.append(Hit(kind, names, li, pos, end, vs, line.x_at(pos), line.x_end(end - 1)))
                        for i in range(pos, end):
                            taken[i] = True
                    pos = line.compact.find(k, pos + 1)
            # section headings: a whole word group equal to a heading
            for hk, section in headers.items():
                pos = line.compact.find(hk)
                while pos >= 0:
                    end = pos + len(hk)
                    if (self._is_whole_segment(line, pos, end) and not any(taken[pos:end])):
                        found.append(Hit("header", (section,), li, pos, end, end, line.x_at(pos), line.x_end(end - 1)))
                    pos = line.compact.find(hk, pos + 1)
            for h in found:
                if h.start < len(line.pos):
                    h.cell = self.word_cell.get((li, line.pos[h.start][0]))
            found.sort(key=lambda h: h.start)
            self.hits.extend(found)
        for h in self.hits:
            h.x1 = max(h.x1, h.x0)

    def _label_bounds(self, line: Line, s: int, e: int) -> int | None:
        """Where the value may start if compact[s:e] is a label at word boundaries, else None."""
        r = self.rules
        ws = line.word_start(s)
        if any(line.compact[i] not in r.prefixes and line.compact[i] not in r.marks for i in range(ws, s)):
            return None
        we = line.word_end(e - 1)
        i = e
        while i < we and line.compact[i] in r.suffixes:
            i += 1
        if i == we or i > e:
            return i
        return None

    def _is_whole_segment(self, line: Line, s: int, e: int) -> bool:
        r = self.rules
        if any(c not in r.prefixes for c in line.compact[:s]):
            return False
        return all(c in r.suffixes for c in line.compact[e:])

    def _resolve_sections(self) -> None:
        """Give shared labels (フリガナ, 住所 …) to one field: by the heading above, else by order."""
        fields = self.rules.fields
        unique_fields = {h.names[0] for h in self.hits if h.kind == "field" and len(h.names) == 1}
        ordinals: dict[tuple[str, ...], int] = {}
        current = ""
        has_headers = any(h.kind == "header" for h in self.hits)
        # a heading in a tall (merged) cell at the left heads the rows beside it, wherever its
        # text sits vertically; another heading heads what follows it on the page
        spanning: list[tuple[Cell, str]] = []
        for h in self.hits:
            if h.kind == "header" and h.cell is not None:
                c = self.cells[h.cell]
                if c.bottom - c.top > 2.5 * self.lines[h.line].size:
                    spanning.append((c, h.names[0]))
        for h in self.hits:  # in reading order
            if h.kind == "header":
                in_spanning = h.cell is not None and any(c is self.cells[h.cell] for c, _ in spanning)
                if not in_spanning:
                    current = h.names[0]
                continue
            if h.kind == "field" and len(h.names) > 1 and spanning:
                line = self.lines[h.line]
                mid = (line.top + line.bottom) / 2
                span = [name for c, name in spanning
                        if c.page == line.words[0].page and c.top <= mid <= c.bottom and c.x1 <= h.x0 + 2]
                if span:
                    match = [n for n in h.names if fields[n].section == span[0]]
                    h.field = match[0] if match else ""
                    continue
            if h.kind != "field":
                continue
            if len(h.names) == 1:
                h.field = h.names[0]
                continue
            if has_headers and current:
                match = [n for n in h.names if fields[n].section == current]
                if match:
                    h.field = match[0]
                    continue
                if current not in {fields[n].section for n in h.names}:
                    # a heading of a section these labels do not belong to (e.g. ご担当者's
                    # フリガナ): not a value of either field
                    if any(fields[n].section for n in h.names):
                        h.field = ""
                        continue
            free = tuple(n for n in h.names if n not in unique_fields) or h.names
            k = ordinals.get(free, 0)
            ordinals[free] = k + 1
            h.field = free[k] if k < len(free) else ""

    # ------------------------------------------------------------------ values

    def is_heading(self, li: int) -> bool:
        """A line such as 「【サービス内容】」: a heading, never a value."""
        c = self.lines[li].compact
        return any(len(p) == 2 and len(c) > 2 and c[0] == p[0] and c[-1] == p[1] for p in self.rules.headings)

    def hits_on(self, li: int) -> list[Hit]:
        return [h for h in self.hits if h.line == li]

    def frags_between(self, li: int, a: int, b: int, cell: int | None | bool = False) -> list[Frag]:
        """Fragments of line li from compact index a to b; `cell` (unless False) keeps only the
        words in that cell."""
        line = self.lines[li]
        out: list[Frag] = []
        if a >= b:
            return out
        i = a
        while i < b:
            wi, ri = line.pos[i]
            j = i
            while j + 1 < b and line.pos[j + 1][0] == wi:
                j += 1
            if cell is False or self.word_cell.get((li, wi)) == cell:
                r1 = line.pos[j][1] + 1
                if j + 1 in line.ends or j + 1 == len(line.pos):
                    r1 = len(line.words[wi].text)  # whole to its end (chars NFKC drops included)
                out.append(Frag(li, wi, ri, r1))
            i = j + 1
        return out

    def next_stop(self, h: Hit) -> int:
        """Compact index on h's line where h's value ends (the next label), else the line end."""
        later = [o.start for o in self.hits_on(h.line) if o.start >= h.end and o is not h and o.kind != "header"]
        return min(later) if later else len(self.lines[h.line].compact)

    def same_line(self, h: Hit) -> list[list[Frag]]:
        """The rest of h's line up to the next label (inside h's cell if it has one), and the
        lines that continue it below (wrapped values)."""
        stop = self.next_stop(h)
        frags = self.frags_between(h.line, h.value_start, stop, h.cell if h.cell is not None else False)
        if not frags:
            return []
        out = [frags]
        # continuation lines: close below, starting right of the label, no label of their own
        line = self.lines[h.line]
        x_min = h.x0 + 2  # continuation lines start right of the label's start (indented)
        x_max = line.x_at(stop) if stop < len(line.compact) else float("inf")
        prev = line
        size = line.size
        for li in range(h.line + 1, len(self.lines)):
            nxt = self.lines[li]
            if nxt.words[0].page != line.words[0].page or nxt.top - prev.bottom > 0.9 * size:
                break
            if self.line_has_hit(li, x_min - 1, x_max):
                break
            ws = [wi for wi, w in enumerate(nxt.words) if (w.x0 + w.x1) / 2 >= x_min and (w.x0 + w.x1) / 2 < x_max
                  and (h.cell is None or self.word_cell.get((li, wi)) == h.cell)]
            if not ws:
                break
            out.append([Frag(li, wi, 0, len(nxt.words[wi].text)) for wi in ws])
            prev = nxt
        return out

    def line_has_hit(self, li: int, x0: float, x1: float, cell: int | None | bool = False) -> bool:
        if self.is_heading(li):
            return True
        for o in self.hits_on(li):
            if o.kind == "header" and not self._is_whole_segment(self.lines[li], o.start, o.end):
                continue
            mid = (o.x0 + o.x1) / 2
            if x0 <= mid < x1 and (cell is False or o.cell == cell):
                return True
        return False

    def _column(self, h: Hit) -> tuple[float, float]:
        line = self.lines[h.line]
        size = line.size
        others = [o for o in self.hits_on(h.line) if o is not h and o.kind != "header"]
        right = [o.x0 for o in others if o.x0 > h.x0]
        left = [o.x1 for o in others if o.x1 <= h.x0]
        x0 = h.x0 - 2 * size
        if left:
            x0 = max(x0, max(left) + 0.5 * size)
        return x0, (min(right) - 0.5 * size) if right else float("inf")

    def vertical(self, h: Hit, direction: int) -> tuple[list[list[Frag]], float]:
        """Lines below (direction 1) or above (-1) h in its column, up to the next label;
        with the gap between the label and the first of them."""
        line = self.lines[h.line]
        x0, x1 = self._column(h)
        cell = h.cell if h.cell is not None else False
        size = line.size
        out: list[list[Frag]] = []
        prev = line
        gap0 = float("inf")
        li = h.line + direction
        while 0 <= li < len(self.lines):
            nxt = self.lines[li]
            if nxt.words[0].page != line.words[0].page:
                break
            gap = (nxt.top - prev.bottom) if direction > 0 else (prev.top - nxt.bottom)
            limit = 2.2 * max(size, nxt.size) if not out else 1.0 * max(size, nxt.size)
            if gap > limit:
                break
            ws = [wi for wi, w in enumerate(nxt.words) if x0 <= (w.x0 + w.x1) / 2 < x1
                  and (cell is False or self.word_cell.get((li, wi)) == cell)]
            if self.line_has_hit(li, x0, x1, cell):
                break
            if not ws:
                li += direction
                continue
            if not out:
                gap0 = gap
            out.append([Frag(li, wi, 0, len(nxt.words[wi].text)) for wi in ws])
            prev = nxt
            li += direction
        if direction < 0:
            out.reverse()
        return out, gap0

    def _orientation(self) -> int:
        """+1 when this form prints values below their labels, -1 when above (label below)."""
        below = above = 0
        for h in self.hits:
            if h.kind != "field" or not h.field or h.cell is not None:
                continue
            if self.same_line(h):
                continue
            b, gb = self.vertical(h, 1)
            a, ga = self.vertical(h, -1)
            if b and (not a or gb * 1.3 < ga):
                below += 1
            elif a and (not b or ga * 1.3 < gb):
                above += 1
        return -1 if above > below else 1

    def cell_text_lines(self, ci: int, exclude: Hit | None = None) -> list[list[Frag]]:
        out = []
        for li, ws in sorted(self.cell_words.get(ci, {}).items()):
            line = self.lines[li]
            if exclude is not None and li == exclude.line:
                frags = self.frags_between(li, 0, exclude.start, ci) + self.frags_between(
                    li, exclude.value_start, len(line.compact), ci)
                if frags:
                    out.append(frags)
                continue
            out.append([Frag(li, wi, 0, len(line.words[wi].text)) for wi in ws])
        return out

    def cell_has_hit(self, ci: int, exclude: Hit | None = None) -> bool:
        return any(o.cell == ci and o is not exclude and o.kind != "header" for o in self.hits)

    def cell_starts_with_hit(self, ci: int) -> bool:
        lines = self.cell_text_lines(ci)
        if not lines:
            return False
        first = lines[0][0]
        for o in self.hits_on(first.line):
            if o.cell == ci and o.kind != "header":
                lw = self.lines[first.line].pos[o.start][0] if o.start < len(self.lines[first.line].pos) else -1
                if lw == first.wi:
                    return True
        return False

    def right_cells(self, ci: int) -> list[int]:
        c = self.cells[ci]
        mid = (c.top + c.bottom) / 2
        row = [j for j, d in enumerate(self.cells) if j != ci and d.page == c.page and d.x0 >= c.x1 - 2
               and d.top - 1 <= mid <= d.bottom + 1]
        return sorted(row, key=lambda j: self.cells[j].x0)

    def adjacent_cell(self, ci: int, direction: int) -> int | None:
        c = self.cells[ci]
        best = None
        for j, d in enumerate(self.cells):
            if j == ci or d.page != c.page:
                continue
            overlap = min(c.x1, d.x1) - max(c.x0, d.x0)
            if overlap < 0.5 * min(c.x1 - c.x0, d.x1 - d.x0):
                continue
            dist = d.top - c.bottom if direction > 0 else c.top - d.bottom
            if -2 <= dist <= 3 and (best is None or dist < best[0]):
                best = (dist, j)
        return best[1] if best else None

    def regions(self, h: Hit) -> list[list[list[Frag]]]:
        """Candidate value regions of a label, most likely first."""
        out = []
        same = self.same_line(h)
        if same:
            out.append(same)
        if h.cell is not None:
            rest = [ln for ln in self.cell_text_lines(h.cell, exclude=h) if ln]
            if rest and not self.cell_has_hit(h.cell, exclude=h):
                out.append(rest)
            else:
                for d in (self.orientation, -self.orientation):
                    v, _ = self.vertical(h, d)
                    if v:
                        out.append(v)
                        break
            right: list[list[Frag]] = []
            row = self.right_cells(h.cell)
            for j in row:
                if self.cell_starts_with_hit(j):
                    break
                if self.cell_has_hit(j):
                    break
                right.extend(self.cell_text_lines(j))
            if right:
                out.append(right)
            for d in ((self.orientation, -self.orientation) if not row else ()):
                # the cell below (or above) only where nothing is right of the label's cell
                j = self.adjacent_cell(h.cell, d)
                if j is not None and not self.cell_has_hit(j):
                    v = self.cell_text_lines(j)
                    if v:
                        out.append(v)
                        break
        else:
            me = self.hits.index(h)

            def free(region: list[list[Frag]]) -> list[list[Frag]]:
                if any(self.claimed.get(ln[0].line, me) != me for ln in region if ln):
                    return []
                return region

            b, gb = self.vertical(h, 1)
            a, ga = self.vertical(h, -1)
            b, a = free(b), free(a)
            if b and a:
                if gb * 1.3 < ga:
                    first = 1
                elif ga * 1.3 < gb:
                    first = -1
                else:
                    first = self.orientation
                out.extend([b, a] if first > 0 else [a, b])
            elif b and self.orientation > 0 or a and self.orientation < 0:
                # only one side: take it when it is this form's side (else it is the value of
                # the neighbouring label and this one is empty)
                out.append(b or a)
        return [r for r in out if r]

    def line_text(self, frags: list[Frag]) -> str:
        parts = [self.lines[f.line].words[f.wi].text[f.r0:f.r1].strip() for f in frags]
        return " ".join(p for p in parts if p)

    def frag_cell(self, frags: list[Frag]) -> int | None:
        return self.word_cell.get((frags[0].line, frags[0].wi)) if frags else None

    def text(self, region: list[list[Frag]]) -> str:
        """A value's text: wrapped lines joined (no space between Japanese characters), the
        cells of a row joined with a space."""
        out = ""
        prev_cell: int | None = None
        for frags in region:
            s = self.line_text(frags)
            if not s:
                continue
            cell = self.frag_cell(frags)
            if not out:
                out = s
            elif cell != prev_cell and cell is not None and prev_cell is not None:
                out += " " + s
            else:
                out = _join_wrapped([out, s])
            prev_cell = cell
        return out

    def mail_lines(self, region: list[list[Frag]]) -> list[str]:
        """A region's lines for address search: the cells of a row on one line (`local` | `@
        uspot.jp`), a line wrapped inside an address joined without a space."""
        out: list[str] = []
        prev_cell: int | None = None
        for frags in region:
            s = self.line_text(frags)
            if not s:
                continue
            cell = self.frag_cell(frags)
            if not out:
                out.append(s)
            elif cell != prev_cell and cell is not None and prev_cell is not None and \
                    self.cells[cell].top < self.cells[prev_cell].bottom - 1:
                out[-1] += " " + s  # the next cell of the same row
            elif _address_incomplete(out[-1], s):
                out[-1] += s
            else:
                out.append(s)
            prev_cell = cell
        return out

    def frags_without_hits(self, li: int) -> list[Frag]:
        out: list[Frag] = []
        a = 0
        for h in self.hits_on(li):
            out.extend(self.frags_between(li, a, h.start))
            a = max(a, h.value_start)
        out.extend(self.frags_between(li, a, len(self.lines[li].compact)))
        return out

    def is_example(self, region_line: list[Frag]) -> bool:
        if not region_line:
            return False
        return any(ex in self.lines[region_line[0].line].compact for ex in self.rules.examples)

    # ------------------------------------------------------------------ options and marks

    def choose(self, f: FieldRule, text_chars: list[str]) -> tuple[list[Any], bool]:
        """Options found in a region's compact chars → (chosen values, any option printed).
        A chosen mark beside an option chooses it; with no marks at all, a lone option does."""
        compact = "".join(text_chars)
        taken = [False] * len(compact)
        found: list[tuple[int, int, Any]] = []
        spellings = sorted(((k, o.value) for o in f.options for k in o.keys), key=lambda kv: -len(kv[0]))
        for k, value in spellings:
            if not k:
                continue
            pos = compact.find(k)
            while pos >= 0:
                end = pos + len(k)
                if not any(taken[pos:end]):
                    found.append((pos, end, value))
                    for i in range(pos, end):
                        taken[i] = True
                pos = compact.find(k, pos + 1)
        if not found:
            return [], False
        found.sort()
        marks = self.rules.marks
        gap = self.rules.mark_gap

        def mark_before(s: int) -> str:
            i = s - 1
            skipped = 0
            while i >= 0 and compact[i] in gap and compact[i] not in marks and skipped < 3:
                i -= 1
                skipped += 1
            return compact[i] if i >= 0 and compact[i] in marks and not taken[i] else ""

        def mark_after(e: int) -> str:
            i = e
            skipped = 0
            while i < len(compact) and compact[i] in gap and compact[i] not in marks and skipped < 3:
                i += 1
                skipped += 1
            return compact[i] if i < len(compact) and compact[i] in marks and not taken[i] else ""

        any_mark = any(c in marks for c in compact)
        if any_mark:
            before = bool(mark_before(found[0][0]))
            after = bool(mark_after(found[-1][1]))
            side = mark_before if before or not after else mark_after
            chosen = [v for s, e, v in found if side(s if side is mark_before else e) in self.rules.chosen]
            if chosen or any(side(s if side is mark_before else e) for s, e, v in found):
                return _dedupe(chosen), True
        values = _dedupe([v for _, _, v in found])
        if len(values) == 1:
            return values, True  # only the chosen option is printed
        return [], True

    def region_chars(self, region: list[list[Frag]]) -> list[str]:
        out: list[str] = []
        for frags in region:
            for fr in frags:
                w = self.lines[fr.line].words[fr.wi]
                out.extend(ch for ch, _ in norm_chars(w.text[fr.r0:fr.r1]))
        return out

    def marked_anywhere(self, f: FieldRule) -> list[Any]:
        """Options of `f` listed in its `anywhere` spellings that carry a chosen mark anywhere,
        outside other fields' labels."""
        if not f.anywhere:
            return []
        chosen: list[Any] = []
        for li, line in enumerate(self.lines):
            chars = list(line.compact)
            for o in self.hits_on(li):
                if o.kind == "field" and f.name not in o.names:
                    for i in range(o.start, o.end):
                        chars[i] = "\x00"
            if not any(c in self.rules.chosen for c in chars):
                continue
            sub = FieldRule(f.name, (), f.kind, options=tuple(
                Option(o.value, tuple(k for k in o.keys if k in f.anywhere)) for o in f.options))
            values, _ = self.choose(sub, chars)
            chosen.extend(values)
        return _dedupe(chosen)

    def mark_beside(self, h: Hit) -> bool | None:
        """A mark right before the label (or right after it): ☑外国人対応SSIDオプション."""
        line = self.lines[h.line]
        i = h.start - 1
        while i >= 0 and line.compact[i] in self.rules.mark_gap:
            i -= 1
        c = line.compact[i] if i >= 0 else ""
        if not c or c not in self.rules.marks:
            j = h.end
            while j < len(line.compact) and line.compact[j] in self.rules.suffixes:
                j += 1
            c = line.compact[j] if j < len(line.compact) else ""
        if c in self.rules.chosen:
            return True
        if c in self.rules.unchosen:
            return False
        return None


def _dedupe(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _dedupe_cells(cells: list[Cell]) -> list[Cell]:
    out: list[Cell] = []
    seen = set()
    for c in cells:
        k = (c.page, round(c.x0), round(c.top), round(c.x1), round(c.bottom))
        if k not in seen and c.x1 - c.x0 > 2 and c.bottom - c.top > 2:
            seen.add(k)
            out.append(c)
    return out


_WIDE = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]")


def _join_wrapped(lines: list[str]) -> str:
    """Lines of one value: joined without a space between two Japanese characters."""
    out = ""
    for s in lines:
        if not out:
            out = s
        elif _WIDE.match(s[:1]) and _WIDE.match(out[-1:]):
            out += s
        else:
            out += " " + s
    return out


# --------------------------------------------------------------------------- extracting


_ADDRESS = re.compile(r"(\S*?)\s*([@＠])\s*(\S+)")
_LOCAL_JUNK = re.compile(r"^[_＿\-－.．…・]*$")
_LOCAL_STRIP = "([{「『（【<＜:：,、，;；"
_DOMAIN_STRIP = ")]}」』）】>＞,、，;；。"


def _address_incomplete(line: str, nxt: str) -> bool:
    """Whether `nxt` continues an address wrapped at the end of `line`."""
    at = max(line.rfind("@"), line.rfind("＠"))
    if at < 0:
        return bool(re.match(r"^[^\s@＠]*[@＠]", nxt)) and not line.endswith(" ")
    domain = line[at + 1:].strip()
    return not domain or "." not in domain or domain.endswith((".", "-"))


def mail_addresses(lines: list[str]) -> list[str]:
    """Every `local @ domain` in the lines, as written (spaces around @ dropped)."""
    out = []
    for line in lines:
        for m in _ADDRESS.finditer(line):
            local = m.group(1).lstrip(_LOCAL_STRIP)
            if "@" in local or "＠" in local:
                local = re.split(r"[@＠]", local)[-1]
            if not local or _LOCAL_JUNK.match(local):
                continue
            domain = m.group(3).rstrip(_DOMAIN_STRIP)
            addr = f"{local}{m.group(2)}{domain}"
            if addr not in out:
                out.append(addr)
    return out


def _clean_value(text: str, f: FieldRule) -> str:
    text = text.strip()
    changed = True
    while changed and text:
        changed = False
        if text[0] in ":：":
            text, changed = text[1:].strip(), True
        for p in f.strip_prefix:
            if p and text.startswith(p):
                text, changed = text[len(p):].strip(), True
        for p in f.strip_suffix:
            if p and text.endswith(p):
                text, changed = text[:-len(p)].strip(), True
    return text


def extract(layout: Layout, rules: FormRules) -> dict[str, Any]:
    """Printed form → {field: value} (values as written; choices as the option's value)."""
    doc = Doc(layout, rules)
    out: dict[str, Any] = {}
    for name, f in rules.fields.items():
        hits = [h for h in doc.hits if h.kind == "field" and h.field == name]
        if f.kind == "mail":
            found: list[str] = []
            for h in hits:
                for region in doc.regions(h)[:2]:
                    lines = [ln for ln in region if not doc.is_example(ln)]
                    found.extend(a for a in mail_addresses(doc.mail_lines(lines)) if a not in found)
                    if found:
                        break
            if not found:
                # no labelled region gave one: addresses of the hinted domain anywhere, read
                # from the page without its labels
                lines = [doc.frags_without_hits(li) for li in range(len(doc.lines))]
                lines = [ln for ln in lines if ln and not doc.is_example(ln)]
                found = [a for a in mail_addresses([doc.line_text(ln) for ln in lines])
                         if f.domain_hint and f.domain_hint in key(a.split("@")[-1].split("＠")[-1])]
            if found:
                out[name] = found
            continue
        if f.kind in ("choice", "flag"):
            value = None
            for h in hits:
                for region in doc.regions(h):
                    values, printed = doc.choose(f, doc.region_chars(region))
                    if printed:
                        value = values[0] if len(values) == 1 else None
                        break
                else:
                    if f.kind == "flag" or not f.options:
                        value = doc.mark_beside(h)
                if value is not None:
                    break
            if value is None:
                values = doc.marked_anywhere(f)
                if len(values) == 1:
                    value = values[0]
            if value is None and f.kind == "flag" and hits:
                value = False  # the option is printed, and nothing marks it chosen
            if value is not None:
                out[name] = value
            continue
        for h in hits:
            value = ""
            for region in doc.regions(h):
                value = _clean_value(doc.text(region), f)
                if value:
                    break
            if value:
                out[name] = value
                break
    return out




# --------------------------------------------------------------------------- AcroForm


def acro_key(name: str) -> str:
    return key(name.rsplit(".", 1)[-1]) if name else ""


def from_acroform(acro: dict[str, object], rules: FormRules) -> dict[str, Any]:
    """AcroForm values → {field: value} by the rules' `acroform` names."""
    by_key: dict[str, object] = {}
    for name, value in acro.items():
        by_key.setdefault(acro_key(name), value)
        by_key.setdefault(key(name), value)
    out: dict[str, Any] = {}
    for fname, f in rules.fields.items():
        values = [by_key[key(n)] for n in f.acroform if key(n) in by_key]
        if not values:
            continue
        if f.kind == "mail":
            found: list[str] = []
            for v in values:
                items = v if isinstance(v, list) else [v]
                for item in items:
                    if isinstance(item, str):
                        for part in re.split(r"[\s,、，;；]+", item):
                            if part and part not in found:
                                found.append(part)
            if found:
                out[fname] = found
            continue
        if f.kind in ("choice", "flag"):
            v = values[0]
            if isinstance(v, list):
                v = v[0] if len(v) == 1 else None
            if isinstance(v, bool):
                bool_values = {o.value for o in f.options if isinstance(o.value, bool)}
                if bool_values or not f.options:
                    out[fname] = v
                elif v is False:
                    pass  # a radio group with nothing chosen
                continue
            if isinstance(v, str) and v.strip():
                k = key(v)
                match = None
                for o in f.options:
                    if k in o.keys:
                        match = o.value
                        break
                if match is None:
                    # the longest option spelling inside the text ("☑Bフレッツ")
                    best = max(((len(s), o.value) for o in f.options for s in o.keys if s and s in k),
                               default=None, key=lambda t: t[0])
                    match = best[1] if best else v.strip()
                out[fname] = match
            continue
        parts = [v.strip() for v in values if isinstance(v, str) and v.strip()]
        if parts:
            out[fname] = _clean_value(" ".join(parts), f)
    return out


def plain_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Values as the sandbox sends them back: no empty ones, tuples as lists, codes without spaces."""
    out = {}
    for k, v in fields.items():
        if v is None or v == "" or v == [] or v == ():
            continue
        if isinstance(v, str) and k in ("customer_code",):
            v = re.sub(r"\s+", "", unicodedata.normalize("NFKC", v))
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def layout_text(layout: Layout, limit: int = TEXT_LIMIT) -> str:
    """The page text: words grouped into lines by position (for the audit trail and 備考)."""
    out: list[str] = []
    size = 0
    page = 0
    for line in group_lines(layout.words):
        if line[0].page != page:
            out.append("\f")
            page = line[0].page
        s = " ".join(w.text for w in line)
        out.append(s)
        size += len(s) + 1
        if size > limit:
            break
    return "\n".join(out)[:limit]
