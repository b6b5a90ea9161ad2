// Linear on GGML block-quantized weights (GGUF's Q8_0, Q4_0, Q4_1), included by kernels_impl.h:
//   out[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]),  fp32 accumulation,
// with w[n, k] = d * q (Q8_0, q int8), d * (q - 8) (Q4_0, q a nibble) or d * q + m (Q4_1) for the
// fp16 d (and m) of the 32-value block holding k, exactly as gguf.quants dequantizes.
//
// The weights stay quantized. They are repacked once (plinth_cpu/ggml_linear.py) into blocks of 16
// output rows (rows padded to 16 with zeros: d = m = 0); block b is a stream of K/32 groups, one
// per GGML block of its 16 rows, each group being the 16 rows' values followed by their scales:
//   Q8_0: int8 q[32 k][16 rows], fp16 d[16]                                   544 bytes (8.5 bits a weight)
//   Q4_x: uint32 word[4][16 rows], fp16 d[16] (Q4_1: then fp16 m[16])        288 / 320 bytes (4.5 / 5)
// where word (g, j) holds row j's nibbles of k = 8g .. 8g+7 within the group: bits 4i .. 4i+3 are
// k = 8g+2i and bits 16+4i .. 16+4i+3 are k = 8g+2i+1 (i = 0..3), so one shift and one mask give
// 16 rows x one pair of k as the two 16-bit halves of each lane (the vdpbf16ps operand).
//
// Small M (decode) computes per group s = sum_k x[k] * code[k] and adds d * s (+ m * sum_k x[k]):
// the dequantized weight is used exactly (fp32), not rounded to the activations' dtype as the
// reference rounds it for bf16 inputs; the two differ by that rounding, far below one bf16 step of
// an output. Large M with bf16 on AVX512-BF16 (ggml_linear_avx512.h) dequantizes 64 rows at a time
// into the gemv_bf16 layout, rounded to bf16 exactly as the reference does, and runs gemv_bf16's tiles.

constexpr int64_t kGgBlock = 16;   // output rows per packed block
constexpr int64_t kGgValues = 32;  // k per GGML block (one group of the packed stream)
constexpr int64_t kGgRows = 8;     // activation rows per pass over a block (portable path)

static inline int64_t gg_group_bytes(int type) {
  return type == kQ8_0 ? 32 * 16 + 32 : type == kQ4_0 ? 16 * 16 + 32 : 16 * 16 + 64;
}

// IEEE half -> float, exact (subnormals too); branch-free but for inf/NaN.
static inline float half_to_f(uint16_t h) {
  const uint32_t em = h & 0x7FFFu;
  uint32_t u = em << 13;
  float f = 0.f;
  std::memcpy(&f, &u, 4);
  f *= 5.192296858534828e33f;  // 2^112: the half exponent bias 15 -> float's 127, subnormals normalised
  if (em >= 0x7C00u) {         // inf / NaN
    u = 0x7F800000u | ((em & 0x3FFu) << 13);
    std::memcpy(&f, &u, 4);
  }
  return (h & 0x8000u) ? -f : f;
}

// One group decoded: c[k][j] = the code of row j at k (Q8_0: q, Q4_0: q - 8, Q4_1: q), d[j] and
// mn[j] (Q4_1's m, else 0), so that w[j, k] = d[j] * c[k][j] + mn[j].
template <int Type>
static inline void gg_decode(float* c, float* d, float* mn, const uint8_t* g) {
  const uint16_t* h;
  if (Type == kQ8_0) {
    const int8_t* q = reinterpret_cast<const int8_t*>(g);
#pragma omp simd
    for (int64_t i = 0; i < kGgValues * kGgBlock; ++i) c[i] = float(q[i]);
    h = reinterpret_cast<const uint16_t*>(g + kGgValues * kGgBlock);
  } else {
    const uint32_t* word = reinterpret_cast<const uint32_t*>(g);
    const float off = Type == kQ4_0 ? 8.f : 0.f;
    for (int64_t k = 0; k < kGgValues; ++k) {
      const int shift = 4 * int((k % 8) / 2) + 16 * int(k % 2);
      const uint32_t* wg = word + (k / 8) * kGgBlock;
#pragma omp simd
      for (int64_t j = 0; j < kGgBlock; ++j) c[k * kGgBlock + j] = float((wg[j] >> shift) & 15u) - off;
    }
    h = reinterpret_cast<const uint16_t*>(g + 4 * kGgBlock * 4);
  }
  for (int64_t j = 0; j < kGgBlock; ++j) {
    d[j] = half_to_f(h[j]);
    mn[j] = Type == kQ4_1 ? half_to_f(h[kGgBlock + j]) : 0.f;
  }
}

