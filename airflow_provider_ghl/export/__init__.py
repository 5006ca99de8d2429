"""Exports of GHL data: streaming, atomic, resumable."""
