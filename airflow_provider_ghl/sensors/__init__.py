"""Sensors of the HighLevel (GHL) provider."""
