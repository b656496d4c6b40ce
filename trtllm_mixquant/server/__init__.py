"""The OpenAI-compatible HTTP server (`trtllm-mixquant serve`): HTTP only. It parses OpenAI
request bodies (`protocol`), hands them to an `AsyncEngine` through the frontend, writes OpenAI
responses and server-sent events, maps domain errors to status codes (`errors`) and exposes
Prometheus metrics.

`app.create_app(ServerConfig(...))` builds the FastAPI application; `main` is the command line.
"""
