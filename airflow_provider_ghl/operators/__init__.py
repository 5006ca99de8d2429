"""Operators of the HighLevel (GHL) provider."""
