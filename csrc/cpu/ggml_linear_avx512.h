// ggml_linear_impl.h's bf16 path on AVX512-BF16; included there in the avx512 build with GCC only,
// next to gemv_bf16_avx512.h (whose tiles and store it reuses).
//
// Q4_0 / Q4_1 at small M feed the nibbles straight to vdpbf16ps. A nibble q ORed into 0x4300 is the
// bf16 of 128 + q (bf16 holds the integers 128..255 exactly), so one shift and one ternary-logic op
// turn a 64-byte load of packed words into the 16-row operand of one k pair. Over a group the
// kernel sums s = sum x (128 + q) (exact products, fp32 sums) and adds d * s + (m - 128 d) * sum x,
// which is sum x (d q + m); Q4_0's q - 8 is m = -8 d. Q8_0 at small M: int8 widened to fp32, FMAs.
// Larger M dequantizes a tile of blocks into the gemv_bf16 layout (bf16-rounded like the reference)
// in a per-thread scratch and runs gemv_bf16's register-blocked tiles over all M rows.

static_assert(kGgBlock == 16, "gemv_store_tile stores 16 outputs a block");

// M below these: the direct kernels; from there on the dequantizing path (measured crossovers on the
// 2-core EPYC, SmolLM2 shapes: Q4 direct 160 vs 163 us at M = 32, 1276 vs 1020 at 256; Q8 108 vs 60 at 8)
constexpr int64_t kGgDirectRowsQ4 = 48;
constexpr int64_t kGgDirectRowsQ8 = 8;
constexpr int64_t kGgPrefetch = 4;  // groups

template <int Type, int MR, int NB, int CH>
PLINTH_BF16_TARGET static void gg_q4_tile_bf16(bf16* out, int64_t os, const uint32_t* xp, const float* xsum,
                                               int64_t P, int64_t G, const uint8_t* w, int64_t bstride, int64_t n0,
                                               int64_t N, const bf16* bias) {
  constexpr int64_t GB = Type == kQ4_1 ? 16 * 16 + 64 : 16 * 16 + 32;
  const __m512i low = _mm512_set1_epi32(0x000F000F), base = _mm512_set1_epi32(0x43004300);
  const __m512 offset = _mm512_set1_ps(Type == kQ4_1 ? 128.f : 136.f);
  __m512 acc[MR][NB];
  for (int m = 0; m < MR; ++m)
    for (int b = 0; b < NB; ++b) acc[m][b] = _mm512_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    __m512 part[CH][MR][NB];  // CH independent chains per accumulator: vdpbf16ps latency at MR = 1
    for (int c = 0; c < CH; ++c)
      for (int m = 0; m < MR; ++m)
        for (int b = 0; b < NB; ++b) part[c][m][b] = _mm512_setzero_ps();
    if (g + kGgPrefetch < G)  // the stream kGgPrefetch groups ahead (DRAM latency at decode)
      for (int b = 0; b < NB; ++b)
        for (int64_t line = 0; line < GB; line += 64)
          _mm_prefetch(reinterpret_cast<const char*>(w + b * bstride + (g + kGgPrefetch) * GB + line), _MM_HINT_T0);
    for (int q = 0; q < 4; ++q) {
      __m512i v[NB];
      for (int b = 0; b < NB; ++b) v[b] = _mm512_loadu_si512(w + b * bstride + g * GB + q * 64);
      for (int i = 0; i < 4; ++i) {
        __m512bh wv[NB];
        for (int b = 0; b < NB; ++b)  // (v >> 4i) & 0x000F000F | 0x43004300
          wv[b] = (__m512bh)_mm512_ternarylogic_epi32(_mm512_srli_epi32(v[b], 4 * i), low, base, 0xEA);
        for (int m = 0; m < MR; ++m) {
          const __m512bh xv = (__m512bh)_mm512_set1_epi32(int(xp[m * P + g * 16 + q * 4 + i]));
          for (int b = 0; b < NB; ++b) part[i % CH][m][b] = _mm512_dpbf16_ps(part[i % CH][m][b], xv, wv[b]);
        }
      }
    }
    for (int b = 0; b < NB; ++b) {
      const uint8_t* scales = w + b * bstride + g * GB + 256;
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales)));
      const __m512 mn = Type == kQ4_1 ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + 32)))
                                      : _mm512_setzero_ps();
      const __m512 shift = _mm512_fnmadd_ps(d, offset, mn);  // m - 128 d (Q4_0: -136 d)
      for (int m = 0; m < MR; ++m) {
        __m512 s = part[0][m][b];
        for (int c = 1; c < CH; ++c) s = _mm512_add_ps(s, part[c][m][b]);
        acc[m][b] = _mm512_fmadd_ps(shift, _mm512_set1_ps(xsum[m * G + g]), _mm512_fmadd_ps(d, s, acc[m][b]));
      }
    }
  }
  gemv_store_tile(out, os, acc, n0, N, bias);
}

