"""The engine core's scheduling half: requests, the paged KV-cache manager, the scheduler, the seam.

Pure Python: nothing here imports torch or a platform.
"""

from plinth.sched.kv_cache import KVCacheManager
from plinth.sched.outputs import (
    CachedRequestData,
    EngineOutput,
    NewRequestData,
    RunnerOutput,
    SchedulerOutput,
    SchedulerStats,
)
from plinth.sched.request import Request, RequestStatus, sibling_request_ids
from plinth.sched.scheduler import Scheduler

__all__ = [
    "CachedRequestData", "EngineOutput", "KVCacheManager", "NewRequestData", "Request",
    "RequestStatus", "RunnerOutput", "Scheduler", "SchedulerOutput", "SchedulerStats",
    "sibling_request_ids",
]
