"""The HTTP service: settings, request/response schemas, routes, micro-batching, logs and metrics.

Build it with `app.main.create_app(settings)`; run it with `python -m app` or `uvicorn app.main:app`.
"""
