"""Evaluation: the NoW benchmark's scan-to-mesh protocol (``now``) and the synthetic benchmark (``synthetic``)."""
