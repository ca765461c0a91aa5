"""The report labels (reports/labels/LANG.toml): every language complete, every label used exists."""

import ast
import re
import tomllib
from pathlib import Path

import pytest

from derive.report.labels import FIELD, LANGS, Labels, labels_dir, load, table, templates_dir

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _fields(text: str) -> list[str]:
    return sorted(FIELD.findall(text))


def test_the_label_files_sit_beside_the_templates_and_parse():
    assert labels_dir() == templates_dir() / "labels"
    for lang in LANGS:
        with open(labels_dir() / f"{lang}.toml", "rb") as file:
            tomllib.load(file)  # valid TOML
    assert sorted(p.stem for p in labels_dir().glob("*.toml")) == sorted(LANGS)


def test_every_language_has_the_same_keys_and_the_same_fields():
    english = load("en")
    for lang in LANGS:
        labels = load(lang)
        assert set(labels) == set(english), (lang, set(labels) ^ set(english))
        for key, text in labels.items():
            assert isinstance(text, str) and text.strip(), (lang, key)
            assert _fields(text) == _fields(english[key]), (lang, key, text)


def _template_keys() -> set[str]:
    keys = set()
    for path in templates_dir().glob("*.tex"):
        keys |= set(re.findall(r"""\bt\(\s*["']([^"']+)["']""", path.read_text(encoding="utf-8")))
    return keys


def _strings(node: ast.AST) -> list[str]:
    """The literal strings an argument can be: "key", or "a" if … else "b"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def _python_keys() -> tuple[set[str], set[tuple[str, str]]]:
    """Keys derive's modules name literally: t("key", …) and t.name("table", "key", …)."""
    labels, names = set(), set()
    for path in (ROOT / "derive").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            if isinstance(node.func, ast.Name) and node.func.id == "t":
                labels |= set(_strings(node.args[0]))
            elif (isinstance(node.func, ast.Attribute) and node.func.attr == "name"
                  and isinstance(node.func.value, ast.Name) and node.func.value.id == "t" and len(node.args) >= 2):
                names |= {(table_name, key) for table_name in _strings(node.args[0]) for key in _strings(node.args[1])}
    return labels, names


def test_every_label_the_templates_use_exists():
    used = _template_keys()
    assert {"report", "network", "proofs", "grading", "bad_file"} <= used
    for lang in LANGS:
        t = Labels(lang)
        missing = sorted(k for k in used if k not in t.table)
        assert not missing, (lang, missing)


def test_every_label_derive_names_exists():
    labels, names = _python_keys()
    assert {"generated", "and_more", "explain_intro", "proof_summary", "class_total"} <= labels
    assert ("layer_kind", "input") in names and ("layer_details", "conv") in names
    for lang in LANGS:
        flat = load(lang)
        assert not sorted(k for k in labels if k not in flat), lang
        assert not sorted(f"{a}.{b}" for a, b in names if f"{a}.{b}" not in flat), lang


def test_the_labels_chosen_at_run_time_exist():
    """Keys made from data: verdicts, diagnoses, layer kinds, pooling kinds."""
    from derive.claims.mistakes import DIAGNOSES
    from derive.graph.network import POOL_KIND

    for lang in LANGS:
        flat = load(lang)
        for verdict in ("proven", "refuted", "undecided"):
            assert verdict in flat
        assert set(table(lang, "diagnosis_title")) == set(DIAGNOSES)
        assert set(POOL_KIND.values()) <= set(table(lang, "pool"))
        assert {"input", "dense", "conv", "pool"} <= set(table(lang, "layer_kind"))


def test_a_label_fills_its_fields_and_escapes_them():
    t = Labels("en")
    assert t("and_more", count=3) == "and 3 more of the same form"
    assert t("expected_verdict", expect="a_b") == r"the answer key expects a\_b"
    with pytest.raises(LookupError):
        t("and_more")
    with pytest.raises(LookupError):
        t("no such label")


def test_english_is_the_identity_and_chinese_messages_are_translated():
    en, zh = Labels("en"), Labels("zh")
    certified = "exact rational arithmetic"
    assert en.message(certified) == certified and zh.message(certified) == load("zh")["message.exact"]
    assert zh.message("built-in: book-cnn") == "内置: book-cnn"
    assert zh.message("a message no template has") == "a message no template has"
    # what tests/test_report.py reads in every language, as the prover and `derive check` state it
    assert zh.message("where no pooling window has a tie") == "where no pooling window has a tie"
    assert zh.message("5/14 claims proven") == "5/14 claims proven"
    # a field named twice must match the same text both times
    twice = "x = σ(a) is written where σ'(b) = y belongs"
    assert zh.message(twice) == twice
    assert zh.name("family_name", "output errors") == "输出层误差" and zh.name("family_name", "BP1") == "BP1"


def test_every_diagnosis_of_the_examples_reads_in_chinese():
    """The [message] templates follow the messages derive/claims/diagnosis.py writes: none is left English."""
    from derive.claims.check import check
    from derive.claims.claimsfile import load_claims

    zh = Labels("zh")
    seen = set()
    for name in ("two-two-two-homework", "book-12-3-2-homework", "softmax-homework", "zhou-homework"):
        result = check(load_claims(EXAMPLES / f"{name}.toml"))
        for r in result.results:
            if r.diagnosis:
                seen.add(r.diagnosis.id)
                assert zh.message(r.diagnosis.message) != r.diagnosis.message, r.diagnosis.message
    assert len(seen) >= 8
