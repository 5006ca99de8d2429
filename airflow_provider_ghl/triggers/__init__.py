"""Triggers of the HighLevel (GHL) provider."""
