"""plinth's CUDA platform plugin."""
