"""Downstream evaluation: features, linear probes, fine-tuning, zero-shot retrieval, benchmark adapters."""
