from tests.unit.sessions.server import fast_sse, sessions_api
from tests.unit.streams.conftest import api, stream_app_url

__all__ = ["api", "fast_sse", "sessions_api", "stream_app_url"]
