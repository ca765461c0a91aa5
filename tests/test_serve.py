"""`derive serve`: every route of the Starlette application, its limits, its headers and hostile input.

The app runs in-process under Starlette's TestClient (the lifespan starts the worker pool); the CLI
is run as a subprocess for its argument checks only (it never reaches uvicorn here).
"""

from __future__ import annotations

import html
import inspect
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from derive.claims.check import check as check_claims
from derive.claims.claimsfile import load_claims
from derive.grade.assignment import load_assignment
from derive.grade.outputs import gradebook, gradebook_csv
from derive.grade.store import Store
from derive.graph.spec import builtin_names, load
from derive.serve.app import MAX_BODY, Config, Server, create_app

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = ROOT / "examples" / "class" / "assignment.toml"
TOKEN = "teacher-token-0123456789abcdef"
RIGHT = r"(out_{o1} - y_1) out_{o1} (1 - out_{o1}) out_{h1}"
SIGN = r"-(out_{o1} - y_1) out_{o1} (1 - out_{o1}) out_{h1}"
RIGHT_SYMPY = "(outo1 - y1)*outo1*(1 - outo1)*outh1"
W5 = {"network": "two-two-two", "wrt": "w5"}
SYMBOLIC = [name for name in builtin_names() if load(name).kind != "stack"]
STACK = [name for name in builtin_names() if load(name).kind == "stack"]

# MathML presentation elements (MathML Core and what SymPy's presentation printer writes)
MATHML_TAGS = {"math", "mrow", "mi", "mn", "mo", "msub", "msup", "msubsup", "mfrac", "msqrt", "mroot", "mtext",
               "mfenced", "mspace", "mstyle", "mpadded", "mphantom", "munder", "mover", "munderover", "mtable",
               "mtr", "mtd", "semantics", "annotation"}
MATHML_ATTRIBUTES = {"xmlns", "display", "mathvariant", "open", "close", "separators", "fence", "stretchy",
                     "form", "linethickness", "lspace", "rspace", "width", "columnalign"}


