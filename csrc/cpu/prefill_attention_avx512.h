// The two inner products of prefill_attention_impl.h with AVX-512 intrinsics, register-blocked;
// included by kernels_impl.h in the avx512 build only (PLINTH_AVX512_INTRINSICS). Same
// signatures and results (fp32 FMAs) as the portable loops they replace.
#include <immintrin.h>

constexpr int64_t kKTileVecs = 2;  // kKTile / 16
static_assert(kKTile == 16 * kKTileVecs, "the avx512 score tile is 32 keys");

// fast_exp of kernels_impl.h on 16 lanes (same clamp and polynomial; 2^n by scalef)
static inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f),
                                   _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x));
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(y, n);
}

// tile_softmax of prefill_attention_impl.h: the row's allowed keys [lo, hi) as a lane mask
static void tile_softmax(float* s, float* mx, float* sum, float* alpha, int64_t M, int64_t G, int64_t pos0,
                         int64_t k0, int64_t n, int64_t window) {
  const __m512 none = _mm512_set1_ps(kNoMax);
  for (int64_t m = 0; m < M; ++m) {
    const int64_t pos = pos0 + m / G;
    const int64_t hi = std::min<int64_t>(n, pos - k0 + 1);
    const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1 - k0) : 0;
    const uint64_t below_hi = hi <= 0 ? 0 : (uint64_t(1) << hi) - 1, below_lo = (uint64_t(1) << lo) - 1;
    const uint32_t bits = uint32_t(below_hi & ~below_lo);
    const __mmask16 m0 = __mmask16(bits & 0xFFFFu), m1 = __mmask16(bits >> 16);
    float* sm = s + m * kKTile;
    const __m512 s0 = _mm512_loadu_ps(sm), s1 = _mm512_loadu_ps(sm + 16);
    const float tile_max = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_mask_mov_ps(none, m0, s0),
                                                              _mm512_mask_mov_ps(none, m1, s1)));
    const float new_max = std::max(mx[m], tile_max);
    const __m512 nm = _mm512_set1_ps(new_max);
    const __m512 e0 = _mm512_maskz_mov_ps(m0, exp16(_mm512_sub_ps(s0, nm)));
    const __m512 e1 = _mm512_maskz_mov_ps(m1, exp16(_mm512_sub_ps(s1, nm)));
    _mm512_storeu_ps(sm, e0);
    _mm512_storeu_ps(sm + 16, e1);
    alpha[m] = fast_exp(mx[m] - new_max);
    sum[m] = sum[m] * alpha[m] + _mm512_reduce_add_ps(_mm512_add_ps(e0, e1));
    mx[m] = new_max;
  }
}

// RN query rows x 32 keys: 2*RN accumulators, each step loads two key vectors and broadcasts RN queries
template <int RN>
static inline void scores_rows(float* s, const float* q, const float* kt, int64_t D) {
  __m512 acc[RN][kKTileVecs];
  for (int r = 0; r < RN; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t d = 0; d < D; ++d) {
    const __m512 k0 = _mm512_loadu_ps(kt + d * kKTile), k1 = _mm512_loadu_ps(kt + d * kKTile + 16);
    for (int r = 0; r < RN; ++r) {
      const __m512 qd = _mm512_set1_ps(q[r * D + d]);
      acc[r][0] = _mm512_fmadd_ps(qd, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(qd, k1, acc[r][1]);
    }
  }
  for (int r = 0; r < RN; ++r) {
    _mm512_storeu_ps(s + r * kKTile, acc[r][0]);
    _mm512_storeu_ps(s + r * kKTile + 16, acc[r][1]);
  }
}

static void tile_scores(float* s, const float* q, const float* kt, int64_t M, int64_t D) {
  int64_t m = 0;
  for (; m + 6 <= M; m += 6) scores_rows<6>(s + m * kKTile, q + m * D, kt, D);
  switch (M - m) {
    case 5: scores_rows<5>(s + m * kKTile, q + m * D, kt, D); break;
    case 4: scores_rows<4>(s + m * kKTile, q + m * D, kt, D); break;
    case 3: scores_rows<3>(s + m * kKTile, q + m * D, kt, D); break;
    case 2: scores_rows<2>(s + m * kKTile, q + m * D, kt, D); break;
    case 1: scores_rows<1>(s + m * kKTile, q + m * D, kt, D); break;
    default: break;
  }
}

// RN rows x CN 16-feature vectors of acc: acc = acc * alpha + p . v over n keys, in registers
template <int RN, int CN>
static inline void values_block(float* acc, const float* alpha, const float* p, const float* v, int64_t n,
                                int64_t D) {
  __m512 a[RN][CN];
  for (int r = 0; r < RN; ++r) {
    const __m512 al = _mm512_set1_ps(alpha[r]);
    for (int c = 0; c < CN; ++c) a[r][c] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * D + c * 16), al);
  }
  for (int64_t j = 0; j < n; ++j) {
    __m512 vj[CN];
    for (int c = 0; c < CN; ++c) vj[c] = _mm512_loadu_ps(v + j * D + c * 16);
    for (int r = 0; r < RN; ++r) {
      const __m512 w = _mm512_set1_ps(p[r * kKTile + j]);
      for (int c = 0; c < CN; ++c) a[r][c] = _mm512_fmadd_ps(w, vj[c], a[r][c]);
    }
  }
  for (int r = 0; r < RN; ++r)
    for (int c = 0; c < CN; ++c) _mm512_storeu_ps(acc + r * D + c * 16, a[r][c]);
}

