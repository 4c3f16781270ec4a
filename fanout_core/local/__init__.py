"""Local stand-ins for API Gateway: the Management API and (with the `local` extra) a WebSocket API.

Nothing here is imported by ``fanout_core.handlers``.
"""