// Runs tile(std::integral_constant<int, MR>{}, std::integral_constant<int, CH>{}, m) over M rows: MR = 6
// rows at a time with NB <= 2 blocks (decode shared by more rows), pairs with NB = 4 (more
// independent streams); 1 or 2 rows get two chains per accumulator (vdpbf16ps latency).
template <int NB, class Tile>
static inline void gg_row_tiles(int64_t M, Tile tile) {
  using R1 = std::integral_constant<int, 1>;
  using R2 = std::integral_constant<int, 2>;
  int64_t m = 0;
  if constexpr (NB <= 2) {
    for (; m + 6 <= M; m += 6) tile(std::integral_constant<int, 6>{}, R1{}, m);
    switch (M - m) {
      case 5: tile(std::integral_constant<int, 5>{}, R1{}, m); break;
      case 4: tile(std::integral_constant<int, 4>{}, R1{}, m); break;
      case 3: tile(std::integral_constant<int, 3>{}, R1{}, m); break;
      case 2: tile(R2{}, R2{}, m); break;
      case 1: tile(R1{}, R2{}, m); break;
      default: break;
    }
  } else {
    for (; m + 2 <= M; m += 2) tile(R2{}, R1{}, m);
    if (m < M) tile(R1{}, R2{}, m);
  }
}

template <int Type, int NB>
PLINTH_BF16_TARGET static void gg_q4_rows_bf16(bf16* out, int64_t os, const uint32_t* xp, const float* xsum,
                                               int64_t M, int64_t P, int64_t G, const uint8_t* w, int64_t bstride,
                                               int64_t n0, int64_t N, const bf16* bias) {
  gg_row_tiles<NB>(M, [&](auto rows, auto chains, int64_t m) {
    gg_q4_tile_bf16<Type, decltype(rows)::value, NB, decltype(chains)::value>(
        out + m * os, os, xp + m * P, xsum + m * G, P, G, w, bstride, n0, N, bias);
  });
}

// Blocks [b0, b1): four at a time for 1-3 rows, two at a time (6-row tiles) from 4 rows.
template <int Type>
PLINTH_BF16_TARGET static void gg_q4_blocks_bf16(bf16* out, int64_t os, const uint32_t* xp, const float* xsum,
                                                 int64_t M, int64_t P, int64_t G, const uint8_t* w, int64_t b0,
                                                 int64_t b1, int64_t N, const bf16* bias) {
  const int64_t bstride = G * gg_group_bytes(Type);
  int64_t b = b0;
  if (M < 4)
    for (; b + 4 <= b1; b += 4)
      gg_q4_rows_bf16<Type, 4>(out, os, xp, xsum, M, P, G, w + b * bstride, bstride, b * kGgBlock, N, bias);
  for (; b + 2 <= b1; b += 2)
    gg_q4_rows_bf16<Type, 2>(out, os, xp, xsum, M, P, G, w + b * bstride, bstride, b * kGgBlock, N, bias);
  if (b < b1) gg_q4_rows_bf16<Type, 1>(out, os, xp, xsum, M, P, G, w + b * bstride, bstride, b * kGgBlock, N, bias);
}