template <int RN>
static inline void values_rows(float* acc, const float* alpha, const float* p, const float* v, int64_t n,
                               int64_t D) {
  int64_t c = 0;  // feature vectors in chunks of 4 (4 * RN accumulators)
  for (; c + 4 <= D / 16; c += 4) values_block<RN, 4>(acc + c * 16, alpha, p, v + c * 16, n, D);
  switch (D / 16 - c) {
    case 3: values_block<RN, 3>(acc + c * 16, alpha, p, v + c * 16, n, D); break;
    case 2: values_block<RN, 2>(acc + c * 16, alpha, p, v + c * 16, n, D); break;
    case 1: values_block<RN, 1>(acc + c * 16, alpha, p, v + c * 16, n, D); break;
    default: break;
  }
}

static void tile_values(float* acc, const float* alpha, const float* p, const float* v, int64_t M, int64_t n,
                        int64_t D) {
  if (D % 16) {  // no vector path: the portable loop
    for (int64_t m = 0; m < M; ++m) {
      float* am = acc + m * D;
      for (int64_t d = 0; d < D; ++d) am[d] *= alpha[m];
      for (int64_t j = 0; j < n; ++j)
        for (int64_t d = 0; d < D; ++d) am[d] += p[m * kKTile + j] * v[j * D + d];
    }
    return;
  }
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) values_rows<4>(acc + m * D, alpha + m, p + m * kKTile, v, n, D);
  switch (M - m) {
    case 3: values_rows<3>(acc + m * D, alpha + m, p + m * kKTile, v, n, D); break;
    case 2: values_rows<2>(acc + m * D, alpha + m, p + m * kKTile, v, n, D); break;
    case 1: values_rows<1>(acc + m * D, alpha + m, p + m * kKTile, v, n, D); break;
    default: break;
  }
}

// ---- bf16 query and cache on CPUs with AVX512-BF16: vdpbf16ps (pairs of bf16 products summed in
// fp32) for both inner products, twice the multiply-adds per instruction of the fp32 path. Scores
// are exact products of the bf16 inputs (scaled afterwards, as the reference does); probabilities
// are rounded to bf16 for the value product, as torch's bf16 flash attention does.
#if defined(__GNUC__) && !defined(__clang__)
#define PLINTH_PREFILL_BF16 1
#define PLINTH_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")))

static bool has_avx512_bf16() {
  static const bool yes = __builtin_cpu_supports("avx512bf16");
  return yes;
}

