// W8A8 linear, included by kernels_impl.h:
//   out[m, n] = float(sum_k qx[m, k] * qw[n, k]) * sx[m] * sw[n] (+ bias[n]),  exact int32 sum.
// Weights: symmetric int8 per output channel (sw[n]), packed once (plinth_cpu/w8a8.py) in
// 16-row blocks of 4-byte K groups: block b (rows 16b .. 16b+15) is [K/4][16][4] int8, so one
// 64-byte load is one K group of 16 rows, the operand of vpdpbusd; rows padded to 16 and K to 4
// with zeros. wsum[n] = sum_k qw[n, k] (the +128 correction below).
// Activations: quantized per row here, symmetric: sx = absmax / 127, qx = round_half_even(x / sx)
// (0 for an all-zero row), stored as qx + 128 in [1, 255] (vpdpbusd wants u8 x s8); the int32
// sum over (qx + 128) * qw then loses 128 * wsum[n]. Every path adds the same integers, so paths
// differ only in the fp32 rounding of the final scale.

#include <type_traits>

constexpr int64_t kW8Block = 16;  // output rows per block
constexpr int64_t kW8Tile = 4;    // blocks streamed at once
constexpr int64_t kW8Rows = 6;    // activation rows per pass over a tile
constexpr int64_t kW8Chunk = 64;  // activation rows per pass over a thread's blocks

// Row m of x as offset bytes (qx + 128) in xq[m * 4G ..], K padded with 128 (qx = 0); returns sx.
template <class T>
static inline float w8_quantize_row(uint8_t* xq, const T* x, int64_t K, int64_t G) {
  float amax = 0.f;
#pragma omp simd reduction(max : amax)
  for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(to_f(x[k])));
  const float sx = amax / 127.0f;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: (v + s) - s rounds |v| < 2^22 half to even
  if (sx > 0.f) {
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) {
      float q = (to_f(x[k]) / sx + shifter) - shifter;
      q = std::min(127.f, std::max(-127.f, q));
      xq[k] = uint8_t(int32_t(q) + 128);
    }
  } else {
    for (int64_t k = 0; k < K; ++k) xq[k] = 128;
  }
  for (int64_t k = K; k < 4 * G; ++k) xq[k] = 128;
  return sx;
}

template <class T>
static inline void w8_store(T* out, const int32_t* acc, const int32_t* wsum, const float* sw, float sx,
                            const T* bias, int64_t n0, int64_t count) {
  for (int64_t j = 0; j < count; ++j) {
    const int64_t n = n0 + j;
    const float v = float(acc[j] - 128 * wsum[n]) * (sx * sw[n]);
    out[n] = from_f<T>(bias != nullptr ? v + to_f(bias[n]) : v);
  }
}

// MR activation rows x NB blocks, portable int32 loops (the same sums as vpdpbusd).
template <int MR, int NB, class T>
static void w8_tile(T* out, int64_t os, const uint8_t* xq, const float* sx, int64_t G, const int8_t* w,
                    const int32_t* wsum, const float* sw, int64_t n0, int64_t N, const T* bias) {
  int32_t acc[MR][NB * kW8Block] = {};
  const int64_t bstride = G * kW8Block * 4;
  for (int64_t g = 0; g < G; ++g) {
    for (int b = 0; b < NB; ++b) {
      const int8_t* wg = w + b * bstride + g * kW8Block * 4;
      for (int m = 0; m < MR; ++m) {
        const uint8_t* xg = xq + m * G * 4 + g * 4;
        const int32_t x0 = xg[0], x1 = xg[1], x2 = xg[2], x3 = xg[3];
        int32_t* a = acc[m] + b * kW8Block;
#pragma omp simd
        for (int64_t j = 0; j < kW8Block; ++j)
          a[j] += x0 * wg[4 * j] + x1 * wg[4 * j + 1] + x2 * wg[4 * j + 2] + x3 * wg[4 * j + 3];
      }
    }
  }
  const int64_t count = std::min<int64_t>(NB * kW8Block, N - n0);
  for (int m = 0; m < MR; ++m) w8_store(out + m * os, acc[m], wsum, sw, sx[m], bias, n0, count);
}

#if defined(PLINTH_AVX512_INTRINSICS) && defined(__GNUC__) && !defined(__clang__)
#define PLINTH_W8A8_VNNI 1
#define PLINTH_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

static bool has_avx512_vnni() {
  static const bool yes = __builtin_cpu_supports("avx512vnni");
  return yes;
}

// w8_store on 16 lanes: the same fp32 operations in the same order, `count` lanes stored.
PLINTH_VNNI_TARGET static inline __m512 w8_scaled16(__m512i acc, const int32_t* wsum, const float* sw, float sx,
                                                    __mmask16 mask) {
  const __m512i sum = _mm512_maskz_loadu_epi32(mask, wsum);
  const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, _mm512_slli_epi32(sum, 7)));
  return _mm512_mul_ps(v, _mm512_mul_ps(_mm512_set1_ps(sx), _mm512_maskz_loadu_ps(mask, sw)));
}

