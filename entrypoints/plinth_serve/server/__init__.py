"""plinth's OpenAI-compatible HTTP server (FastAPI) and its engine-core process."""
