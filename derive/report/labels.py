"""The labels of the reports, in each language: data in reports/labels/LANG.toml, beside the templates.

    t = Labels("zh")
    t("and_more", count=3)          # TeX: "另有 3 个同形式的方程"
    t.name("layer_kind", "conv")    # plain text: "卷积层"
    t.name("layer_details", "pool", pool="最大", size="2×2", stride=2)
    t.message("where no pooling window has a tie")   # an English message, in the report's language

Top-level keys are TeX; the tables ([layer_kind], [layer_details], [pool], [diagnosis_title],
[family_name], [message]) are plain text. Each file is read once. Every language has the same
keys and the same {fields} per key (tests/test_labels.py).
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path

from derive.shipped import shipped_dir
from derive.texsafe import Tex, escape

LANGS = ("en", "zh")
FIELD = re.compile(r"\{(\w+)\}")


def templates_dir() -> Path:
    return shipped_dir("reports")


def labels_dir() -> Path:
    return templates_dir() / "labels"


@cache
def load(lang: str) -> dict[str, str]:
    """One language's labels, flat: "key" for the TeX labels, "table.key" for the plain-text ones."""
    if lang not in LANGS:
        raise LookupError(f"no labels for the language {lang!r} (one of {', '.join(LANGS)})")
    with open(labels_dir() / f"{lang}.toml", "rb") as file:
        data = tomllib.load(file)
    flat: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def table(lang: str, name: str) -> dict[str, str]:
    """One table of a language's labels (layer_kind, layer_details, pool, diagnosis_title, family_name, message), by key."""
    prefix = name + "."
    return {k[len(prefix):]: v for k, v in load(lang).items() if k.startswith(prefix)}


@cache
def _message_patterns() -> tuple[tuple[str, re.Pattern], ...]:
    """Each English [message] template as a regular expression; a field named twice matches the same text."""
    patterns = []
    for key, template in table("en", "message").items():
        seen: set[str] = set()
        parts = []
        for i, part in enumerate(FIELD.split(template)):
            if i % 2 == 0:
                parts.append(re.escape(part))
            elif part in seen:
                parts.append(f"(?P={part})")
            else:
                seen.add(part)
                parts.append(f"(?P<{part}>.+?)")
        patterns.append((key, re.compile("".join(parts), re.S)))
    return tuple(patterns)


def fill(template: str, fields: dict, convert=str) -> str:
    """The template with each {field} replaced by convert(its value)."""
    return FIELD.sub(lambda m: convert(fields[m.group(1)]), template)


class Labels:
    """The labels of one language, as TeX; `t("key", count=3)` fills placeholders.

    The label texts are ours and written in TeX; a field's value is escaped
    unless it is `Tex`, so a user's string inside a label prints literally.
    """

    def __init__(self, lang: str):
        self.lang = lang
        self.table = {k: v for k, v in load(lang).items() if "." not in k}

    def __call__(self, key: str, **fields) -> Tex:
        text = self.table.get(key) if isinstance(key, str) else None
        if text is None:
            raise LookupError(f"t({str(key)[:40]!r}): no such label (see reports/labels/{self.lang}.toml)")
        for field in FIELD.findall(text):
            if field not in fields:
                raise LookupError(f"t({key!r}) needs the field {field}=…")
        return Tex(fill(text, fields, lambda value: value if isinstance(value, Tex) else escape(value)))

    def name(self, table_name: str, key: str, **fields) -> str:
        """Plain text from a table (layer_kind, layer_details, pool, diagnosis_title, family_name), its {fields}
        filled; the key itself when the table has no such entry."""
        text = load(self.lang).get(f"{table_name}.{key}")
        return key if text is None else fill(text, fields)

    def message(self, text: str) -> str:
        """An English message another module wrote, in this language when [message] has its template."""
        if self.lang == "en" or not isinstance(text, str):
            return text
        translations = table(self.lang, "message")
        for key, pattern in _message_patterns():
            match = pattern.fullmatch(text)
            if match and key in translations:
                return fill(translations[key], match.groupdict())
        return text


def __getattr__(name: str):
    """LABELS (every language's TeX labels) and DIAGNOSIS_TITLES_ZH, as the label files hold them."""
    if name == "LABELS":
        return {lang: Labels(lang).table for lang in LANGS}
    if name == "DIAGNOSIS_TITLES_ZH":
        return table("zh", "diagnosis_title")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
