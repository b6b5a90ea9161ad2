"""plinth's TPU platform plugin (torch-xla / PJRT; also runs on XLA:CPU for tests)."""
