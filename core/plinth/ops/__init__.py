"""Torch-native reference ops: the oracle every platform kernel is tested against."""
