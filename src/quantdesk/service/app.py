"""The FastAPI control plane: reads of the engine for anyone on the host, commands only with the token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Body, Depends, FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from quantdesk.errors import UserError
from quantdesk.risk.kill_switch import ModeChangeRefused
from quantdesk.service import schemas
from quantdesk.service.auth import bearer_guard
from quantdesk.service.control import EngineControl, LiveUnavailable
from quantdesk.service.events import subscribe_events
from quantdesk.service.stream import EventHub

MAX_BODY_BYTES = 64 * 1024
ACTOR = "api"
_Reason = Annotated[schemas.ActionRequest | None, Body()]
_PROBLEMS: dict[int | str, dict[str, object]] = {
    400: {"model": schemas.Problem, "description": "Refused: the message says why"},
    401: {"model": schemas.Problem, "description": "No bearer token"},
    403: {"model": schemas.Problem, "description": "Wrong bearer token"},
    413: {"model": schemas.Problem, "description": "Body larger than 64 KiB"},
}


def create_app(control: EngineControl, *, token: str, metrics: Callable[[], bytes] | None = None) -> FastAPI:
    """The API over `control`'s engine. Build it before `engine.start()` (the stream subscribes then).

    The app must run on the engine's event loop: its handlers call the engine directly.
    """
    app = FastAPI(
        title="quantdesk",
        summary="Control plane of a quantdesk trading node",
        version="0.1.0",
        description="Reads are open on the host the API binds to; every call that changes state "
        "needs `Authorization: Bearer <token>`.",
    )
    hub = EventHub()
    subscribe_events(control.engine, hub.publish)
    app.state.hub = hub
    guarded = [Depends(bearer_guard(token))]

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"detail": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        if length is None and request.method in {"POST", "PUT", "PATCH"}:
            body = await request.body()  # chunked: read it, but never more than the limit is kept
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"detail": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(ModeChangeRefused)
    async def refused(_request: Request, error: ModeChangeRefused) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(LiveUnavailable)
    async def no_live(_request: Request, error: LiveUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    @app.exception_handler(UserError)
    async def user_error(_request: Request, error: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.get("/health", tags=["read"])
    async def health() -> schemas.Health:
        return control.health()

    @app.get("/state", tags=["read"])
    async def state() -> schemas.State:
        return control.state()

    @app.get("/risk", tags=["read"])
    async def risk() -> schemas.Risk:
        return control.risk()

    @app.get("/positions", tags=["read"])
    async def positions() -> list[schemas.PositionOut]:
        return control.positions()

    @app.get("/orders", tags=["read"])
    async def orders() -> schemas.Orders:
        return control.orders()

    @app.get("/signals", tags=["read"])
    async def signals() -> list[schemas.SignalOut]:
        return control.signals()

    @app.get("/status", tags=["read"])
    async def status() -> schemas.Status:
        result = control.status()
        result.node.setdefault("stream", {"clients": hub.clients, "dropped": hub.dropped})
        return result

    @app.get(
        "/metrics",
        tags=["read"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def prometheus() -> Response:
        body = metrics() if metrics is not None else b""
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/pause", tags=["control"], dependencies=guarded, responses=_PROBLEMS)
    async def pause(body: _Reason = None) -> schemas.State:
        return control.pause(ACTOR, body.reason if body else "")

    @app.post("/resume", tags=["control"], dependencies=guarded, responses=_PROBLEMS)
    async def resume(body: _Reason = None) -> schemas.State:
        return control.resume(ACTOR, body.reason if body else "")

    @app.post("/flatten", tags=["control"], dependencies=guarded, responses=_PROBLEMS)
    async def flatten(body: _Reason = None) -> schemas.FlattenResult:
        return await control.flatten(ACTOR, body.reason if body else "")

    @app.post(
        "/mode",
        tags=["control"],
        dependencies=guarded,
        responses={**_PROBLEMS, 409: {"model": schemas.Problem, "description": "No live venue"}},
    )
    async def mode(body: schemas.ModeRequest) -> schemas.State:
        return control.set_mode(body.mode, body.confirm, ACTOR)

    @app.websocket("/ws")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        client = hub.connect()
        try:
            while True:
                await websocket.send_json(await client.queue.get())
        except WebSocketDisconnect:
            pass
        finally:
            hub.disconnect(client)

    return app
