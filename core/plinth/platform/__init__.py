"""The public platform contract. A platform plugin imports only from this package.

Importing it is cheap (no torch): descriptors and probes can use it freely.
"""

from plinth.config import CacheConfig, ConfigError, EngineConfig, GraphConfig, SchedulerConfig
from plinth.platform.attention import (
    AttentionBackend,
    AttentionImpl,
    AttentionLayerSpec,
    AttentionSelector,
    CommonAttentionMetadata,
    GraphSupport,
    KVCacheSpec,
    RotarySpec,
    Support,
)
from plinth.platform.capabilities import Capabilities, Feature
from plinth.platform.communicator import Communicator, SingleProcessCommunicator
from plinth.platform.configure import ConfigPatch
from plinth.platform.descriptor import PlatformDescriptor, Probe
from plinth.platform.device import DeviceOps
from plinth.platform.device_graphs import StreamGraphRunner
from plinth.platform.discovery import PlatformSelectionError, discover_platforms, select_platform
from plinth.platform.graph import BatchDescriptor, EagerGraphRunner, GraphRunner
from plinth.platform.kernels import KernelRegistry, Op
from plinth.platform.platform import NoAttentionBackendError, Platform
from plinth.platform.version import PLATFORM_API

__all__ = [
    "PLATFORM_API", "CacheConfig", "ConfigError", "EngineConfig", "GraphConfig", "SchedulerConfig",
    "AttentionBackend", "AttentionImpl", "AttentionLayerSpec", "AttentionSelector",
    "BatchDescriptor", "Capabilities", "CommonAttentionMetadata", "Communicator", "ConfigPatch",
    "DeviceOps", "EagerGraphRunner", "Feature", "GraphRunner", "GraphSupport", "KVCacheSpec",
    "KernelRegistry", "NoAttentionBackendError", "Op", "Platform", "PlatformDescriptor",
    "PlatformSelectionError", "Probe", "RotarySpec", "SingleProcessCommunicator", "StreamGraphRunner", "Support",
    "discover_platforms", "select_platform",
]
