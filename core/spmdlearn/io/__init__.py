"""Getting each rank its rows."""

from ._shard import shard

__all__ = ["shard"]
