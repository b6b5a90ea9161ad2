// gemv_bf16_impl.h's tile with vdpbf16ps (AVX512-BF16: a pair of bf16 products summed into fp32
// per lane, 32 multiply-adds an instruction); included there in the avx512 build with GCC only,
// the helpers (PLINTH_BF16_TARGET, has_avx512_bf16) come from prefill_attention_avx512.h.
// Each pair word of the packed weight meets the broadcast pair word of an activation row.

// acc (+ bias), rounded to bf16 like torch (nearest even, NaN kept), masked store of `count` lanes
PLINTH_BF16_TARGET static inline void gemv_store16(bf16* out, __m512 v, const bf16* bias, int64_t count) {
  const __mmask16 mask = __mmask16((1u << count) - 1u);
  if (bias != nullptr) {
    const __m512i b = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, bias));
    v = _mm512_add_ps(v, _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)));
  }
  const __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  _mm256_mask_storeu_epi16(out, mask, _mm512_cvtepi32_epi16(r));
}

// A tile's MR x NB accumulators (16 outputs each, from column n0) into MR rows of `out` (+ bias); the
// blocks past N are skipped and the last one is masked
template <int MR, int NB>
PLINTH_BF16_TARGET static inline void gemv_store_tile(bf16* out, int64_t os, __m512 (&acc)[MR][NB], int64_t n0,
                                                      int64_t N, const bf16* bias) {
  for (int b = 0; b < NB; ++b) {
    const int64_t n = n0 + b * 16, count = std::min<int64_t>(16, N - n);
    if (count <= 0) break;
    for (int m = 0; m < MR; ++m) gemv_store16(out + m * os + n, acc[m][b], bias ? bias + n : nullptr, count);
  }
}

template <int MR, int NB>
PLINTH_BF16_TARGET static void gemv_tile_bf16(bf16* out, int64_t os, const uint32_t* xp, int64_t P,
                                              const uint32_t* w, int64_t n0, int64_t N, const bf16* bias) {
  __m512 acc[MR][NB];
  for (int m = 0; m < MR; ++m)
    for (int b = 0; b < NB; ++b) acc[m][b] = _mm512_setzero_ps();
  const int64_t bstride = P * kGemvBlock;
  for (int64_t p = 0; p < P; ++p) {
    __m512bh wv[NB];
    for (int b = 0; b < NB; ++b) wv[b] = (__m512bh)_mm512_loadu_si512(w + b * bstride + p * kGemvBlock);
    for (int m = 0; m < MR; ++m) {
      const __m512bh xv = (__m512bh)_mm512_set1_epi32(int(xp[m * P + p]));
      for (int b = 0; b < NB; ++b) acc[m][b] = _mm512_dpbf16_ps(acc[m][b], xv, wv[b]);
    }
  }
  gemv_store_tile(out, os, acc, n0, N, bias);
}

template <int NB>
PLINTH_BF16_TARGET static void gemv_rows_bf16(bf16* out, int64_t os, const uint32_t* xp, int64_t M, int64_t P,
                                              const uint32_t* w, int64_t n0, int64_t N, const bf16* bias) {
  int64_t m = 0;
  for (; m + kGemvRows <= M; m += kGemvRows)
    gemv_tile_bf16<kGemvRows, NB>(out + m * os, os, xp + m * P, P, w, n0, N, bias);
  switch (M - m) {
    case 5: gemv_tile_bf16<5, NB>(out + m * os, os, xp + m * P, P, w, n0, N, bias); break;
    case 4: gemv_tile_bf16<4, NB>(out + m * os, os, xp + m * P, P, w, n0, N, bias); break;
    case 3: gemv_tile_bf16<3, NB>(out + m * os, os, xp + m * P, P, w, n0, N, bias); break;
    case 2: gemv_tile_bf16<2, NB>(out + m * os, os, xp + m * P, P, w, n0, N, bias); break;
    case 1: gemv_tile_bf16<1, NB>(out + m * os, os, xp + m * P, P, w, n0, N, bias); break;
    default: break;
  }
}

PLINTH_BF16_TARGET static void gemv_blocks_bf16(bf16* out, int64_t os, const uint32_t* xp, int64_t M, int64_t P,
                                                const uint32_t* w, int64_t b0, int64_t b1, int64_t N,
                                                const bf16* bias) {
  const int64_t bstride = P * kGemvBlock;
  int64_t b = b0;
  for (; b + kGemvTile <= b1; b += kGemvTile)
    gemv_rows_bf16<kGemvTile>(out, os, xp, M, P, w + b * bstride, b * kGemvBlock, N, bias);
  switch (b1 - b) {
    case 3: gemv_rows_bf16<3>(out, os, xp, M, P, w + b * bstride, b * kGemvBlock, N, bias); break;
    case 2: gemv_rows_bf16<2>(out, os, xp, M, P, w + b * bstride, b * kGemvBlock, N, bias); break;
    case 1: gemv_rows_bf16<1>(out, os, xp, M, P, w + b * bstride, b * kGemvBlock, N, bias); break;
    default: break;
  }
}
