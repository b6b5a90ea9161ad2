"""The model graph: HF-shaped model classes, shared layers, weight loaders and the registry.

Import submodules directly (``plinth.model.loader``, ``plinth.model.model_config``, ...);
this package import is cheap and pulls in no optional dependency (``gguf`` loads lazily).
"""