def _client(config: Config):
    return TestClient(create_app(config), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def assignment():
    return load_assignment(ASSIGNMENT)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """Network mode (no assignment), no rate limit, show the correct formula."""
    db = tmp_path_factory.mktemp("net") / "serve.sqlite"
    with _client(Config(db=db, token=TOKEN, jobs=2, budget=1.0, rate=0)) as client:
        yield client


@pytest.fixture(scope="module")
def served(tmp_path_factory, assignment):
    """Assignment mode; the SQLite file is the fixture's `db`."""
    db = tmp_path_factory.mktemp("asg") / "serve.sqlite"
    with _client(Config(assignment=assignment, db=db, token=TOKEN, jobs=2, budget=1.0, rate=0)) as client:
        client.db = db
        yield client


def _security_headers(response) -> None:
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "script-src 'self'" in csp, (response.request.url, csp)
    assert response.headers.get("x-content-type-options") == "nosniff", response.request.url


def _json_error_or_verdict(response, preview: bool = False) -> dict:
    """200 with a verdict (or, for the preview, ok + mathml / message), or 4xx with {"error": ...}; never 5xx."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    data = response.json()
    assert isinstance(data, dict)
    if response.status_code == 200:
        if preview:
            assert isinstance(data["ok"], bool)
            assert (isinstance(data.get("mathml"), str) and data["mathml"].startswith("<math")) if data["ok"] \
                else isinstance(data.get("message"), str)
        else:
            assert data["verdict"] in ("proven", "refuted", "undecided", "unparsed", "error"), data
    else:
        assert 400 <= response.status_code < 500
        assert isinstance(data.get("error"), str) and data["error"], data
    _security_headers(response)
    return data


# -- 1. the student page -------------------------------------------------------------------------------------

def test_student_page_network_mode(net):
    page = net.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert '<html lang="en">' in text and 'id="network"' in text and 'id="question"' not in text
    for name in SYMBOLIC:
        assert f'<option value="{name}"' in text
    for name in STACK:
        assert f'<option value="{name}"' not in text
    assert '<script src="/static/derive.js"></script>' in text
    assert 'id="result"' not in text  # nothing checked yet
    zh = net.get("/?lang=zh")
    assert zh.status_code == 200 and '<html lang="zh">' in zh.text
    assert "检验反向传播公式" in zh.text and "你的公式" in zh.text
    other = net.get("/?lang=xx")  # an unknown language: English
    assert '<html lang="en">' in other.text and "Your formula" in other.text


def test_student_page_assignment_mode(served, assignment):
    text = served.get("/").text
    assert html.escape(assignment.title) in text
    assert 'id="question"' in text and 'id="network"' not in text and 'id="student"' in text
    for question in assignment.questions:
        assert f'<option value="{question.id}"' in text
    assert "题目" in served.get("/?lang=zh").text


def test_form_post_refuted_shows_everything(net):
    response = net.post("/", data={"network": "two-two-two", "kind": "gradient", "wrt": "w5", "syntax": "latex",
                                   "formula": SIGN})
    assert response.status_code == 200
    text = response.text
    assert '<span id="verdict">refuted</span>' in text
    assert 'id="counterexample"' in text and "<td>w5</td>" in text  # the point's values, by name
    assert '<span id="diagnosis">sign flipped</span>' in text
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML"' in text  # the preview, from the parse tree
    assert 'id="correct"' in text  # show_correct is on by default
    assert html.escape(SIGN) in text  # the form keeps the formula (escaped)
    zh = net.post("/?lang=zh", data={"network": "two-two-two", "kind": "gradient", "wrt": "w5", "formula": SIGN})
    assert '<span id="verdict">已反驳</span>' in zh.text and "反例" in zh.text


def test_form_post_proven_and_problem(net):
    text = net.post("/", data={**W5, "kind": "gradient", "syntax": "sympy", "formula": RIGHT_SYMPY}).text
    assert '<span id="verdict">proven</span>' in text and 'id="counterexample"' not in text
    assert 'id="correct"' not in text  # proven: nothing to correct
    empty = net.post("/", data={**W5, "kind": "gradient", "formula": ""})
    assert empty.status_code == 400 and 'id="problem"' in empty.text and 'id="result"' not in empty.text
    unread = net.post("/", data={**W5, "kind": "gradient", "formula": "<b>x</b>"})
    assert unread.status_code == 200 and '<span id="verdict">not read</span>' in unread.text
    assert "<b>x</b>" not in unread.text and "&lt;b&gt;x&lt;/b&gt;" in unread.text  # autoescaped


def test_form_post_assignment_question(served):
    text = served.post("/", data={"question": "q1", "student": "form-student", "formula": SIGN}).text
    assert '<span id="verdict">refuted</span>' in text and '<span id="diagnosis">sign flipped</span>' in text
    assert 'value="form-student"' in text and '<option value="q1" selected>' in text


def test_show_correct_false_in_config(tmp_path):
    with _client(Config(db=tmp_path / "s.sqlite", jobs=1, budget=1.0, rate=0, show_correct=False)) as client:
        data = client.post("/api/check", json={**W5, "formula": SIGN}).json()
        assert data["verdict"] == "refuted" and data["diagnosis"] == "sign"
        assert "expected" not in data and "expected_latex" not in data
        assert "corrected" not in data["diagnosis_detail"]
        text = client.post("/", data={**W5, "kind": "gradient", "formula": SIGN}).text
        assert '<span id="verdict">refuted</span>' in text and 'id="correct"' not in text
        assert "sign flipped" in text  # the mistake is still named


def test_show_correct_false_in_assignment(tmp_path):
    path = tmp_path / "assignment.toml"
    source = ASSIGNMENT.read_text(encoding="utf-8")
    assert "show_correct = true" in source
    path.write_text(source.replace("show_correct = true", "show_correct = false"), encoding="utf-8")
    hidden = load_assignment(path)
    assert hidden.show_correct is False
    with _client(Config(assignment=hidden, db=tmp_path / "s.sqlite", jobs=1, budget=1.0, rate=0)) as client:
        data = client.post("/api/check", json={"question": "q1", "student": "x", "formula": SIGN}).json()
        assert data["verdict"] == "refuted" and data["diagnosis"] == "sign"
        assert "expected" not in data and "expected_latex" not in data
        assert "corrected" not in (data.get("diagnosis_detail") or {})
        # the formula the diagnosis would correct to is not given away anywhere in the JSON
        assert "outh1*outo1*(1 - outo1)*(outo1 - y1)" not in json.dumps(data)
        text = client.post("/", data={"question": "q1", "student": "x", "formula": SIGN}).text
        assert '<span id="verdict">refuted</span>' in text and 'id="correct"' not in text


# -- 2. /api/check in network mode = one claim of `derive check --json` ------------------------------------------

CLAIMS = [  # (request, the same claim as a [[claim]] table)
    ({**W5, "formula": RIGHT, "syntax": "latex"},
     {"kind": "gradient", "wrt": "w5", "syntax": "latex", "formula": RIGHT}),
    ({**W5, "formula": SIGN},
     {"kind": "gradient", "wrt": "w5", "syntax": "latex", "formula": SIGN}),
    ({**W5, "formula": RIGHT_SYMPY, "syntax": "sympy"},
     {"kind": "gradient", "wrt": "w5", "syntax": "sympy", "formula": RIGHT_SYMPY}),
    ({**W5, "kind": "update", "rate": "eta", "formula": "-eta*" + RIGHT_SYMPY, "syntax": "sympy"},
     {"kind": "update", "wrt": "w5", "rate": "eta", "syntax": "sympy", "formula": "-eta*" + RIGHT_SYMPY}),
    ({**W5, "kind": "update", "rate": "eta", "formula": "eta*" + RIGHT_SYMPY, "syntax": "sympy"},
     {"kind": "update", "wrt": "w5", "rate": "eta", "syntax": "sympy", "formula": "eta*" + RIGHT_SYMPY}),
    ({"network": "two-two-two", "kind": "identity", "lhs": "outo1", "formula": "1/(1 + exp(-neto1))",
      "syntax": "sympy"},
     {"kind": "identity", "lhs": "outo1", "syntax": "sympy", "rhs": "1/(1 + exp(-neto1))"}),
    ({"network": "two-two-two", "kind": "identity", "formula": r"out_{o1} = \sigma(net_{o1})"},
     {"kind": "identity", "syntax": "latex", "formula": r"out_{o1} = \sigma(net_{o1})"}),
    ({"network": "two-two-two", "kind": "identity", "formula": "outo1 = 2*neto1", "syntax": "sympy"},
     {"kind": "identity", "syntax": "sympy", "formula": "outo1 = 2*neto1"}),
]


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string for these (ASCII, escapes \\ and ")


@pytest.fixture(scope="module")
def claims_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("claims") / "claims.toml"
    lines = ['network = "two-two-two"', ""]
    for number, (_, entry) in enumerate(CLAIMS):
        lines.append("[[claim]]")
        lines.append(f'name = "c{number}"')
        lines += [f"{key} = {_toml_string(value)}" for key, value in entry.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_api_check_matches_claims_check(net, claims_file):
    expected = check_claims(load_claims(claims_file), budget=1.0).to_dict()["claims"]
    assert len(expected) == len(CLAIMS)
    verdicts = []
    for (request, _), want in zip(CLAIMS, expected):
        response = net.post("/api/check", json=request)
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        got = response.json()
        assert set(got) - {"mathml", "expected_mathml"} == set(want), (request, set(got) ^ set(want))
        if got["verdict"] == "refuted":  # the correct formula, rendered too
            _mathml_only(got["expected_mathml"])
        assert got["mathml"].startswith('<math xmlns="http://www.w3.org/1998/Math/MathML"')
        for key in ("verdict", "diagnosis", "kind", "wrt", "of", "syntax", "formula", "lhs", "rhs", "expected"):
            assert got[key] == want[key], (request, key, got[key], want[key])
        if want["verdict"] == "refuted":
            # (the point's names are the file's vocabulary: a claims file with an update claim adds eta)
            assert set(got["counterexample"]) == set(want["counterexample"])
            assert set(got["counterexample"]["point"]) - {"eta"} == set(want["counterexample"]["point"]) - {"eta"}
        verdicts.append(got["verdict"])
    assert verdicts == ["proven", "refuted", "proven", "proven", "refuted", "proven", "proven", "refuted"]


def test_api_check_matches_cli_json(net, claims_file):
    run = subprocess.run([sys.executable, "-m", "derive", "check", str(claims_file), "--json", "--budget", "1"],
                         capture_output=True, text=True, timeout=120, cwd=claims_file.parent,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode in (0, 1), run.stderr
    report = json.loads(run.stdout)
    for (request, _), want in zip(CLAIMS, report["claims"]):
        got = net.post("/api/check", json=request).json()
        assert set(got) - {"mathml", "expected_mathml"} == set(want)
        assert (got["verdict"], got["diagnosis"]) == (want["verdict"], want["diagnosis"])


# -- 3. assignment mode: records, the teacher pages, the gradebook ------------------------------------------------

def test_assignment_records_and_teacher(served, assignment):
    db = served.db
    before = sqlite3.connect(db).execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
    posts = [("ada", "q1", RIGHT, "proven"), ("ada", "q2", r"-(out_{o1} - y_1) out_{o1} (1 - out_{o1})", "refuted"),
             ("bob", "q1", SIGN, "refuted"), ("bob", "q1", RIGHT, "proven"),  # bob's latest answer counts
             ("", "q4", "out_{o1} - y_1", "proven")]  # no student: logged, not graded
    for student, question, formula, verdict in posts:
        data = served.post("/api/check", json={"question": question, "student": student, "formula": formula}).json()
        assert data["verdict"] == verdict, (question, formula, data)
    served.post("/api/check", json={**W5, "student": "ada", "formula": RIGHT})  # a network check: logged only

    connection = sqlite3.connect(db)
    rows = connection.execute("SELECT student, target, formula, syntax, verdict, diagnosis FROM submissions "
                              "ORDER BY id").fetchall()[before:]
    assert [r[:2] for r in rows] == [("ada", "q1"), ("ada", "q2"), ("bob", "q1"), ("bob", "q1"), ("", "q4"),
                                     ("ada", "two-two-two")]
    assert rows[1][4:] == ("refuted", "sign") and rows[0][3] == "latex"
    answers = dict(((s, q), a) for s, q, a in connection.execute("SELECT student, question, answer FROM answers"))
    assert answers[("ada", "q1")] == RIGHT and answers[("bob", "q1")] == RIGHT
    assert ("", "q4") not in answers and not any(q == "two-two-two" for _, q in answers)
    outcomes = {key: json.loads(outcome)["status"]
                for key, outcome in connection.execute("SELECT key, outcome FROM results")}
    for (key,) in connection.execute("SELECT key FROM answers"):
        assert key in outcomes  # every answer is graded
    assert sorted(outcomes.values()).count("refuted") >= 2
    meta = dict(connection.execute("SELECT key, value FROM meta"))
    assert meta["assignment"] == assignment.source.digest and meta["served"] == "1"
    connection.close()

    # the teacher pages: 401 without the token or with a wrong one
    for url, headers in [("/teacher", {}), ("/teacher?token=wrong", {}), ("/teacher?token=", {}),
                         ("/teacher", {"Authorization": "Bearer wrong"}), ("/teacher", {"Authorization": TOKEN}),
                         ("/teacher?token=" + TOKEN[:-1], {}), ("/teacher?token=" + TOKEN + "x", {}),
                         ("/teacher/gradebook.csv", {}), ("/teacher/gradebook.csv?token=nope", {})]:
        response = served.get(url, headers=headers)
        assert response.status_code == 401, url
        assert "error" in response.json()
        _security_headers(response)
    by_query = served.get(f"/teacher?token={TOKEN}")
    by_header = served.get("/teacher", headers={"Authorization": f"Bearer {TOKEN}"})
    for response in (by_query, by_header):
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        text = response.text
        assert 'id="gradebook"' in text and 'id="summary"' in text and 'id="submissions"' in text
        assert "<td>ada</td>" in text and "<td>bob</td>" in text
        assert html.escape(assignment.title) in text
    assert "sign" in by_query.text  # the class summary counts the diagnosis

    csv_response = served.get(f"/teacher/gradebook.csv?token={TOKEN}")
    assert csv_response.status_code == 200 and csv_response.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_response.headers["content-disposition"]
    _security_headers(csv_response)
    store = Store(db)
    try:
        want = gradebook_csv(gradebook(assignment, store))
    finally:
        store.close()
    assert csv_response.text == want
    assert served.get("/teacher/gradebook.csv", headers={"Authorization": f"Bearer {TOKEN}"}).text == want
    lines = {line.split(",")[0]: line for line in want.splitlines()}
    assert lines["student"] == "student,q1,q2,q3,q4,total"
    assert lines["ada"] == "ada,2,1,0,0,3"  # q1 right (2), q2 sign flipped: half of 2 points
    assert lines["bob"] == "bob,2,0,0,0,2"


def test_teacher_pages_without_a_token_configured(tmp_path, assignment):
    with _client(Config(assignment=assignment, db=tmp_path / "s.sqlite", token="", jobs=1, rate=0)) as client:
        assert client.get("/teacher?token=").status_code == 401
        assert client.get("/teacher", headers={"Authorization": "Bearer "}).status_code == 401
        assert client.get("/teacher/gradebook.csv?token=").status_code == 401


def test_gradebook_csv_without_assignment(net):
    response = net.get(f"/teacher/gradebook.csv?token={TOKEN}")
    assert response.status_code == 404 and "error" in response.json()
    page = net.get(f"/teacher?token={TOKEN}")
    assert page.status_code == 200 and 'id="submissions"' in page.text and 'id="gradebook"' not in page.text


def test_token_compared_in_constant_time():
    source = inspect.getsource(Server.teacher_allowed)
    assert "hmac.compare_digest(" in source and "==" not in source


# -- 4. /api/networks -----------------------------------------------------------------------------------------

def test_api_networks(net, served, assignment):
    data = net.get("/api/networks").json()
    names = [n["name"] for n in data["networks"]]
    assert names == SYMBOLIC and "two-two-two" in names
    assert "digits-batchnorm" not in names and "lookup-attention" not in names
    assert "assignment" not in data
    two = next(n for n in data["networks"] if n["name"] == "two-two-two")
    assert "w5" in two["parameters"] and two["cost"] and two["kind"] != "stack"
    served_data = served.get("/api/networks").json()
    assert [n["name"] for n in served_data["networks"]] == SYMBOLIC
    questions = served_data["assignment"]["questions"]
    assert [q["id"] for q in questions] == ["q1", "q2", "q3", "q4"] == [q.id for q in assignment.questions]
    assert questions[0]["points"] == 2 and questions[0]["wrt"] == "w5"
    assert served_data["assignment"]["title"] == assignment.title


# -- 5. /api/preview ------------------------------------------------------------------------------------------

def _mathml_only(mathml: str) -> None:
    assert mathml.startswith('<math xmlns="http://www.w3.org/1998/Math/MathML"') and mathml.endswith("</math>")
    for closing, tag, attributes in re.findall(r"<(/?)([A-Za-z][\w:-]*)([^>]*)>", mathml):
        assert tag in MATHML_TAGS, tag
        for name in re.findall(r"([\w:-]+)\s*=", attributes):
            assert name in MATHML_ATTRIBUTES and not name.lower().startswith("on"), name
    lowered = mathml.lower()
    assert "<script" not in lowered and "onerror" not in lowered and "javascript:" not in lowered


@pytest.mark.parametrize("request_body", [
    {**W5, "formula": RIGHT},
    {**W5, "formula": RIGHT_SYMPY, "syntax": "sympy"},
    {**W5, "formula": r"\sigma(net_{o1}) \cdot \frac{x_1}{\sqrt{w_1^2 + 1}} - e^{-w_2}"},
    {"network": "two-two-two", "kind": "identity", "formula": r"out_{o1} = \sigma(net_{o1})"},
    {"question": "q3", "formula": "((outo1 - y1)*outo1*(1 - outo1)*w5)*outh1*(1 - outh1)*x1", "syntax": "sympy"},
])
def test_preview_good(served, request_body):
    response = served.post("/api/preview", json=request_body)
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] is True and isinstance(data["read_as"], str) and " = " in data["read_as"]
    _mathml_only(data["mathml"])
    if "wrt" in request_body or "question" in request_body:
        assert "<mo>∂</mo>" in data["mathml"]  # the left side is ∂E/∂w


def test_preview_messages_quote_names_only(served):
    """A message quotes an unknown name (letters and digits, never markup); the page shows it as text
    (derive.js sets textContent), and the JSON is served as application/json with nosniff."""
    data = served.post("/api/preview", json={**W5, "formula": r"\operatorname{onerror}(x_1)"}).json()
    assert data["ok"] is False and "onerror" in data["message"] and "<" not in data["message"]
    script = (ROOT / "derive" / "serve" / "static" / "derive.js").read_text(encoding="utf-8")
    assert "preview.textContent = answer.message" in script


def test_preview_bad_and_hostile_names(served):
    bad = served.post("/api/preview", json={**W5, "formula": "x1 +"}).json()
    assert bad["ok"] is False and bad["message"] and "mathml" not in bad
    unknown = served.post("/api/preview", json={**W5, "formula": "nosuchname + 1", "syntax": "sympy"}).json()
    assert unknown["ok"] is False and "nosuchname" in unknown["message"]
    hostile = ["<script>alert(1)</script>", "x_{<img src=x onerror=alert(1)>}", "x1 + <script>alert(1)</script>",
               r"\mathrm{<script>alert(1)</script>}", r"\text{<img src=x onerror=alert(1)>}",
               "x_{1} + \\unknowncommand{<script>}", "x1 + y1 # <script>", "x_{1}^{<svg onload=alert(1)>}",
               r"\frac{x_1}{<img src=x onerror=alert(1)>}"]
    for formula in hostile:
        for base in (W5, {"question": "q1"}):
            for syntax in ("latex", "sympy"):
                response = served.post("/api/preview", json={**base, "formula": formula, "syntax": syntax})
                data = _json_error_or_verdict(response, preview=True)
                lowered = response.text.lower()
                assert "<script" not in lowered and "onerror" not in lowered and "onload" not in lowered, \
                    (formula, response.text)
                assert not re.search(r"<[A-Za-z/!?]", data.get("message") or ""), data  # at most a lone '<' quoted
                if data.get("ok"):
                    _mathml_only(data["mathml"])


# -- 6. limits ------------------------------------------------------------------------------------------------

def test_body_over_64k_is_refused(net):
    big = json.dumps({**W5, "formula": "x1", "pad": "a" * (MAX_BODY + 10)}).encode()
    for path in ("/api/check", "/api/preview", "/"):
        response = net.post(path, content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413 and "error" in response.json(), path
        _security_headers(response)

        def chunks():
            for _ in range(20):
                yield b"a" * 8192  # 160 KiB in all, with no Content-Length

        streamed = net.post(path, content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in streamed.request.headers
        assert streamed.request.headers.get("transfer-encoding") == "chunked"
        assert streamed.status_code == 413 and "error" in streamed.json(), path
    lying = net.post("/api/check", content=b"{}", headers={"content-length": "99999999"})
    assert lying.status_code in (400, 413)
    # just under the limit is read
    fits = json.dumps({**W5, "formula": "x1", "pad": "a" * (MAX_BODY - 200)}).encode()
    assert len(fits) <= MAX_BODY
    assert net.post("/api/preview", content=fits).json()["ok"] is True


def test_rate_limit(tmp_path):
    with _client(Config(db=tmp_path / "s.sqlite", jobs=1, budget=1.0, rate=5)) as client:
        for _ in range(5):
            assert client.get("/api/networks").status_code == 200
        limited = client.post("/api/check", json={**W5, "formula": RIGHT})
        assert limited.status_code == 429 and "error" in limited.json()
        _security_headers(limited)
        assert client.get("/").status_code == 429
        for _ in range(10):
            health = client.get("/health")
            assert health.status_code == 200 and health.text == "ok"
            _security_headers(health)
        # without --trust-proxy, X-Forwarded-For is the client's to write: it does not make a new client
        assert client.get("/api/networks", headers={"X-Forwarded-For": "10.0.0.9"}).status_code == 429


def test_rate_limit_behind_a_proxy(tmp_path):
    with _client(Config(db=tmp_path / "s.sqlite", jobs=1, budget=1.0, rate=2, trust_proxy=True)) as client:
        first = {"X-Forwarded-For": "203.0.113.1, 10.0.0.1"}
        second = {"X-Forwarded-For": "203.0.113.2"}
        assert [client.get("/api/networks", headers=first).status_code for _ in range(3)] == [200, 200, 429]
        assert client.get("/api/networks", headers={"X-Forwarded-For": "203.0.113.1, 10.0.0.7"}).status_code == 429
        assert [client.get("/api/networks", headers=second).status_code for _ in range(3)] == [200, 200, 429]
        assert client.get("/health", headers=first).status_code == 200


# -- 7. headers on every response -----------------------------------------------------------------------------

def test_security_headers_everywhere(net, served):
    responses = [net.get("/"), net.get("/?lang=zh"), net.post("/", data={**W5, "kind": "gradient", "formula": RIGHT}),
                 net.get("/api/networks"), net.post("/api/check", json={**W5, "formula": RIGHT}),
                 net.post("/api/check", content=b"not json"), net.post("/api/preview", json={**W5, "formula": "x1"}),
                 net.get("/static/derive.js"), net.get("/static/derive.css"), net.get("/static/nope.js"),
                 net.get("/no/such/page"), net.get("/api/check"), net.get("/health"),
                 served.get(f"/teacher?token={TOKEN}"), served.get(f"/teacher/gradebook.csv?token={TOKEN}"),
                 served.get("/teacher")]
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 200, 200, 400, 200, 200, 200, 404, 404, 405, 200, 200, 200, 401]
    for response in responses:
        _security_headers(response)
        assert response.headers.get("x-frame-options") == "DENY"
        assert response.headers.get("referrer-policy") == "no-referrer"
    script = responses[7]
    assert "javascript" in script.headers["content-type"] and "/api/preview" in script.text


# -- 8. hostile input -----------------------------------------------------------------------------------------

HOSTILE_FORMULAS = [
    "", "   ", "a" * 5001, "x1 + " * 999 + "1", "__import__('os').system('id')", "x1.__class__",
    "().__class__.__bases__[0].__subclasses__()", r"\input{/etc/passwd}", r"\write18{id}",
    r"\immediate\write18{rm -rf /}", "(" * 3000 + "x1" + ")" * 3000, "(" * 2499 + "x1" + ")" * 2499,
    "{" * 2499 + "x1" + "}" * 2499, "-" * 4999 + "x1", "x1**99999999", "x_1^{99999999}", "2**2**2**2**2**2",
    "exp(exp(exp(exp(x1))))", r"e^{e^{e^{e^{x_1}}}}", "x1\x00+1", "\x00", "1e999999", "9" * 4000, "1/0", "0/0",
    "x1 = x2 = x3", "lambda: 1", "x1; import os", "\u202ex1", "x\u0301", "𝑥1", "D(E, w5)", "Derivative(E, w5)",
]
HOSTILE_BODIES = [  # (raw bytes): non-JSON, JSON that is not an object, broken encodings
    b"", b"not json", b"{", b"null", b"[]", b"1", b'"x1"', b"true", b"[" * 10000 + b"]" * 10000,
    b'{"formula": ' + b"[" * 10000 + b"]" * 10000 + b"}", b'{"formula": "x1\xed\xa0\x80"}', b"\xff\xfe{}",
    b'{"formula": "x1", "network": "two-two-two", "wrt": "w5", "rate": 1e999999}',
    b'{"formula": 1e400, "network": "two-two-two", "wrt": "w5"}', b'{"a": NaN}', b'{"formula": "x1"' + b" " * 1000,
]


def _hostile_fields(questions: bool):
    """Every field with every wrong type, and names given as paths (the question's fields: with an assignment)."""
    values = [None, 0, -1, 10 ** 30, 1.5, 1e308, True, [], ["x"], {}, {"a": 1}, "", " ", "../../etc/passwd",
              "/etc/passwd", "two-two-two.toml", "nope", "x" * 201, "\x00"]
    if not questions:
        for field in ("network", "wrt", "kind", "syntax", "of", "rate", "lhs", "formula", "student"):
            for value in values:
                yield {**W5, "formula": RIGHT, field: value}
        return
    for value in [None, 0, 1.5, True, "", "q99", "../q1", "Q1", "q1\x00"]:
        yield {"question": value, "student": "mallory", "formula": RIGHT}
    for value in [0, 1.5, True, [], {}, "x" * 10_000, "a\tb\nc", "\u0000bad"]:
        yield {"question": "q1", "student": value, "formula": RIGHT}


def test_hostile_corpus(net, served):
    start = time.perf_counter()
    count = 0
    for client in (net, served):
        bases = [W5, {"question": "q1", "student": "mallory"}]
        for base in bases:
            for formula in HOSTILE_FORMULAS:
                for syntax in ("latex", "sympy"):
                    body = {**base, "formula": formula, "syntax": syntax}
                    _json_error_or_verdict(client.post("/api/check", json=body))
                    data = _json_error_or_verdict(client.post("/api/preview", json=body), preview=True)
                    if data.get("ok"):
                        _mathml_only(data["mathml"])
                    count += 2
        for raw in HOSTILE_BODIES:
            for path in ("/api/check", "/api/preview"):
                response = client.post(path, content=raw, headers={"content-type": "application/json"})
                assert response.status_code < 500, (raw[:60], response.status_code, response.text[:200])
                data = response.json()
                assert data.get("error") or data.get("ok") is False or data.get("verdict"), data
                count += 1
        for body in _hostile_fields(questions=client is served):
            response = client.post("/api/check", json=body)
            _json_error_or_verdict(response)
            _json_error_or_verdict(client.post("/api/preview", json=body), preview=True)
            if "network" in body and body["network"] != "two-two-two":
                assert response.status_code == 400 and "network" in response.json()["error"]
            count += 2
        for network in ("../../etc/passwd", "/etc/passwd", "two-two-two.toml", "nope", "Two-Two-Two", ""):
            response = client.post("/api/check", json={"network": network, "wrt": "w5", "formula": "x1"})
            assert response.status_code == 400 and "built-in network" in response.json()["error"]
        for network in STACK:  # a stack network is built in, but has no per-example graph: not read
            response = client.post("/api/check", json={"network": network, "wrt": "w5", "formula": "x1"})
            assert response.status_code == 200 and response.json()["verdict"] == "unparsed"
        form = client.post("/", content=b"formula=%00%ff%ed%a0%80&network=../../etc/passwd&syntax=x&&&=",
                           headers={"content-type": "application/x-www-form-urlencoded"})
        assert form.status_code in (200, 400) and form.headers["content-type"].startswith("text/html")
        count += 1
    seconds = time.perf_counter() - start
    print(f"hostile corpus: {count} requests in {seconds:.1f} s")
    assert seconds < 60, seconds  # budget=1.0: bounded
    # the server still answers, and still right
    for client in (net, served):
        assert client.get("/health").text == "ok"
        assert client.post("/api/check", json={**W5, "formula": RIGHT}).json()["verdict"] == "proven"
    served_data = served.post("/api/check", json={"question": "q1", "student": "after", "formula": SIGN}).json()
    assert served_data["verdict"] == "refuted" and served_data["diagnosis"] == "sign"


def test_hostile_path_is_never_read(net):
    """A network given as a path is refused by name: nothing of the file comes back."""
    for network in ("/etc/passwd", "../../../../etc/passwd", str(ROOT / "examples" / "class" / "assignment.toml")):
        for path in ("/api/check", "/api/preview"):
            response = net.post(path, json={"network": network, "wrt": "w5", "formula": "x1"})
            assert "root:" not in response.text and "Homework" not in response.text


# Bugs found while writing these tests (each test fails until its bug is fixed):

def test_a_huge_json_integer_is_a_400_not_a_500(net):
    """routes._json_body catches JSONDecodeError but not the plain ValueError json.loads raises for an
    integer literal over sys.get_int_max_str_digits() (4300) digits: the request gets a 500."""
    body = b'{"network": "two-two-two", "wrt": "w5", "formula": "x1", "rate": ' + b"1" * 5000 + b"}"
    for path in ("/api/check", "/api/preview"):
        response = net.post(path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, (path, response.status_code, response.text[:100])
        assert "error" in response.json()


def test_an_unhashable_question_is_a_400_not_a_500(served):
    """A JSON list or object as "question" is refused (it once reached a set membership test: TypeError, 500)."""
    for question in (["q1"], {"q": 1}):
        for path in ("/api/check", "/api/preview"):
            response = served.post(path, json={"question": question, "student": "x", "formula": RIGHT})
            assert response.status_code < 500, (path, question, response.status_code)
            data = response.json()
            assert data.get("error") or data.get("ok") is False


def test_a_lone_surrogate_in_a_formula_is_refused_not_a_500(net, served):
    """A formula with a lone surrogate (the JSON escape \\ud800) is not text: SQLite could not store it. It is
    refused with 400 (network and question modes); the preview says why."""
    for client, body in ((net, b'{"network": "two-two-two", "wrt": "w5", "formula": "x1\\ud800"}'),
                         (served, b'{"question": "q1", "student": "x", "formula": "x1\\ud800"}')):
        preview = client.post("/api/preview", content=body, headers={"content-type": "application/json"})
        assert preview.status_code == 200 and preview.json()["ok"] is False
        response = client.post("/api/check", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, (response.status_code, response.text[:100])
        assert "surrogate" in response.json()["error"]



def test_the_network_list_is_built_once_not_on_every_request(net, monkeypatch):
    """Loading every built-in network takes 0.3-0.8 s, during which the event loop answers nothing: the list
    is built once when the server starts, not on each GET /, POST / or GET /api/networks (counted, not timed)."""
    import derive.serve.app as app_module

    loads = []

    def counting_load(name, *args, **kwargs):
        loads.append(name)
        return load(name, *args, **kwargs)

    monkeypatch.setattr(app_module, "load", counting_load)
    begin = time.perf_counter()
    for _ in range(3):
        assert net.get("/api/networks").status_code == 200
    print(f"3 x GET /api/networks: {time.perf_counter() - begin:.2f} s, {len(loads)} network loads")
    assert len(loads) <= len(builtin_names()), f"{len(loads)} loads for 3 requests"

# -- 9. a slow formula does not block the others -----------------------------------------------------------------

SUM = "(x1 + x2 + w1 + w2 + w3 + w4 + b1 + b2)"
SQUARES = "(" + " + ".join(
    [f"{a}**2" for a in ("x1", "x2", "w1", "w2", "w3", "w4", "b1", "b2")]
    + [f"2*{a}*{b}" for i, a in enumerate(("x1", "x2", "w1", "w2", "w3", "w4", "b1", "b2"))
       for b in ("x1", "x2", "w1", "w2", "w3", "w4", "b1", "b2")[i + 1:]]) + ")"
SLOW = f"{RIGHT_SYMPY} + ({SUM}**64 - {SQUARES}**32)"  # right, but proving it means expanding a 64th power


def test_slow_formula_does_not_block(tmp_path):
    budget = 3.0
    with _client(Config(db=tmp_path / "s.sqlite", jobs=2, budget=budget, rate=0)) as client:
        client.post("/api/check", json={**W5, "formula": RIGHT})  # the workers are up
        slow = {}

        def run_slow():
            begin = time.perf_counter()
            slow["response"] = client.post("/api/check", json={**W5, "formula": SLOW, "syntax": "sympy"})
            slow["seconds"] = time.perf_counter() - begin

        thread = threading.Thread(target=run_slow)
        thread.start()
        time.sleep(0.5)
        begin = time.perf_counter()
        fast = client.post("/api/check", json={**W5, "formula": SIGN}, headers={"X-Forwarded-For": "10.1.1.1"})
        fast_seconds = time.perf_counter() - begin
        health_begin = time.perf_counter()
        assert client.get("/health").status_code == 200
        health_seconds = time.perf_counter() - health_begin
        still_running = thread.is_alive()
        thread.join(timeout=60)
        assert not thread.is_alive()
        print(f"slow check {slow['seconds']:.2f} s; a simple one meanwhile {fast_seconds:.2f} s")
        assert fast.json()["verdict"] == "refuted" and fast_seconds < 3.0
        assert health_seconds < 1.0
        assert still_running, "the slow check ended before the simple one: not a test of concurrency"
        data = slow["response"].json()
        assert slow["response"].status_code == 200 and data["verdict"] == "undecided", data
        assert slow["seconds"] >= budget * 0.8
        assert slow["seconds"] < (1 + 6) * budget + 5.0 + 2.0  # checking.deadline(budget), and a margin


# -- 11. the CLI ----------------------------------------------------------------------------------------------

def test_cli_serve_help_and_refusals(tmp_path):
    short = tmp_path / "short.token"
    short.write_text("tooshort\n", encoding="utf-8")
    runs = {  # three processes at once: each spends its time importing
        "help": ["serve", "--help"],
        "short": ["serve", "--token-file", str(short), "--db", str(tmp_path / "a.sqlite")],
        "port": ["serve", "--port", "0", "--db", str(tmp_path / "b.sqlite")],
    }
    processes = {name: subprocess.Popen([sys.executable, "-m", "derive", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                        env={**os.environ, "PYTHONPATH": str(ROOT)})
                 for name, args in runs.items()}
    done = {name: (p.communicate(timeout=60), p.returncode) for name, p in processes.items()}
    (out, _), code = done["help"]
    assert code == 0 and "/api/check" in out and "--token-file" in out
    (_, err), code = done["short"]
    assert code == 2 and "16" in err
    (_, err), code = done["port"]
    assert code == 2 and "--port" in err
    assert not list(tmp_path.glob("*.sqlite"))  # refused before anything was opened
