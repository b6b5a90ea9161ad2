// Portable build of the kernels: the compiler's baseline ISA (SSE2 on x86-64); always present.
#include "common.h"
#define PLINTH_ISA portable
#include "kernels_impl.h"