// Q8_0 at small M: the int8 values widened to fp32 (exact), FMAs with fp32 activations, d per group.
template <int MR, int NB, int CH>
PLINTH_BF16_TARGET static void gg_q8_tile_bf16(bf16* out, int64_t os, const float* xf, int64_t K, int64_t G,
                                               const uint8_t* w, int64_t bstride, int64_t n0, int64_t N,
                                               const bf16* bias) {
  constexpr int64_t GB = 32 * 16 + 32;
  __m512 acc[MR][NB];
  for (int m = 0; m < MR; ++m)
    for (int b = 0; b < NB; ++b) acc[m][b] = _mm512_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    __m512 part[CH][MR][NB];
    for (int c = 0; c < CH; ++c)
      for (int m = 0; m < MR; ++m)
        for (int b = 0; b < NB; ++b) part[c][m][b] = _mm512_setzero_ps();
    if (g + kGgPrefetch < G)
      for (int b = 0; b < NB; ++b)
        for (int64_t line = 0; line < GB; line += 64)
          _mm_prefetch(reinterpret_cast<const char*>(w + b * bstride + (g + kGgPrefetch) * GB + line), _MM_HINT_T0);
    for (int k = 0; k < kGgValues; ++k) {
      __m512 wv[NB];
      for (int b = 0; b < NB; ++b)
        wv[b] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + b * bstride + g * GB + k * 16))));
      for (int m = 0; m < MR; ++m) {
        const __m512 xv = _mm512_set1_ps(xf[m * K + g * kGgValues + k]);
        for (int b = 0; b < NB; ++b) part[k % CH][m][b] = _mm512_fmadd_ps(xv, wv[b], part[k % CH][m][b]);
      }
    }
    for (int b = 0; b < NB; ++b) {
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + b * bstride + g * GB + 512)));
      for (int m = 0; m < MR; ++m) {
        __m512 s = part[0][m][b];
        for (int c = 1; c < CH; ++c) s = _mm512_add_ps(s, part[c][m][b]);
        acc[m][b] = _mm512_fmadd_ps(d, s, acc[m][b]);
      }
    }
  }
  gemv_store_tile(out, os, acc, n0, N, bias);
}

template <int NB>
PLINTH_BF16_TARGET static void gg_q8_rows_bf16(bf16* out, int64_t os, const float* xf, int64_t M, int64_t K,
                                               int64_t G, const uint8_t* w, int64_t bstride, int64_t n0, int64_t N,
                                               const bf16* bias) {
  gg_row_tiles<NB>(M, [&](auto rows, auto chains, int64_t m) {
    gg_q8_tile_bf16<decltype(rows)::value, NB, decltype(chains)::value>(out + m * os, os, xf + m * K, K, G, w,
                                                                        bstride, n0, N, bias);
  });
}

PLINTH_BF16_TARGET static void gg_q8_blocks_bf16(bf16* out, int64_t os, const float* xf, int64_t M, int64_t K,
                                                 const uint8_t* w, int64_t b0, int64_t b1, int64_t N,
                                                 const bf16* bias) {
  const int64_t G = K / kGgValues, bstride = G * gg_group_bytes(kQ8_0);
  int64_t b = b0;
  if (M < 4)
    for (; b + 4 <= b1; b += 4) gg_q8_rows_bf16<4>(out, os, xf, M, K, G, w + b * bstride, bstride, b * kGgBlock, N, bias);
  for (; b + 2 <= b1; b += 2) gg_q8_rows_bf16<2>(out, os, xf, M, K, G, w + b * bstride, bstride, b * kGgBlock, N, bias);
  if (b < b1) gg_q8_rows_bf16<1>(out, os, xf, M, K, G, w + b * bstride, bstride, b * kGgBlock, N, bias);
}

// gg_dequant_pairs with intrinsics: the same fp32 values (d * c + mn, one rounding), rounded to bf16 by
// vcvtne2ps2bf16 (nearest even; its flush of fp32 denormals never applies: every value is 0 or a
// multiple of 2^-24), then interleaved into (k, k+1) pairs.
template <int Type>
PLINTH_BF16_TARGET static void gg_dequant_pairs_bf16(uint32_t* dst, const uint8_t* w, int64_t G) {
  constexpr int64_t GB = Type == kQ8_0 ? 32 * 16 + 32 : Type == kQ4_0 ? 16 * 16 + 32 : 16 * 16 + 64;
  constexpr int64_t QB = Type == kQ8_0 ? 512 : 256;
  const __m512i pairs = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i low = _mm512_set1_epi32(15);
  for (int64_t g = 0; g < G; ++g) {
    const uint8_t* grp = w + g * GB;
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(grp + QB)));
    const __m512 mn = Type == kQ4_1 ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(grp + QB + 32)))
                                    : _mm512_setzero_ps();
    for (int p = 0; p < 16; ++p) {
      __m512 lo, hi;
      if constexpr (Type == kQ8_0) {
        lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(grp + 32 * p))));
        hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(grp + 32 * p + 16))));
      } else {
        const __m512i v = _mm512_loadu_si512(grp + (p / 4) * 64);
        const unsigned shift = 4 * unsigned(p % 4);
        lo = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v, shift), low));
        hi = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v, shift + 16), low));
        if constexpr (Type == kQ4_0) {
          lo = _mm512_sub_ps(lo, _mm512_set1_ps(8.f));
          hi = _mm512_sub_ps(hi, _mm512_set1_ps(8.f));
        }
      }
      const __m512bh both = _mm512_cvtne2ps_pbh(_mm512_fmadd_ps(d, hi, mn), _mm512_fmadd_ps(d, lo, mn));
      _mm512_storeu_si512(dst + (g * 16 + p) * kGgBlock, _mm512_permutexvar_epi16(pairs, (__m512i)both));
    }
  }
}

