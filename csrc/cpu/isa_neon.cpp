// NEON build of the kernels: baseline on aarch64, so no target pragma is needed.
#include "common.h"
#if defined(__aarch64__)
#define PLINTH_ISA neon
#include "kernels_impl.h"
#endif
