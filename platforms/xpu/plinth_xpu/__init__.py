"""plinth's Intel XPU platform plugin (native torch.xpu). Not yet run on Intel hardware."""
