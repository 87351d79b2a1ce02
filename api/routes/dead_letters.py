"""Dead letters: how many messages were rejected, and the latest with their reasons."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from api.deps import RuntimeDep
from api.schemas import DeadLetterOut, DeadLettersOut, hours_to_datetime
from api.security import require

router = APIRouter(prefix="/dead-letters", tags=["dead letters"], dependencies=[Depends(require("viewer"))])


@router.get("", response_model=DeadLettersOut, summary="Rejected messages")
async def dead_letters(rt: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> DeadLettersOut:
    """The number of rejected messages in the store, and the latest ``limit`` with topic, payload and reason."""

    def read() -> DeadLettersOut:
        letters = rt.store.dead_letters(limit)
        return DeadLettersOut(
            count=rt.store.dead_letter_count(),
            latest=[
                DeadLetterOut(
                    received=hours_to_datetime(d.received_ms / 3_600_000),
                    topic=d.topic,
                    payload=d.payload.decode("utf-8", errors="replace"),
                    payload_base64=base64.b64encode(d.payload).decode("ascii"),
                    reason=d.reason,
                )
                for d in letters
            ],
        )

    return await run_in_threadpool(read)
