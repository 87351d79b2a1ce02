"""GigaTwin's composition root, the only package that reads the environment: the settings, the ``gigatwin`` command
line (serve, demo, feed, ingest), the runtime that wires a line's telemetry source, ingest pipeline, store and live
state, and the FastAPI app (routes, SSE stream, metrics, health, API keys) that reads the published live state."""