template <int RN>
PLINTH_BF16_TARGET static inline void scores_rows_bf16(float* s, const uint32_t* q, const uint32_t* kp,
                                                       int64_t pairs, float scale) {
  __m512 acc[RN][kKTileVecs];
  for (int r = 0; r < RN; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh k0 = (__m512bh)_mm512_loadu_si512(kp + p * kKTile);
    const __m512bh k1 = (__m512bh)_mm512_loadu_si512(kp + p * kKTile + 16);
    for (int r = 0; r < RN; ++r) {
      const __m512bh qp = (__m512bh)_mm512_set1_epi32(int(q[r * pairs + p]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], qp, k0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], qp, k1);
    }
  }
  const __m512 sc = _mm512_set1_ps(scale);
  for (int r = 0; r < RN; ++r) {
    _mm512_storeu_ps(s + r * kKTile, _mm512_mul_ps(acc[r][0], sc));
    _mm512_storeu_ps(s + r * kKTile + 16, _mm512_mul_ps(acc[r][1], sc));
  }
}

template <int RN, int CN>
PLINTH_BF16_TARGET static inline void values_block_bf16(float* acc, const float* alpha, const uint32_t* pp,
                                                        const uint32_t* vp, int64_t npairs, int64_t D) {
  __m512 a[RN][CN];
  for (int r = 0; r < RN; ++r) {
    const __m512 al = _mm512_set1_ps(alpha[r]);
    for (int c = 0; c < CN; ++c) a[r][c] = _mm512_mul_ps(_mm512_loadu_ps(acc + r * D + c * 16), al);
  }
  for (int64_t jp = 0; jp < npairs; ++jp) {
    __m512bh v[CN];
    for (int c = 0; c < CN; ++c) v[c] = (__m512bh)_mm512_loadu_si512(vp + jp * D + c * 16);
    for (int r = 0; r < RN; ++r) {
      const __m512bh w = (__m512bh)_mm512_set1_epi32(int(pp[r * (kKTile / 2) + jp]));
      for (int c = 0; c < CN; ++c) a[r][c] = _mm512_dpbf16_ps(a[r][c], w, v[c]);
    }
  }
  for (int r = 0; r < RN; ++r)
    for (int c = 0; c < CN; ++c) _mm512_storeu_ps(acc + r * D + c * 16, a[r][c]);
}

template <int RN>
PLINTH_BF16_TARGET static inline void values_rows_bf16(float* acc, const float* alpha, const uint32_t* pp,
                                                       const uint32_t* vp, int64_t npairs, int64_t D) {
  int64_t c = 0;
  for (; c + 4 <= D / 16; c += 4) values_block_bf16<RN, 4>(acc + c * 16, alpha, pp, vp + c * 16, npairs, D);
  switch (D / 16 - c) {
    case 3: values_block_bf16<RN, 3>(acc + c * 16, alpha, pp, vp + c * 16, npairs, D); break;
    case 2: values_block_bf16<RN, 2>(acc + c * 16, alpha, pp, vp + c * 16, npairs, D); break;
    case 1: values_block_bf16<RN, 1>(acc + c * 16, alpha, pp, vp + c * 16, npairs, D); break;
    default: break;
  }
}

