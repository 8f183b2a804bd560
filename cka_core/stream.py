"""Layers read from disk in row blocks, and linear CKA over them (lives in :mod:`cka_core.io.streaming`)."""
from .io.streaming import (BLOCK_VALUES, WIDE_BLOCK_ROWS, StoredLayer, StreamedLayers, block_rows, open_layers,
                           shard_paths, stream_into, streamed_cka_matrix)