PLINTH_VNNI_TARGET static inline void w8_store16(float* out, __m512i acc, const int32_t* wsum, const float* sw,
                                                 float sx, const float* bias, int64_t count) {
  const __mmask16 mask = __mmask16((1u << count) - 1u);
  __m512 v = w8_scaled16(acc, wsum, sw, sx, mask);
  if (bias != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias));
  _mm512_mask_storeu_ps(out, mask, v);
}

PLINTH_VNNI_TARGET static inline void w8_store16(bf16* out, __m512i acc, const int32_t* wsum, const float* sw,
                                                 float sx, const bf16* bias, int64_t count) {
  const __mmask16 mask = __mmask16((1u << count) - 1u);
  __m512 v = w8_scaled16(acc, wsum, sw, sx, mask);
  if (bias != nullptr) {
    const __m512i b = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, bias));
    v = _mm512_add_ps(v, _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)));
  }
  const __m512i u = _mm512_castps_si512(v);  // round to nearest even as from_f<bf16>, NaN kept
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  _mm256_mask_storeu_epi16(out, mask, _mm512_cvtepi32_epi16(r));
}

// The accumulators are kept in the builtin's own type (int x 16): with __m512i (long long x 8) and
// _mm512_dpbusd_epi32's casts, GCC 12 keeps a stack copy of every accumulator, stored each step.
typedef int w8_v16si __attribute__((vector_size(64)));

// w8_quantize_row on 16 lanes: the same absmax, division, rounding (nearest even) and clamp.
PLINTH_VNNI_TARGET static inline __m512 w8_load16(const float* x, __mmask16 mask) {
  return _mm512_maskz_loadu_ps(mask, x);
}
PLINTH_VNNI_TARGET static inline __m512 w8_load16(const bf16* x, __mmask16 mask) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, x)), 16));
}

template <class T>
PLINTH_VNNI_TARGET static float w8_quantize_row16(uint8_t* xq, const T* x, int64_t K, int64_t G) {
  __m512 mx = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 mask = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1u);
    mx = _mm512_max_ps(mx, _mm512_abs_ps(w8_load16(x + k, mask)));
  }
  const float sx = _mm512_reduce_max_ps(mx) / 127.0f;
  if (!(sx > 0.f)) {
    std::memset(xq, 128, size_t(4 * G));
    return sx;
  }
  const __m512 s = _mm512_set1_ps(sx), lo = _mm512_set1_ps(-127.f), hi = _mm512_set1_ps(127.f);
  for (int64_t k = 0; k < 4 * G; k += 16) {
    const int64_t left = std::min<int64_t>(16, K - k);
    const __mmask16 in = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1u);
    __m512 q = _mm512_roundscale_ps(_mm512_div_ps(w8_load16(x + k, in), s),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_min_ps(hi, _mm512_max_ps(lo, q));
    const __m512i u = _mm512_add_epi32(_mm512_cvtps_epi32(q), _mm512_set1_epi32(128));
    const int64_t out = std::min<int64_t>(16, 4 * G - k);
    _mm_mask_storeu_epi8(xq + k, __mmask16(out >= 16 ? 0xFFFF : (1u << out) - 1u), _mm512_cvtepi32_epi8(u));
  }
  return sx;
}

// w8_tile with vpdpbusd: 64 u8 x s8 products summed into 16 int32 lanes an instruction.
template <int MR, int NB, class T>
PLINTH_VNNI_TARGET static void w8_tile_vnni(T* out, int64_t os, const uint8_t* xq, const float* sx, int64_t G,
                                            const int8_t* w, const int32_t* wsum, const float* sw, int64_t n0,
                                            int64_t N, const T* bias) {
  w8_v16si acc[MR][NB];
  for (int m = 0; m < MR; ++m)
    for (int b = 0; b < NB; ++b) acc[m][b] = w8_v16si{};
  const int64_t bstride = G * kW8Block * 4;
  const int32_t* xw = reinterpret_cast<const int32_t*>(xq);  // 4 bytes of a row = one K group
  for (int64_t g = 0; g < G; ++g) {
    w8_v16si wv[NB];
    for (int b = 0; b < NB; ++b) wv[b] = (w8_v16si)_mm512_loadu_si512(w + b * bstride + g * kW8Block * 4);
    for (int m = 0; m < MR; ++m) {
      int32_t xg;
      std::memcpy(&xg, xw + m * G + g, 4);
      const w8_v16si xv = (w8_v16si)_mm512_set1_epi32(xg);
      for (int b = 0; b < NB; ++b) acc[m][b] = __builtin_ia32_vpdpbusd_v16si(acc[m][b], xv, wv[b]);
    }
  }
  for (int b = 0; b < NB; ++b) {
    const int64_t n = n0 + b * kW8Block, count = std::min<int64_t>(kW8Block, N - n);
    if (count <= 0) break;
    for (int m = 0; m < MR; ++m)
      w8_store16(out + m * os + n, (__m512i)acc[m][b], wsum + n, sw + n, sx[m], bias ? bias + n : nullptr, count);
  }
}
#endif

