"""The server's routes: the student page, the JSON API, the teacher pages."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from derive.serve.app import body_of, json_error, parse_form
from derive.serve.checking import checked_request

MAX_STUDENT = 100


def _server(request: Request):
    return request.app.state.server


async def _json_body(request: Request):
    body = await body_of(request)
    if body is None:
        return None, json_error("the request body is too large", 413)
    try:
        return json.loads(body.decode("utf-8")), None
    except (ValueError, RecursionError):  # not UTF-8, not JSON, an integer past Python's 4,300 digits
        return None, json_error("the body must be JSON (UTF-8)")


def _student(value) -> str:
    text = value if isinstance(value, str) else ""
    text = " ".join(text.split())[:MAX_STUDENT]
    return text if text.isprintable() else ""


async def api_networks(request: Request) -> Response:
    server = _server(request)
    data = {"networks": server.networks}
    if server.config.assignment is not None:
        data["assignment"] = {"title": server.config.assignment.title, "questions": [
            {"id": q.id, "points": q.points, "prompt": q.prompt, "kind": q.kind, **q.claim}
            for q in server.config.assignment.questions]}
    return JSONResponse(data)


async def _request_of(request: Request):
    """(server, body, the checked request, None), or with a refusal instead: a Response, or the reason."""
    server = _server(request)
    body, error = await _json_body(request)
    if error is not None:
        return server, None, None, error
    try:
        return server, body, checked_request(body, server.questions), None
    except ValueError as exc:
        return server, body, None, str(exc)


async def api_check(request: Request) -> Response:
    server, body, checked, refused = await _request_of(request)
    if refused is not None:
        return refused if isinstance(refused, Response) else json_error(refused)
    result = await server.check(checked)
    if server.records is not None:
        server.records.record(_student(body.get("student")), checked, result)
    return JSONResponse(result)


async def api_preview(request: Request) -> Response:
    server, _body, checked, refused = await _request_of(request)
    if refused is not None:
        return refused if isinstance(refused, Response) else JSONResponse({"ok": False, "message": refused})
    return JSONResponse(await server.preview(checked))


async def student_page(request: Request) -> Response:
    server = _server(request)
    form, result, preview, problem = {}, None, None, None
    if request.method == "POST":
        body = await body_of(request)
        if body is None:
            return json_error("the request body is too large", 413)
        form = parse_form(body)
        try:
            checked = checked_request({k: v for k, v in form.items() if v != "" or k == "formula"}, server.questions)
        except ValueError as exc:
            problem = str(exc)
        else:
            result = await server.check(checked)
            preview = result.get("mathml")
            if server.records is not None:
                server.records.record(_student(form.get("student")), checked, result)
    assignment = server.config.assignment
    return server.page("student.html", request, networks=server.networks, assignment=assignment, form=form,
                       result=result, preview=preview, problem=problem, status=400 if problem else 200)


async def teacher_page(request: Request) -> Response:
    server = _server(request)
    if not server.teacher_allowed(request):
        return json_error("the teacher pages need the token printed when the server started", 401)
    book = summary = None
    if server.records is not None and server.config.assignment is not None:
        from derive.grade.outputs import gradebook, summary as class_summary

        book = gradebook(server.config.assignment, server.records.store)
        summary = class_summary(book)
    submissions = server.records.submissions() if server.records is not None else []
    return server.page("teacher.html", request, book=book, summary=summary, submissions=submissions,
                       token=request.query_params.get("token", ""))


async def teacher_gradebook(request: Request) -> Response:
    server = _server(request)
    if not server.teacher_allowed(request):
        return json_error("the teacher pages need the token printed when the server started", 401)
    if server.records is None or server.config.assignment is None:
        return json_error("no assignment is served: there is no gradebook", 404)
    from derive.grade.outputs import gradebook, gradebook_csv

    text = gradebook_csv(gradebook(server.config.assignment, server.records.store))
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="gradebook.csv"'})
