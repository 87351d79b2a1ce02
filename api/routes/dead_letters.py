"""Dead letters: how many messages were rejected, and the latest with their reasons.

Only the watched line's: those whose topic lies under the line's topics (``prefix/site/line/``); a store shared
with other lines holds theirs too.
"""

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
    """The number of this line's rejected messages in the store, and the latest ``limit`` with topic, payload and
    reason, and when each was received on the receive clock and on the line clock."""
    prefix = rt.topics.base + "/"

    def read() -> DeadLettersOut:
        letters = rt.store.dead_letters(limit, topic_prefix=prefix)
        return DeadLettersOut(
            count=rt.store.dead_letter_count(topic_prefix=prefix),
            latest=[
                DeadLetterOut(
                    received=hours_to_datetime(d.received_ms / 3_600_000),
                    line_time=None if d.line_ms is None else hours_to_datetime(d.line_ms / 3_600_000),
                    topic=d.topic,
                    payload=d.payload.decode("utf-8", errors="replace"),
                    payload_base64=base64.b64encode(d.payload).decode("ascii"),
                    reason=d.reason,
                )
                for d in letters
            ],
        )

    return await run_in_threadpool(read)
