"""Row blocks: how many rows of a shard a kernel processes at a time.

A block is sized so that its float64 working copy stays in the core's private cache (about
256 KiB for the streaming kernels, 1 MiB where a BLAS call follows): each row of the shard is
then read from memory once, and every further pass over it hits the cache. No kernel makes a
working copy larger than one block.
"""

from __future__ import annotations

__all__ = ["block_rows", "STREAM_BYTES", "BLAS_BYTES"]

#: Bytes of float64 per block for kernels that stream a block through a few compiled passes.
STREAM_BYTES = 1 << 18
#: Bytes of float64 per block for kernels that hand each block to BLAS.
BLAS_BYTES = 1 << 20


def block_rows(n_columns: int, target_bytes: int = STREAM_BYTES, minimum: int = 64) -> int:
    """Rows per block so that ``rows x n_columns`` float64 values take about ``target_bytes``."""
    return max(minimum, target_bytes // (8 * max(1, n_columns)))