// Runs tile(std::integral_constant<int, R>, m) over M rows: full tiles of kW8Rows, then the remainder.
template <class Tile>
static void w8_row_tiles(int64_t M, Tile tile) {
  int64_t m = 0;
  for (; m + kW8Rows <= M; m += kW8Rows) tile(std::integral_constant<int, kW8Rows>{}, m);
  switch (M - m) {
    case 5: tile(std::integral_constant<int, 5>{}, m); break;
    case 4: tile(std::integral_constant<int, 4>{}, m); break;
    case 3: tile(std::integral_constant<int, 3>{}, m); break;
    case 2: tile(std::integral_constant<int, 2>{}, m); break;
    case 1: tile(std::integral_constant<int, 1>{}, m); break;
    default: break;
  }
}

template <int NB, class T>
static void w8_rows(T* out, int64_t os, const uint8_t* xq, const float* sx, int64_t M, int64_t G, const int8_t* w,
                    const int32_t* wsum, const float* sw, int64_t n0, int64_t N, const T* bias) {
#ifdef PLINTH_W8A8_VNNI
  if (has_avx512_vnni()) {
    w8_row_tiles(M, [&](auto rows, int64_t m) {
      w8_tile_vnni<decltype(rows)::value, NB>(out + m * os, os, xq + m * G * 4, sx + m, G, w, wsum, sw, n0, N, bias);
    });
    return;
  }
#endif
  w8_row_tiles(M, [&](auto rows, int64_t m) {
    w8_tile<decltype(rows)::value, NB>(out + m * os, os, xq + m * G * 4, sx + m, G, w, wsum, sw, n0, N, bias);
  });
}

// Blocks [b0, b1) for M activation rows.
template <class T>
static void w8_blocks(T* out, int64_t os, const uint8_t* xq, const float* sx, int64_t M, int64_t G, const int8_t* w,
                      const int32_t* wsum, const float* sw, int64_t b0, int64_t b1, int64_t N, const T* bias) {
  const int64_t bstride = G * kW8Block * 4;
  int64_t b = b0;
  for (; b + kW8Tile <= b1; b += kW8Tile)
    w8_rows<kW8Tile>(out, os, xq, sx, M, G, w + b * bstride, wsum, sw, b * kW8Block, N, bias);
  switch (b1 - b) {
    case 3: w8_rows<3>(out, os, xq, sx, M, G, w + b * bstride, wsum, sw, b * kW8Block, N, bias); break;
    case 2: w8_rows<2>(out, os, xq, sx, M, G, w + b * bstride, wsum, sw, b * kW8Block, N, bias); break;
    case 1: w8_rows<1>(out, os, xq, sx, M, G, w + b * bstride, wsum, sw, b * kW8Block, N, bias); break;
    default: break;
  }
}

template <class T>
static void w8a8_linear_t(T* out, const T* x, const int8_t* w, const int32_t* wsum, const float* sw, const T* bias,
                          int64_t M, int64_t N, int64_t K, int64_t xs, int64_t os, int threads) {
  const int64_t G = (K + 3) / 4, blocks = (N + kW8Block - 1) / kW8Block;
  std::vector<uint8_t> xq(static_cast<size_t>(M * G * 4));
  std::vector<float> sx(static_cast<size_t>(M));
  parallel_for(M, threads, M * K >= kParallelElems, [&](int64_t m) {
#ifdef PLINTH_W8A8_VNNI
    if (has_avx512_vnni()) {
      sx[m] = w8_quantize_row16(xq.data() + m * G * 4, x + m * xs, K, G);
      return;
    }
#endif
    sx[m] = w8_quantize_row(xq.data() + m * G * 4, x + m * xs, K, G);
  });
  split_blocks(blocks, threads, [&](int64_t b0, int64_t b1) {
    for (int64_t m = 0; m < M; m += kW8Chunk)
      w8_blocks(out + m * os, os, xq.data() + m * G * 4, sx.data() + m, std::min(kW8Chunk, M - m), G, w, wsum, sw,
                b0, b1, N, bias);
  });
}

static void w8a8_linear(void* out, const void* x, const int8_t* w, const int32_t* wsum, const float* sw,
                        const void* bias, int64_t M, int64_t N, int64_t K, int64_t xs, int64_t os, int dtype,
                        int threads) {
  if (dtype == kBF16)
    w8a8_linear_t((bf16*)out, (const bf16*)x, w, wsum, sw, (const bf16*)bias, M, N, K, xs, os, threads);
  else
    w8a8_linear_t((float*)out, (const float*)x, w, wsum, sw, (const float*)bias, M, N, K, xs, os, threads);
}
