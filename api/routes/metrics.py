"""Prometheus metrics at ``/metrics`` (viewer key; Prometheus sends it as a bearer token)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.security import require

router = APIRouter(tags=["metrics"], dependencies=[Depends(require("viewer"))])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"}},
)
async def metrics(request: Request) -> Response:
    """Messages in, rejected, written and spooled; queue depths; tasks; request latency by route."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
