"""`derive serve`: the student page, the JSON API and the teacher pages, as one Starlette application.

Starlette (served by uvicorn) because the application is a handful of routes, a middleware and
Jinja templates, all of which Starlette has without the validation and documentation layers of
FastAPI; derive checks its request bodies itself (checking.checked_request).

Safety under strangers' input: bodies above MAX_BODY bytes are refused (413) before they are read
whole; each client gets RATE requests a minute (429 past it); a formula is read and decided only in
a worker process with a memory cap, and the server waits at most checking.deadline(budget) for it;
no request names a file; templates autoescape; every response carries a Content-Security-Policy
that allows this server's own script and style only; the teacher token is compared in constant time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import hmac
import time
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import FileSystemLoader, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from derive.grade.assignment import Assignment
from derive.graph.spec import builtin_names, load
from derive.serve import checking
from derive.serve.labels import labels
from derive.serve.records import Records

HERE = Path(__file__).parent
MAX_BODY = 64 * 1024
RATE = 60  # requests a minute per client
MAX_DECIDED = 20_000  # results kept for requests seen again
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class Config:
    assignment: Assignment | None = None
    db: Path | None = None
    token: str = ""
    jobs: int = 2
    budget: float = 2.0
    rate: int = RATE  # 0: no limit
    trust_proxy: bool = False  # the client is X-Forwarded-For's first address (behind a reverse proxy)
    show_correct: bool = True


@dataclass
class RateLimiter:
    per_minute: int
    buckets: OrderedDict = field(default_factory=OrderedDict)  # client ↦ (tokens, last time)
    clients: int = 10_000  # the most clients remembered (the oldest are forgotten first)

    def allow(self, client: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = time.monotonic()
        tokens, last = self.buckets.pop(client, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60.0)
        allowed = tokens >= 1.0
        self.buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        while len(self.buckets) > self.clients:
            self.buckets.popitem(last=False)
        return allowed


class Server:
    def __init__(self, config: Config):
        self.config = config
        self.pool: cf.ProcessPoolExecutor | None = None
        self.limiter = RateLimiter(config.rate)
        self.records = Records(config.db, config.assignment) if config.db is not None else None
        self.templates = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(str(HERE / "templates")),
            autoescape=select_autoescape(default=True, default_for_string=True))
        assignment = config.assignment
        self.questions = {q.id for q in assignment.questions} if assignment else None
        self.source = assignment.source if assignment else None
        self.networks = networks_list()  # built once: loading every built-in network takes a second
        self.decided: OrderedDict = OrderedDict()  # request ↦ result, the most recent MAX_DECIDED
        self.running: dict = {}  # request ↦ the task deciding it now

    # -- the worker pool -------------------------------------------------------------
    async def in_worker(self, function, *args, timeout: float):
        """`function(*args)` in a worker; None past `timeout` or when the worker died (the pool is renewed)."""
        loop = asyncio.get_running_loop()
        pool = self.pool
        try:
            return await asyncio.wait_for(loop.run_in_executor(pool, function, *args), timeout)
        except asyncio.TimeoutError:
            return None
        except cf.process.BrokenProcessPool:
            self._renew_pool(broken=pool)
            return None

    def _renew_pool(self, broken=None) -> None:
        """A fresh pool, unless another request has renewed the broken one already."""
        if broken is not None and self.pool is not broken:
            return
        old, self.pool = self.pool, cf.ProcessPoolExecutor(self.config.jobs, initializer=checking.cap_memory)
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)

    async def check(self, request: dict) -> dict:
        """The result of a checked request: decided once per distinct request (a class sends the same
        textbook answers again and again), concurrent copies waiting for the first."""
        key = tuple(sorted(request.items()))
        found = self.decided.get(key)
        if found is not None:
            self.decided.move_to_end(key)
            return dict(found)
        running = self.running.get(key)
        if running is None:
            running = self.running[key] = asyncio.ensure_future(self._check(request))
            running.add_done_callback(lambda _: self.running.pop(key, None))
        result = await asyncio.shield(running)
        if result.get("method") != "time":  # a timeout may go otherwise on a quieter server: not kept
            self.decided[key] = result
            while len(self.decided) > MAX_DECIDED:
                self.decided.popitem(last=False)
        return dict(result)

    async def _check(self, request: dict) -> dict:
        budget = self.config.budget
        show = self.config.show_correct and (self.config.assignment is None or self.config.assignment.show_correct)
        result = await self.in_worker(checking.decide, request, self.source, budget, show,
                                      timeout=checking.deadline(budget))
        if result is None:
            result = {"verdict": "undecided", "method": "time",
                      "message": f"not decided within {checking.deadline(budget):g} s"}
        return result

    async def preview(self, request: dict) -> dict:
        result = await self.in_worker(checking.preview, request, self.source, timeout=5.0)
        return result or {"ok": False, "message": "reading took too long"}

    # -- requests ------------------------------------------------------------------------
    def client(self, request: Request) -> str:
        if self.config.trust_proxy:
            forwarded = request.headers.get("x-forwarded-for", "")
            if forwarded:
                return forwarded.split(",")[0].strip()[:64]
        return request.client.host if request.client else "?"

    def teacher_allowed(self, request: Request) -> bool:
        given = request.query_params.get("token", "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        token = self.config.token
        return bool(token) and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))

    def page(self, name: str, request: Request, status: int = 200, **context) -> HTMLResponse:
        lang = request.query_params.get("lang", "en")
        words = labels(lang)
        query = urllib.parse.urlencode({**request.query_params, "lang": words["lang_code"]})  # the token stays
        text = self.templates.get_template(name).render(t=words, lang=lang if lang == "zh" else "en",
                                                        lang_query=query, **context)
        return HTMLResponse(text, status_code=status)


async def body_of(request: Request) -> bytes | None:
    """The body, or None past MAX_BODY bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: Config) -> Starlette:
    server = Server(config)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        server._renew_pool()
        try:
            yield
        finally:  # the workers are stopped, not left to finish (or to outlive the server)
            for process in list(getattr(server.pool, "_processes", {}).values()):
                process.kill()
            server.pool.shutdown(wait=False, cancel_futures=True)
            if server.records is not None:
                server.records.close()

    from derive.serve import routes

    async def guard(request: Request, call_next) -> Response:
        if request.url.path != "/health" and not server.limiter.allow(server.client(request)):
            response = JSONResponse({"error": "too many requests: wait a minute"}, status_code=429)
        else:
            response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    app = Starlette(middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)], routes=[
        Route("/", routes.student_page, methods=["GET", "POST"]),
        Route("/api/networks", routes.api_networks, methods=["GET"]),
        Route("/api/check", routes.api_check, methods=["POST"]),
        Route("/api/preview", routes.api_preview, methods=["POST"]),
        Route("/teacher", routes.teacher_page, methods=["GET"]),
        Route("/teacher/gradebook.csv", routes.teacher_gradebook, methods=["GET"]),
        Route("/health", lambda request: PlainTextResponse("ok"), methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ], lifespan=lifespan)
    app.state.server = server

    return app


def parse_form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body: the first value of each field."""
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {key: values[0] for key, values in fields.items()}


def networks_list() -> list[dict]:
    listed = []
    for name in builtin_names():
        network = load(name)
        if network.kind == "stack":
            continue  # no per-example graph: nothing to claim about
        listed.append({"name": name, "kind": network.kind, "description": network.description,
                       "parameters": [s.name for s in network.parameters][:200],
                       "nodes": [s.name for s in network.order][:200], "cost": network.cost.name})
    return listed


def json_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


