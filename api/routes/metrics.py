"""`GET /metrics`: Prometheus text format, every process's counters and the gauges read now."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import SettingsDep
from api.errors import responses
from tasks import metrics

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={**responses(401), 200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    summary="Prometheus metrics (needs the token, like every route)",
)
def get_metrics(settings: SettingsDep) -> Response:
    """Jobs by status, queue depth, live workers, stage durations, render seconds per second
    of video, bytes written and webhook deliveries, over every API and worker process."""
    return Response(generate_latest(metrics.registry(settings)), media_type=CONTENT_TYPE_LATEST)
