"""plinth's entry points: the `plinth` CLI and (later) the OpenAI-compatible server."""
