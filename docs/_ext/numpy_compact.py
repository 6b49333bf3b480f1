"""Griffe extension: read astrogen's compact NumPy docstrings the way they are written.

astrogen's docstrings write a parameter on one line, ``name : what it is, with its unit``, and take the type from
the signature; griffe's NumPy parser would read that text as the parameter's *type*. Before parsing, this rewrites
(on the documentation side only, the source is untouched):

* ``name : text`` items (Parameters, Other Parameters, Attributes, Raises, Returns) as ``name`` + indented text;
  standard items (``name : type`` followed by an indented description) are left alone;
* free text at the left margin inside such a section (a closing paragraph) as a Notes section, and a Returns
  section that is one free sentence as an admonition ("Returns what");
* ``<pixel unit>``-style placeholders and ``[a, b] [N]`` shapes outside code spans as text, not HTML tags or links;
* a reST ``::`` before an indented block as ``:`` (the block renders as code either way).
"""

from __future__ import annotations

import re

from griffe import Extension

ITEM_SECTIONS = {"Parameters", "Other Parameters", "Attributes", "Raises", "Returns", "Yields", "Warns"}
COMPACT_ITEM = re.compile(r"^(\*{0,2}[A-Za-z_][\w.]*(?:\s*,\s*\*{0,2}[A-Za-z_][\w.]*)*)\s+:\s+(\S.*)$")
LONE_ITEM = re.compile(r"^\*{0,2}[A-Za-z_][\w.\[\], ]*$")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


def _escape_text(text: str) -> str:
    return re.sub(r"\] \[", r"] \\[", re.sub(r"<(?=[A-Za-z])", "&lt;", text))


def _escape_angles(line: str) -> str:
    """Outside code spans: ``<word`` -> ``&lt;word``, so Markdown does not take ``<pixel unit>`` for a tag, and
    ``] [`` -> ``] \\[``, so shapes like ``[0.5, 6] [N]`` are not read as a reference link to ``N``."""
    out, last = [], 0
    for match in CODE_SPAN.finditer(line):
        out.append(_escape_text(line[last:match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_escape_text(line[last:]))
    return "".join(out)


def _indented(line: str) -> bool:
    return line.startswith((" ", "\t"))


def _looks_like_type(text: str) -> bool:
    """``np.ndarray ``[T]```` or ``int, optional``: a short type, not a sentence."""
    return len(text) <= 40 and not text.rstrip().endswith(".") and ";" not in text


def rewrite(text: str) -> str:
    """The docstring ``text`` in the NumPy form griffe parses (see the module docstring)."""
    lines = text.split("\n")
    out: list[str] = []
    section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line and not _indented(line) and len(nxt.strip()) >= 3 and set(nxt.strip()) == {"-"}:
            section = line.strip()
            body = lines[i + 2] if i + 2 < len(lines) else ""
            after = lines[i + 3] if i + 3 < len(lines) else ""
            if (section == "Returns" and body and not COMPACT_ITEM.match(body)
                    and not (LONE_ITEM.match(body) and _indented(after))):
                # One free sentence (and its continuation lines): a paragraph, not a typed item.
                j, para = i + 2, []
                while j < len(lines) and lines[j].strip():
                    para.append(lines[j].strip())
                    j += 1
                out += ["Returns what", "------------", _escape_angles(" ".join(para))]
                section, i = None, j
                continue
            out += [line, nxt]
            i += 2
            continue
        if section in ITEM_SECTIONS and line and not _indented(line):
            compact = COMPACT_ITEM.match(line)
            if compact and not (_indented(nxt) and _looks_like_type(compact.group(2))):
                name = compact.group(1) + (" :" if section in ("Returns", "Yields") else "")
                out += [name, "    " + _escape_angles(compact.group(2))]
            elif compact or (LONE_ITEM.match(line) and _indented(nxt)):
                out.append(line)  # already standard: "name : type" or "type", description indented below
            else:
                out += ["", "Notes", "-----", _escape_angles(line)]
                section = "Notes"
            i += 1
            continue
        if line.rstrip().endswith("::") and line.strip() != "::" and (not nxt.strip() or _indented(nxt)):
            line = line.rstrip()[:-1]
        out.append(line if _indented(line) and section not in ITEM_SECTIONS else _escape_angles(line))
        i += 1
    return "\n".join(out)


class CompactNumpy(Extension):
    """Rewrite every docstring with `rewrite` as griffe loads it."""

    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
