"""What a SQL (string body) or PL/pgSQL function body names: a tokenizer, not a parser.

:func:`body_names` reads qualified names ``schema.name`` anywhere (string literals included,
comments excluded), and unqualified names where the text says what they are: after ``FROM``,
``JOIN``, ``UPDATE``, ``INTO``, ``TABLE`` and ``ONLY`` (relations, and ``t`` of
``t.column%TYPE``), before ``(`` (functions), after ``::``, before ``%ROWTYPE`` and as the type
of a ``DECLARE`` (types). :mod:`dbsplit.deps` resolves them to objects through the function's
search path (:func:`search_path`). Not seen: names built at run time (``EXECUTE 'SELECT ...
FROM ' || t``), and an unqualified relation listed after a comma in a ``FROM`` list.

Example::

    >>> [(b.schema, b.name, b.role) for b in body_names("SELECT 1 FROM s.t JOIN u ON true")]
    [('s', 't', 'relation'), ('', 'u', 'relation')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_TOKENS = re.compile(r'"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*|::|%ROWTYPE\b|%TYPE\b|\S', re.I)
_BEFORE_RELATION = frozenset({"FROM", "JOIN", "UPDATE", "INTO", "TABLE", "ONLY"})
#: Words that are never the unqualified name of an object (``VALUES (``, ``IN (``...).
_KEYWORDS = _BEFORE_RELATION | {
    "VALUES",
    "IN",
    "EXISTS",
    "IF",
    "ANY",
    "ALL",
    "ARRAY",
    "ROW",
    "AND",
    "OR",
    "NOT",
    "WHEN",
    "RETURN",
    "USING",
    "ON",
    "AS",
    "SELECT",
    "WHERE",
    "LATERAL",
    "CASE",
    "THEN",
    "ELSE",
}


@dataclass(frozen=True)
class BodyName:
    """A name a function body mentions: ``schema`` (empty when unqualified), ``name``, and
    what the text says it is: ``relation``, ``function``, ``type`` or ``any`` (qualified)."""

    schema: str
    name: str
    role: str


def body_names(src: str) -> list[BodyName]:
    """The names a function body mentions (see the module's docstring)."""
    tokens = _TOKENS.findall(_COMMENTS.sub(" ", src))
    out: list[BodyName] = []
    declaring = False
    i = 0
    while i < len(tokens):
        word = tokens[i].upper()
        if word in ("DECLARE", "BEGIN"):
            declaring = word == "DECLARE"
        if not _is_ident(tokens[i]):
            i += 1
            continue
        parts = [tokens[i]]
        j = i + 1
        while j + 1 < len(tokens) and tokens[j] == "." and _is_ident(tokens[j + 1]):
            parts.append(tokens[j + 1])
            j += 2
        prev = tokens[i - 1].upper() if i > 0 else ""
        nxt = tokens[j].upper() if j < len(tokens) else ""
        role = (
            "function"
            if nxt == "("
            else "type"
            if prev == "::" or nxt == "%ROWTYPE" or (declaring and _declared_type(tokens, i))
            else "relation"
            if prev in _BEFORE_RELATION
            else ""
        )
        names = [unquote(p) for p in parts]
        if nxt == "%TYPE" and len(names) > 1:  # table.column%TYPE
            names, role = names[:-1], "relation"
        if len(names) == 2:
            out.append(BodyName(names[0], names[1], role or "any"))
        elif len(names) == 1 and role and names[0].upper() not in _KEYWORDS:
            out.append(BodyName("", names[0], role))
        i = j
    return out


def _declared_type(tokens: list[str], i: int) -> bool:
    """True when ``tokens[i]`` is the type in a PL/pgSQL declaration ``name [CONSTANT] type``."""
    if tokens[i].upper() == "CONSTANT":
        return False
    j = i - 1
    if j >= 0 and tokens[j].upper() == "CONSTANT":
        j -= 1
    return j >= 1 and _is_ident(tokens[j]) and tokens[j - 1].upper() in (";", "DECLARE")


def _is_ident(token: str) -> bool:
    return token[0] == '"' or token[0].isalpha() or token[0] == "_"


def unquote(part: str) -> str:
    if part.startswith('"'):
        return part[1:-1].replace('""', '"')
    return part.lower()


def search_path(setting: str) -> list[str]:
    """The schemas of a ``search_path`` setting, in order (``$user`` left out)."""
    return [
        unquote(p.strip())
        for p in setting.split(",")
        if p.strip() and p.strip() not in ('"$user"', "$user")
    ]
