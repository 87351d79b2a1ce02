"""The hand-off queue between paho's thread and the pipeline: order, bound, batches, and stopping."""

from __future__ import annotations

import threading
import time

import pytest

from connectors.handoff import Handoff


def test_items_come_out_in_order_in_batches_of_at_most_the_size_asked() -> None:
    q: Handoff[int] = Handoff(100)
    for i in range(25):
        assert q.put(i)
    assert q.take(10, 0, 0) == list(range(10))
    assert q.take(10, 0, 0) == list(range(10, 20))
    assert q.take(10, 0, 0) == list(range(20, 25))
    assert q.take(10, 0, 0) == []
    assert len(q) == 0


def test_a_full_queue_blocks_the_producer_until_the_consumer_takes() -> None:
    q: Handoff[int] = Handoff(3)
    for i in range(3):
        q.put(i)
    done = threading.Event()

    def produce() -> None:
        q.put(3)
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    assert not done.wait(0.2), "put returned although the queue was full"
    assert q.take(2, 0, 0) == [0, 1]
    assert done.wait(5), "put still blocked after the consumer made room"
    t.join()
    assert q.take(10, 0, 0) == [2, 3]


def test_the_consumer_wakes_for_the_first_item_then_fills_its_batch_until_full_or_time_is_up() -> None:
    q: Handoff[int] = Handoff(100)

    def produce() -> None:
        time.sleep(0.1)
        for i in range(5):
            q.put(i)

    t = threading.Thread(target=produce)
    t.start()
    t0 = time.monotonic()
    batch = q.take(5, 10.0, 10.0)
    took = time.monotonic() - t0
    t.join()
    assert batch == [0, 1, 2, 3, 4]
    assert 0.09 < took < 5.0, "it returned before the items came, or waited on although its batch was full"

    q.put(9)
    t0 = time.monotonic()
    assert q.take(5, 10.0, 0.2) == [9]  # not full: it waits out the fill time, then takes what is there
    assert 0.19 < time.monotonic() - t0 < 5.0


def test_an_empty_queue_returns_nothing_after_the_first_wait() -> None:
    q: Handoff[int] = Handoff(10)
    t0 = time.monotonic()
    assert q.take(5, 0.1, 10.0) == []
    assert 0.09 < time.monotonic() - t0 < 5.0


def test_close_releases_a_blocked_producer_and_refuses_more_while_what_is_queued_can_still_be_taken() -> None:
    q: Handoff[int] = Handoff(1)
    q.put(1)
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(q.put(2)))
    t.start()
    time.sleep(0.1)
    q.close()
    t.join(5)
    assert result == [False]
    assert q.put(3) is False
    assert q.take(10, 0, 0) == [1]
    q.reopen()
    assert q.put(4) is True
    assert q.take(10, 0, 0) == [4]


def test_a_producer_and_a_consumer_at_full_speed_lose_and_reorder_nothing() -> None:
    q: Handoff[int] = Handoff(50)
    n = 100_000
    got: list[int] = []

    def consume() -> None:
        while len(got) < n:
            got.extend(q.take(64, 1.0, 0.001))

    t = threading.Thread(target=consume)
    t.start()
    for i in range(n):
        q.put(i)
    t.join(60)
    assert got == list(range(n))


def test_sizes_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        Handoff(0)
    with pytest.raises(ValueError, match="max_items"):
        Handoff[int](1).take(0, 0, 0)
