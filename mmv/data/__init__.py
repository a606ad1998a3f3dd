"""From files on disk (or shards) to batches of tensors; no model code."""
