"""plinth's ROCm platform plugin (AMD GPUs). Not yet run on AMD hardware."""