// Dequantize kGemvTile blocks at a time into the thread's scratch, then gemv_bf16's tiles over all M rows.
template <int Type>
PLINTH_BF16_TARGET static void gg_dequant_blocks_bf16(bf16* out, int64_t os, const uint32_t* xp, int64_t M,
                                                      int64_t P, int64_t G, const uint8_t* w, int64_t b0, int64_t b1,
                                                      int64_t N, const bf16* bias) {
  const int64_t bstride = G * gg_group_bytes(Type), wstride = P * kGemvBlock;
  thread_local std::vector<uint32_t> scratch;
  scratch.resize(size_t(kGemvTile * wstride));
  for (int64_t b = b0; b < b1; b += kGemvTile) {
    const int64_t nb = std::min<int64_t>(kGemvTile, b1 - b);
    for (int64_t i = 0; i < nb; ++i) gg_dequant_pairs_bf16<Type>(scratch.data() + i * wstride, w + (b + i) * bstride, G);
    const int64_t n0 = b * kGemvBlock;
    switch (nb) {
      case 4: gemv_rows_bf16<4>(out, os, xp, M, P, scratch.data(), n0, N, bias); break;
      case 3: gemv_rows_bf16<3>(out, os, xp, M, P, scratch.data(), n0, N, bias); break;
      case 2: gemv_rows_bf16<2>(out, os, xp, M, P, scratch.data(), n0, N, bias); break;
      default: gemv_rows_bf16<1>(out, os, xp, M, P, scratch.data(), n0, N, bias); break;
    }
  }
}

template <int Type>
static void gg_linear_bf16(bf16* out, const bf16* x, const uint8_t* w, const bf16* bias, int64_t M, int64_t N,
                           int64_t K, int64_t xs, int64_t os, int threads) {
  const int64_t P = K / 2, G = K / kGgValues, blocks = (N + kGgBlock - 1) / kGgBlock;
  std::vector<uint32_t> xp(size_t(M * P));  // activation pairs, as gemv_bf16 reads them
  for (int64_t m = 0; m < M; ++m) std::memcpy(xp.data() + m * P, x + m * xs, size_t(K) * sizeof(bf16));
  if (M >= (Type == kQ8_0 ? kGgDirectRowsQ8 : kGgDirectRowsQ4)) {
    split_blocks(blocks, threads, [&](int64_t b0, int64_t b1) {
      gg_dequant_blocks_bf16<Type>(out, os, xp.data(), M, P, G, w, b0, b1, N, bias);
    });
    return;
  }
  if constexpr (Type == kQ8_0) {
    std::vector<float> xf(size_t(M * K));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) xf[m * K + k] = to_f(x[m * xs + k]);
    split_blocks(blocks, threads, [&](int64_t b0, int64_t b1) {
      gg_q8_blocks_bf16(out, os, xf.data(), M, K, w, b0, b1, N, bias);
    });
    return;
  }
  std::vector<float> xsum(size_t(M * G));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t g = 0; g < G; ++g) {
      float s = 0.f;
      for (int64_t k = 0; k < kGgValues; ++k) s += to_f(x[m * xs + g * kGgValues + k]);
      xsum[m * G + g] = s;
    }
  if constexpr (Type != kQ8_0)
    split_blocks(blocks, threads, [&](int64_t b0, int64_t b1) {
        gg_q4_blocks_bf16<Type>(out, os, xp.data(), xsum.data(), M, P, G, w, b0, b1, N, bias);
    });
}
