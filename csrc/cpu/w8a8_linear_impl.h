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

// w8_tile with vpdpbusd: 64 u8 x s8 products summed into 16 int32 lanes an instruction.
template <int MR, int NB, class T>
PLINTH_VNNI_TARGET static void w8_tile_vnni(T* out, int64_t os, const uint8_t* xq, const float* sx, int64_t G,
                                            const int8_t* w, const int32_t* wsum, const float* sw, int64_t n0,
                                            int64_t N, const T* bias) {
  __m512i acc[MR][NB];
  for (int m = 0; m < MR; ++m)
    for (int b = 0; b < NB; ++b) acc[m][b] = _mm512_setzero_si512();
  const int64_t bstride = G * kW8Block * 4;
  const int32_t* xw = reinterpret_cast<const int32_t*>(xq);  // 4 bytes of a row = one K group
  for (int64_t g = 0; g < G; ++g) {
    __m512i wv[NB];
    for (int b = 0; b < NB; ++b) wv[b] = _mm512_loadu_si512(w + b * bstride + g * kW8Block * 4);
    for (int m = 0; m < MR; ++m) {
      int32_t xg;
      std::memcpy(&xg, xw + m * G + g, 4);
      const __m512i xv = _mm512_set1_epi32(xg);
      for (int b = 0; b < NB; ++b) acc[m][b] = _mm512_dpbusd_epi32(acc[m][b], xv, wv[b]);
    }
  }
  for (int b = 0; b < NB; ++b) {
    const int64_t n = n0 + b * kW8Block, count = std::min<int64_t>(kW8Block, N - n);
    if (count <= 0) break;
    for (int m = 0; m < MR; ++m) {
      alignas(64) int32_t a[kW8Block];
      _mm512_store_si512(a, acc[m][b]);
      w8_store(out + m * os, a, wsum, sw, sx[m], bias, n, count);
    }
  }
}
#endif

template <int NB, class T>
static void w8_rows(T* out, int64_t os, const uint8_t* xq, const float* sx, int64_t M, int64_t G, const int8_t* w,
                    const int32_t* wsum, const float* sw, int64_t n0, int64_t N, const T* bias) {
#ifdef PLINTH_W8A8_VNNI
  if (has_avx512_vnni()) {
#define PLINTH_W8_TILE(R) w8_tile_vnni<R, NB>(out + m * os, os, xq + m * G * 4, sx + m, G, w, wsum, sw, n0, N, bias)
    int64_t m = 0;
    for (; m + kW8Rows <= M; m += kW8Rows) PLINTH_W8_TILE(kW8Rows);
    switch (M - m) {
      case 5: PLINTH_W8_TILE(5); break;
      case 4: PLINTH_W8_TILE(4); break;
      case 3: PLINTH_W8_TILE(3); break;
      case 2: PLINTH_W8_TILE(2); break;
      case 1: PLINTH_W8_TILE(1); break;
      default: break;
    }
#undef PLINTH_W8_TILE
    return;
  }
#endif
#define PLINTH_W8_TILE(R) w8_tile<R, NB>(out + m * os, os, xq + m * G * 4, sx + m, G, w, wsum, sw, n0, N, bias)
  int64_t m = 0;
  for (; m + kW8Rows <= M; m += kW8Rows) PLINTH_W8_TILE(kW8Rows);
  switch (M - m) {
    case 5: PLINTH_W8_TILE(5); break;
    case 4: PLINTH_W8_TILE(4); break;
    case 3: PLINTH_W8_TILE(3); break;
    case 2: PLINTH_W8_TILE(2); break;
    case 1: PLINTH_W8_TILE(1); break;
    default: break;
  }
#undef PLINTH_W8_TILE
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