// prefill_item for bf16 queries and cache, head sizes that are multiples of 16
PLINTH_BF16_TARGET static void prefill_item_bf16(bf16* out, int64_t os, const bf16* q, int64_t qs, const bf16* kc,
                                                 const bf16* vc, const int32_t* bt, int64_t ctx, int64_t i0,
                                                 int64_t i1, int64_t h, const PrefillShape& sh, float* buf) {
  constexpr int64_t kPairs = kKTile / 2;  // key pairs per tile
  const int64_t G = sh.heads / sh.kv_heads, D = sh.D, P = D / 2, rows = i1 - i0, M = G * rows;
  const int64_t row = sh.kv_heads * D;
  float* acc = buf;                                       // [M, D]
  float* s = acc + M * D;                                 // [M, kKTile]
  float* mx = s + M * kKTile;                             // [M]
  float* sum = mx + M;                                    // [M]
  float* alpha = sum + M;                                 // [M]
  uint32_t* qp = reinterpret_cast<uint32_t*>(alpha + M);  // [M, P] query feature pairs
  uint32_t* kp = qp + M * P;                              // [P, kKTile] key tile: feature pair p of key j
  uint32_t* vp = kp + P * kKTile;                         // [kPairs, D] value tile: feature d of keys 2jp, 2jp+1
  uint32_t* pp = vp + kPairs * D;                         // [M, kPairs] probabilities of key pairs
  for (int64_t m = 0; m < M; ++m) {
    std::memcpy(qp + m * P, q + (i0 + m / G) * qs + (h * G + m % G) * D, size_t(D) * sizeof(bf16));
    mx[m] = kNoMax;
    sum[m] = 0.f;
  }
  std::fill(acc, acc + M * D, 0.f);
  const int64_t first = sh.window > 0 ? std::max<int64_t>(0, ctx + i0 - sh.window + 1) : 0;
  const int64_t end = ctx + i1;
  const auto slot_row = [&](int64_t p) { return (int64_t(bt[p / sh.block_size]) * sh.block_size + p % sh.block_size) * row; };
  for (int64_t k0 = first; k0 < end; k0 += kKTile) {
    const int64_t n = std::min<int64_t>(kKTile, end - k0), npairs = (n + 1) / 2;
    for (int64_t j = 0; j < kKTile; ++j) {
      if (j < n) {
        const uint32_t* kr = reinterpret_cast<const uint32_t*>(kc + slot_row(k0 + j));
        for (int64_t p = 0; p < P; ++p) kp[p * kKTile + j] = kr[p];
      } else {
        for (int64_t p = 0; p < P; ++p) kp[p * kKTile + j] = 0u;
      }
    }
    for (int64_t jp = 0; jp < npairs; ++jp) {
      const bf16* v0 = vc + slot_row(k0 + 2 * jp);
      const bf16* v1 = 2 * jp + 1 < n ? vc + slot_row(k0 + 2 * jp + 1) : nullptr;
      for (int64_t d = 0; d < D; d += 16) {
        const __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v0 + d)));
        const __m512i hi = v1 ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v1 + d)))
                              : _mm512_setzero_si512();
        _mm512_storeu_si512(vp + jp * D + d, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
      }
    }
    int64_t m = 0;
    for (; m + 6 <= M; m += 6) scores_rows_bf16<6>(s + m * kKTile, qp + m * P, kp, P, sh.scale);
    switch (M - m) {
      case 5: scores_rows_bf16<5>(s + m * kKTile, qp + m * P, kp, P, sh.scale); break;
      case 4: scores_rows_bf16<4>(s + m * kKTile, qp + m * P, kp, P, sh.scale); break;
      case 3: scores_rows_bf16<3>(s + m * kKTile, qp + m * P, kp, P, sh.scale); break;
      case 2: scores_rows_bf16<2>(s + m * kKTile, qp + m * P, kp, P, sh.scale); break;
      case 1: scores_rows_bf16<1>(s + m * kKTile, qp + m * P, kp, P, sh.scale); break;
      default: break;
    }
    tile_softmax(s, mx, sum, alpha, M, G, ctx + i0, k0, n, sh.window);
    for (int64_t r = 0; r < M; ++r) {  // probabilities to bf16 pairs: word jp = (p[2jp], p[2jp+1])
      const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + r * kKTile + 16), _mm512_loadu_ps(s + r * kKTile));
      _mm512_storeu_si512(pp + r * kPairs, (__m512i)b);
    }
    for (m = 0; m + 4 <= M; m += 4) values_rows_bf16<4>(acc + m * D, alpha + m, pp + m * kPairs, vp, npairs, D);
    switch (M - m) {
      case 3: values_rows_bf16<3>(acc + m * D, alpha + m, pp + m * kPairs, vp, npairs, D); break;
      case 2: values_rows_bf16<2>(acc + m * D, alpha + m, pp + m * kPairs, vp, npairs, D); break;
      case 1: values_rows_bf16<1>(acc + m * D, alpha + m, pp + m * kPairs, vp, npairs, D); break;
      default: break;
    }
  }
  for (int64_t r = 0; r < M; ++r) {
    bf16* o = out + (i0 + r / G) * os + (h * G + r % G) * D;
    const float inv = 1.0f / sum[r];
    for (int64_t d = 0; d < D; ++d) o[d] = from_f<bf16>(acc[r * D + d] * inv);
  }
}
#endif
