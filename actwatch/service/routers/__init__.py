"""HTTP and WebSocket routes, one module per resource; each exposes ``router() -> APIRouter``."""
