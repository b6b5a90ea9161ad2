// Skinny bf16 linear (GEMV and small-M GEMM), included by kernels_impl.h:
//   out[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]),  fp32 accumulation, one bf16 rounding.
//
// The weight is packed once (plinth_cpu/gemv.py) in pair-blocked form: rows padded to a multiple
// of 16, K padded to even with zeros; block b (rows 16b .. 16b+15) is [K/2][16] 32-bit words,
// word (p, j) = (w[16b+j, 2p], w[16b+j, 2p+1]). A thread streams a contiguous range of blocks,
// up to four at once (four accumulators per activation row), so every weight byte is read once
// per call, sequentially: decode is bound by memory bandwidth, not by the multiply-adds.
// Activation rows go in groups of kGemvRows, each group re-reading the blocks from cache.

constexpr int64_t kGemvBlock = 16;  // output rows per block
constexpr int64_t kGemvTile = 4;    // blocks streamed at once
constexpr int64_t kGemvRows = 6;    // activation rows per pass over a tile
constexpr int64_t kGemvChunk = 64;  // activation rows per pass over a thread's blocks (stay in L2)

// bf16 pair word -> the two floats (low half = even k)
static inline float pair_lo(uint32_t u) {
  const uint32_t b = u << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
static inline float pair_hi(uint32_t u) {
  const uint32_t b = u & 0xFFFF0000u;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Stores one bf16 output row segment: acc + bias, rounded like torch.
static inline void gemv_store(bf16* out, const float* acc, const bf16* bias, int64_t n0, int64_t count) {
  for (int64_t j = 0; j < count; ++j) out[n0 + j] = from_f<bf16>(acc[j] + (bias ? to_f(bias[n0 + j]) : 0.f));
}

// MR activation rows x NB blocks, portable loops (the compiler vectorises the 16 lanes).
template <int MR, int NB>
static void gemv_tile(bf16* out, int64_t os, const float* xf, int64_t P, const uint32_t* w, int64_t n0, int64_t N,
                      const bf16* bias) {
  float acc[MR][NB * kGemvBlock] = {};
  const int64_t bstride = P * kGemvBlock;
  for (int64_t p = 0; p < P; ++p) {
    for (int b = 0; b < NB; ++b) {
      const uint32_t* wp = w + b * bstride + p * kGemvBlock;
      for (int m = 0; m < MR; ++m) {
        const float x0 = xf[(m * P + p) * 2], x1 = xf[(m * P + p) * 2 + 1];
        float* a = acc[m] + b * kGemvBlock;
#pragma omp simd
        for (int64_t j = 0; j < kGemvBlock; ++j) a[j] += pair_lo(wp[j]) * x0 + pair_hi(wp[j]) * x1;
      }
    }
  }
  const int64_t count = std::min<int64_t>(NB * kGemvBlock, N - n0);
  for (int m = 0; m < MR; ++m) gemv_store(out + m * os, acc[m], bias, n0, count);
}

template <int NB>
static void gemv_rows(bf16* out, int64_t os, const float* xf, int64_t M, int64_t P, const uint32_t* w, int64_t n0,
                      int64_t N, const bf16* bias) {
  int64_t m = 0;
  for (; m + kGemvRows <= M; m += kGemvRows)
    gemv_tile<kGemvRows, NB>(out + m * os, os, xf + m * P * 2, P, w, n0, N, bias);
  switch (M - m) {
    case 5: gemv_tile<5, NB>(out + m * os, os, xf + m * P * 2, P, w, n0, N, bias); break;
    case 4: gemv_tile<4, NB>(out + m * os, os, xf + m * P * 2, P, w, n0, N, bias); break;
    case 3: gemv_tile<3, NB>(out + m * os, os, xf + m * P * 2, P, w, n0, N, bias); break;
    case 2: gemv_tile<2, NB>(out + m * os, os, xf + m * P * 2, P, w, n0, N, bias); break;
    case 1: gemv_tile<1, NB>(out + m * os, os, xf + m * P * 2, P, w, n0, N, bias); break;
    default: break;
  }
}

// Blocks [b0, b1) for all M rows; xf: the rows as floats [M, 2P] (K padded with zeros).
static void gemv_blocks(bf16* out, int64_t os, const float* xf, int64_t M, int64_t P, const uint32_t* w, int64_t b0,
                        int64_t b1, int64_t N, const bf16* bias) {
  const int64_t bstride = P * kGemvBlock;
  int64_t b = b0;
  for (; b + kGemvTile <= b1; b += kGemvTile)
    gemv_rows<kGemvTile>(out, os, xf, M, P, w + b * bstride, b * kGemvBlock, N, bias);
  switch (b1 - b) {
    case 3: gemv_rows<3>(out, os, xf, M, P, w + b * bstride, b * kGemvBlock, N, bias); break;
    case 2: gemv_rows<2>(out, os, xf, M, P, w + b * bstride, b * kGemvBlock, N, bias); break;
    case 1: gemv_rows<1>(out, os, xf, M, P, w + b * bstride, b * kGemvBlock, N, bias); break;
    default: break;
  }
}

// Runs f(b0, b1) on each thread's contiguous share of `blocks` (one OpenMP region per call).
template <class F> static inline void split_blocks(int64_t blocks, int threads, F&& f) {
#ifdef _OPENMP
  if (threads > 1 && blocks > 1) {
#pragma omp parallel num_threads(int(std::min<int64_t>(threads, blocks)))
    {
      const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
      f(blocks * t / n, blocks * (t + 1) / n);
    }
    return;
  }
#endif
  f(0, blocks);
}

#if defined(PLINTH_AVX512_INTRINSICS) && defined(PLINTH_PREFILL_BF16)
#define PLINTH_GEMV_BF16 1
#include "gemv_bf16_avx512.h"
#endif

static void gemv_bf16(void* out_, const void* x_, const uint32_t* w, const void* bias_, int64_t M, int64_t N,
                      int64_t K, int64_t xs, int64_t os, int threads) {
  bf16* out = static_cast<bf16*>(out_);
  const bf16* x = static_cast<const bf16*>(x_);
  const bf16* bias = static_cast<const bf16*>(bias_);
  const int64_t P = (K + 1) / 2, blocks = (N + kGemvBlock - 1) / kGemvBlock;
#ifdef PLINTH_GEMV_BF16
  if (has_avx512_bf16()) {
    std::vector<uint32_t> xp(size_t(M * P), 0u);  // activation pairs, the odd K's last word zero-padded
    for (int64_t m = 0; m < M; ++m) std::memcpy(xp.data() + m * P, x + m * xs, size_t(K) * sizeof(bf16));
    split_blocks(blocks, threads, [&](int64_t b0, int64_t b1) {
      for (int64_t m = 0; m < M; m += kGemvChunk)
        gemv_blocks_bf16(out + m * os, os, xp.data() + m * P, std::min(kGemvChunk, M - m), P, w, b0, b1, N, bias);
    });
    return;
  }
#endif
  std::vector<float> xf(size_t(M * P * 2), 0.f);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) xf[m * P * 2 + k] = to_f(x[m * xs + k]);
  split_blocks(blocks, threads, [&](int64_t b0, int64_t b1) {
    for (int64_t m = 0; m < M; m += kGemvChunk)
      gemv_blocks(out + m * os, os, xf.data() + m * P * 2, std::min(kGemvChunk, M - m), P, w, b0, b1, N, bias);
  });
}
