// The two inner products of prefill_attention_impl.h with AVX-512 intrinsics, register-blocked;
// included by kernels_impl.h in the avx512 build only (PLINTH_AVX512_INTRINSICS). Same
// signatures and results (fp32 FMAs) as the portable loops they replace.
#include <immintrin.h>

constexpr int64_t kKTileVecs = 2;  // kKTile / 16
static_assert(kKTile == 16 * kKTileVecs, "the avx512 score tile is 32 keys");

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
