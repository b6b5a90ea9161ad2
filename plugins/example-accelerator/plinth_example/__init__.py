"""plinth's example accelerator: the template a vendor copies (see README.md)."""
