"""plinth's CPU platform plugin."""
