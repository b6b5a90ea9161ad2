// Shared declarations of plinth's CPU kernels: dtype codes and the per-ISA kernel table.
//
// Every kernel is compiled once per ISA (isa_*.cpp include kernels_impl.h under a target
// pragma, each in its own namespace); bindings.cpp picks one table at load time from cpuid.
// Kernels take raw pointers and sizes: the Python wrappers in plinth_cpu/kernels.py check
// dtypes, shapes and strides, so this library needs no torch headers and builds in seconds.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace plinth {

enum DType : int { kF32 = 0, kBF16 = 1 };
enum GgmlType : int { kQ8_0 = 0, kQ4_0 = 1, kQ4_1 = 2 };  // GGML block formats ggml_linear computes on

struct Kernels {
  const char* isa;  // "avx512", "avx2", "neon" or "portable"
  // out[r] = w * norm(x[r]) (or of x[r] + res[r], stored to res_out[r], when res != nullptr)
  void (*rms_norm)(void* out, void* res_out, const void* x, const void* res, const void* w, int64_t rows,
                   int64_t hidden, int64_t x_stride, int64_t res_stride, float eps, int dtype, int threads);
  // out[r, :d] = silu(x[r, :d]) * x[r, d:2d]
  void (*silu_and_mul)(void* out, const void* x, int64_t rows, int64_t d, int64_t x_stride, int dtype,
                       int threads);
  // q_out/k_out = rotary(q/k) at positions; cos_sin_cache [max_position, rotary_dim]. Returns false,
  // writing nothing, when a position lies outside [0, max_position)
  bool (*rotary)(void* q_out, void* k_out, const void* q, const void* k, const int64_t* positions,
                 const void* cos_sin, int64_t max_position, int64_t tokens, int64_t q_heads, int64_t k_heads,
                 int64_t head_size, int64_t rotary_dim, int64_t q_stride, int64_t k_stride, bool neox, int dtype,
                 int cache_dtype, int threads);
  // k_cache[slot[t]] = k[t] (and v) for slot >= 0; rows of `width` elements. Returns false, writing
  // nothing, when a slot is >= capacity
  bool (*write_kv)(void* k_cache, void* v_cache, const void* k, const void* v, const int64_t* slots,
                   int64_t capacity, int64_t tokens, int64_t width, int64_t k_stride, int64_t v_stride, int dtype,
                   int cache_dtype, int threads);
  // single-token queries over the paged standard-layout cache, GQA packed, fp32 math
  void (*decode_attention)(void* out, int64_t out_stride, const void* q, int64_t q_stride, const void* k_cache,
                           const void* v_cache, const int32_t* block_table, int64_t block_table_stride,
                           const int32_t* seq_lens, const int64_t* tokens, const int64_t* reqs, int64_t num,
                           int64_t heads, int64_t kv_heads, int64_t head_size, int64_t block_size, float scale,
                           int64_t sliding_window, int dtype, int cache_dtype, int threads);
  // out[M, N] = (x[M, K] . w[N, K]^T) * scale[N] (+ bias[N]); int8 weights, fp32 accumulation
  void (*int8_linear)(void* out, const void* x, const int8_t* w, const float* scale, const void* bias, int64_t M,
                      int64_t N, int64_t K, int64_t x_stride, int dtype, int threads);
  // causal queries of requests reqs[0..num) (tokens query_start_loc[r]..[r+1], the last of seq_lens[r]
  // positions) over the paged standard-layout cache, GQA packed, fp32 online softmax
  void (*prefill_attention)(void* out, int64_t out_stride, const void* q, int64_t q_stride, const void* k_cache,
                            const void* v_cache, const int32_t* block_table, int64_t block_table_stride,
                            const int32_t* seq_lens, const int32_t* query_start_loc, const int64_t* reqs,
                            int64_t num, int64_t heads, int64_t kv_heads, int64_t head_size, int64_t block_size,
                            float scale, int64_t sliding_window, int dtype, int cache_dtype, int threads);
  // out[M, N] (row stride out_stride) = x[M, K] . w^T (+ bias[N]), bf16 in and out, fp32 accumulation;
  // w packed in pair-blocked form (gemv_bf16_impl.h), bias nullable
  void (*gemv_bf16)(void* out, const void* x, const uint32_t* w_packed, const void* bias, int64_t M, int64_t N,
                    int64_t K, int64_t x_stride, int64_t out_stride, int threads);
  // out[M, N] (row stride out_stride) = (qx . qw^T) * sx[m] * w_scale[n] (+ bias[N]): x quantized to
  // int8 per row here, int8 weights packed in 16-row blocks of 4-byte K groups with per-row sums
  // w_sum (w8a8_linear_impl.h), exact int32 accumulation; bf16 or fp32 in and out, bias nullable
  void (*w8a8_linear)(void* out, const void* x, const int8_t* w_packed, const int32_t* w_sum,
                      const float* w_scale, const void* bias, int64_t M, int64_t N, int64_t K, int64_t x_stride,
                      int64_t out_stride, int dtype, int threads);
  // out[M, N] (row stride out_stride) = x[M, K] . dequant(w)^T (+ bias[N]): w GGML blocks of `type`
  // (GgmlType) repacked in 16-row blocks (ggml_linear_impl.h), K a multiple of 32; bf16 or fp32 in
  // and out, fp32 accumulation, bias nullable
  void (*ggml_linear)(void* out, const void* x, const uint8_t* w, const void* bias, int64_t M, int64_t N,
                      int64_t K, int64_t x_stride, int64_t out_stride, int type, int dtype, int threads);
};

}  // namespace plinth
