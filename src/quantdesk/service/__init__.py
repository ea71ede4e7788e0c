"""The control plane: a FastAPI app over the running engine, its WebSocket stream, auth, and Redis events."""

from quantdesk.service.app import create_app
from quantdesk.service.auth import resolve_token
from quantdesk.service.control import EngineControl

__all__ = ["EngineControl", "create_app", "resolve_token"]
