from tests.unit.sessions.server import fast_sse, sessions_api

__all__ = ["fast_sse", "sessions_api"]
