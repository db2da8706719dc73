"""Blocks of decoded images for a torch backbone, in order: worker threads decode and resize (`extract.images`,
PIL, which releases the GIL while it decodes and resamples) up to `ahead` blocks ahead of the model, so decoding
overlaps the forward pass (and the writer thread, `extract.writer`, overlaps both).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator

import numpy as np

from .images import UnreadableImage, load_rgb


def image_blocks(files: list[str], rows: np.ndarray, image_id: np.ndarray, image_size: int, block: int,
                 workers: int = 1, ahead: int = 2) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows of the block, (b, S, S, 3) uint8) for each block of `block` rows of `rows`, in order. An image that
    does not decode raises UnreadableImage naming the file and its image id when its block's turn comes, so
    the blocks before it are computed (and kept for a resume)."""
    blocks = [rows[i: i + block] for i in range(0, len(rows), block)]
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="decode")
    queued: deque[list[Future]] = deque()
    try:
        for i in range(min(len(blocks), ahead + 1)):
            queued.append([pool.submit(load_rgb, files[r], image_size) for r in blocks[i]])
        for i, block_rows in enumerate(blocks):
            futures = queued.popleft()
            if i + ahead + 1 < len(blocks):
                queued.append([pool.submit(load_rgb, files[r], image_size) for r in blocks[i + ahead + 1]])
            images = []
            for r, future in zip(block_rows, futures):
                try:
                    images.append(future.result())
                except UnreadableImage as e:
                    raise UnreadableImage(e.path, e.reason, int(image_id[r])) from None
            yield block_rows, np.stack(images)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