// M <= kGgRows activation rows (fp32, with per-group sums xsum) x one 16-row block, portable loops.
template <int Type, class T>
static void gg_block_rows(T* out, int64_t os, const float* xf, const float* xsum, int64_t M, int64_t K,
                          const uint8_t* w, int64_t n0, int64_t N, const T* bias) {
  const int64_t G = K / kGgValues, GB = gg_group_bytes(Type);
  float acc[kGgRows][kGgBlock] = {};
  float c[kGgValues * kGgBlock], d[kGgBlock], mn[kGgBlock];
  for (int64_t g = 0; g < G; ++g) {
    gg_decode<Type>(c, d, mn, w + g * GB);
    for (int64_t m = 0; m < M; ++m) {
      const float* xg = xf + m * K + g * kGgValues;
      float s[kGgBlock] = {};
      for (int64_t k = 0; k < kGgValues; ++k) {
#pragma omp simd
        for (int64_t j = 0; j < kGgBlock; ++j) s[j] += xg[k] * c[k * kGgBlock + j];
      }
      const float xs = xsum[m * G + g];
#pragma omp simd
      for (int64_t j = 0; j < kGgBlock; ++j) acc[m][j] += d[j] * s[j] + mn[j] * xs;
    }
  }
  const int64_t count = std::min<int64_t>(kGgBlock, N - n0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < count; ++j)
      out[m * os + n0 + j] = from_f<T>(acc[m][j] + (bias ? to_f(bias[n0 + j]) : 0.f));
}

// Block b's stream dequantized into gemv_bf16's pair-blocked layout, dst[p][j] = (w[j, 2p], w[j, 2p+1])
// as bf16 (K/2 pairs x 16 rows): d * c + mn in fp32 is the reference's value exactly (d * c has at most
// 19 significant bits), then rounded to nearest even like torch.
template <int Type>
static void gg_dequant_pairs(uint32_t* dst, const uint8_t* w, int64_t G) {
  float c[kGgValues * kGgBlock], d[kGgBlock], mn[kGgBlock];
  for (int64_t g = 0; g < G; ++g) {
    gg_decode<Type>(c, d, mn, w + g * gg_group_bytes(Type));
    for (int64_t p = 0; p < kGgValues / 2; ++p) {
      uint32_t* o = dst + (g * kGgValues / 2 + p) * kGgBlock;
      const float* c0 = c + 2 * p * kGgBlock;
#pragma omp simd
      for (int64_t j = 0; j < kGgBlock; ++j)
        o[j] = uint32_t(from_f<bf16>(d[j] * c0[j] + mn[j])) |
               (uint32_t(from_f<bf16>(d[j] * c0[kGgBlock + j] + mn[j])) << 16);
    }
  }
}

template <int Type, class T>
static void gg_linear_portable(T* out, const T* x, const uint8_t* w, const T* bias, int64_t M, int64_t N, int64_t K,
                               int64_t xs, int64_t os, int threads) {
  const int64_t G = K / kGgValues, blocks = (N + kGgBlock - 1) / kGgBlock, bstride = G * gg_group_bytes(Type);
  std::vector<float> xf(size_t(M * K)), xsum(size_t(M * G));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k = 0; k < K; ++k) xf[m * K + k] = to_f(x[m * xs + k]);
    for (int64_t g = 0; g < G; ++g) {
      float s = 0.f;
      for (int64_t k = 0; k < kGgValues; ++k) s += xf[m * K + g * kGgValues + k];
      xsum[m * G + g] = s;
    }
  }
  split_blocks(blocks, threads, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t m = 0; m < M; m += kGgRows)
        gg_block_rows<Type>(out + m * os, os, xf.data() + m * K, xsum.data() + m * G, std::min(kGgRows, M - m), K,
                            w + b * bstride, b * kGgBlock, N, bias);
  });
}

#if defined(PLINTH_GEMV_BF16)
#define PLINTH_GGML_BF16 1
#include "ggml_linear_avx512.h"
#endif

template <int Type>
static void ggml_linear_t(void* out, const void* x, const uint8_t* w, const void* bias, int64_t M, int64_t N,
                          int64_t K, int64_t xs, int64_t os, int dtype, int threads) {
  if (dtype == kBF16) {
#ifdef PLINTH_GGML_BF16
    if (has_avx512_bf16()) {
      gg_linear_bf16<Type>((bf16*)out, (const bf16*)x, w, (const bf16*)bias, M, N, K, xs, os, threads);
      return;
    }
#endif
    gg_linear_portable<Type>((bf16*)out, (const bf16*)x, w, (const bf16*)bias, M, N, K, xs, os, threads);
  } else {
    gg_linear_portable<Type>((float*)out, (const float*)x, w, (const float*)bias, M, N, K, xs, os, threads);
  }
}

static void ggml_linear(void* out, const void* x, const uint8_t* w, const void* bias, int64_t M, int64_t N,
                        int64_t K, int64_t xs, int64_t os, int type, int dtype, int threads) {
  if (type == kQ8_0)
    ggml_linear_t<kQ8_0>(out, x, w, bias, M, N, K, xs, os, dtype, threads);
  else if (type == kQ4_0)
    ggml_linear_t<kQ4_0>(out, x, w, bias, M, N, K, xs, os, dtype, threads);
  else
    ggml_linear_t<kQ4_1>(out, x, w, bias, M, N, K, xs, os, dtype, threads);
}
