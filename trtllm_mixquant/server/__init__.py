"""The OpenAI-compatible HTTP server over the orchestrator (`trtllm-mixquant serve`).

`app.create_app(ServerSettings(...))` builds the FastAPI application; `main` is the command line.
"""
