// Paged decode attention with AVX-512 intrinsics, included by kernels_impl.h in the avx512 build
// only (PLINTH_AVX512_INTRINSICS). Same semantics as decode_attention_impl.h (fp32 math, exact
// max-subtracted softmax over written positions only); head sizes that are a multiple of 16
// up to 256 take this path, the rest the portable loop.
//
// Scores: for 16 keys at a time, each (query head, key) dot product is a 16-lane fp32 vector of
// partial sums; a transposing reduction tree turns the 16 vectors into one vector of 16 scores
// (45 instructions for 16 scores instead of a horizontal sum per score). Values: the G query heads
// that share a KV head accumulate in registers while each value row is widened once.
#include <immintrin.h>

static inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
static inline __m512 load16(const bf16* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

// lane i of the result = sum of the 16 lanes of v[i]
static inline __m512 transpose_sum16(__m512* v) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)  // per 128-bit lane: [v2i even, v2i+1 even, v2i odd, v2i+1 odd]
    a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {  // per 128-bit lane: the lane's sums of four vectors
    const __m512d x = _mm512_castps_pd(a[2 * i]), y = _mm512_castps_pd(a[2 * i + 1]);
    b[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  for (int i = 0; i < 2; ++i)
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// One (request, KV head) item: G query heads of C*16 features against n cached positions.
template <int C, class T, class Tc>
static void decode_item_avx512(T* out, const T* q, const Tc* kc, const Tc* vc, const int32_t* bt, int64_t row,
                               int64_t block_size, int64_t start, int64_t n, int64_t G, float scale, float* buf) {
  constexpr int64_t D = C * 16;
  float* qf = buf;           // [G, D] scaled queries
  float* scores = qf + G * D;  // [G, n]
  for (int64_t g = 0; g < G; ++g)
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(qf + g * D + c * 16, _mm512_mul_ps(load16(q + g * D + c * 16),
                                                                                    _mm512_set1_ps(scale)));
  const auto slot_row = [&](int64_t p) { return (int64_t(bt[p / block_size]) * block_size + p % block_size) * row; };
  // The cache is cold at decode (the step's weights stream through L3 between layers), so the
  // loop is latency-bound: it prefetches the keys kPrefetch positions ahead into L1 and each
  // tile's value rows into L2, to be warm when the weighted sum reads them after the softmax.
  constexpr int64_t kPrefetch = 32;
  constexpr int64_t kLines = (D * int64_t(sizeof(Tc)) + 63) / 64;
  const auto prefetch = [&](const Tc* p, int hint) {
    for (int64_t l = 0; l < kLines; ++l) {
      const char* a = reinterpret_cast<const char*>(p) + 64 * l;
      if (hint == 0) _mm_prefetch(a, _MM_HINT_T0); else _mm_prefetch(a, _MM_HINT_T1);
    }
  };
  for (int64_t t = 0; t < std::min<int64_t>(kPrefetch, n); ++t) prefetch(kc + slot_row(start + t), 0);
  __m512 part[16];
  for (int64_t t0 = 0; t0 < n; t0 += 16) {
    const int64_t m = std::min<int64_t>(16, n - t0);
    for (int64_t j = 0; j < m; ++j) {
      if (t0 + j + kPrefetch < n) prefetch(kc + slot_row(start + t0 + j + kPrefetch), 0);
      prefetch(vc + slot_row(start + t0 + j), 1);
    }
    // one query head at a time over the tile: its 16 key rows stay in L1 across the G heads
    for (int64_t g0 = 0; g0 < G; ++g0) {
      __m512 qv[C];
      for (int c = 0; c < C; ++c) qv[c] = _mm512_loadu_ps(qf + g0 * D + c * 16);
      for (int64_t j = 0; j < 16; ++j) {
        if (j >= m) {
          part[j] = _mm512_setzero_ps();
          continue;
        }
        const Tc* kr = kc + slot_row(start + t0 + j);
        __m512 acc = _mm512_mul_ps(qv[0], load16(kr));
        for (int c = 1; c < C; ++c) acc = _mm512_fmadd_ps(qv[c], load16(kr + c * 16), acc);
        part[j] = acc;
      }
      _mm512_mask_storeu_ps(scores + g0 * n + t0, __mmask16((1u << m) - 1u), transpose_sum16(part));
    }
  }
  for (int64_t g = 0; g < G; ++g) {
    float* sg = scores + g * n;
    float mx = -INFINITY;
    for (int64_t t = 0; t < n; ++t) mx = std::max(mx, sg[t]);
    float total = 0.f;
#pragma omp simd reduction(+ : total)
    for (int64_t t = 0; t < n; ++t) {
      sg[t] = fast_exp(sg[t] - mx);
      total += sg[t];
    }
    const float inv = 1.0f / total;
#pragma omp simd
    for (int64_t t = 0; t < n; ++t) sg[t] *= inv;
  }
  constexpr int64_t kGroup = 4;  // query heads accumulated together: 4 * C registers
  for (int64_t g0 = 0; g0 < G; g0 += kGroup) {
    const int64_t gn = std::min<int64_t>(kGroup, G - g0);
    __m512 acc[kGroup][C];
    for (int64_t g = 0; g < kGroup; ++g)
      for (int c = 0; c < C; ++c) acc[g][c] = _mm512_setzero_ps();
    for (int64_t t = 0; t < n; ++t) {
      const Tc* vr = vc + slot_row(start + t);
      __m512 v[C];
      for (int c = 0; c < C; ++c) v[c] = load16(vr + c * 16);
      for (int64_t g = 0; g < gn; ++g) {
        const __m512 w = _mm512_set1_ps(scores[(g0 + g) * n + t]);
        for (int c = 0; c < C; ++c) acc[g][c] = _mm512_fmadd_ps(w, v[c], acc[g][c]);
      }
    }
    for (int64_t g = 0; g < gn; ++g) {
      float tmp[D];
      for (int c = 0; c < C; ++c) _mm512_storeu_ps(tmp + c * 16, acc[g][c]);
      T* o = out + (g0 + g) * D;
      for (int64_t d = 0; d < D; ++d) o[d] = from_f<T>(tmp[d]);
    }
  }
}

// Returns false when the head size has no intrinsics path (the caller runs the portable loop).
template <class T, class Tc>
static bool decode_attention_avx512(T* out, int64_t os, const T* q, int64_t qs, const Tc* kc, const Tc* vc,
                                    const int32_t* block_table, int64_t bts, const int32_t* seq_lens,
                                    const int64_t* tokens, const int64_t* reqs, int64_t num, int64_t heads,
                                    int64_t kv_heads, int64_t D, int64_t block_size, float scale, int64_t window,
                                    int threads) {
  using Item = void (*)(T*, const T*, const Tc*, const Tc*, const int32_t*, int64_t, int64_t, int64_t, int64_t,
                        int64_t, float, float*);
  Item item_fn = nullptr;
  switch (D) {
    case 16: item_fn = decode_item_avx512<1, T, Tc>; break;
    case 32: item_fn = decode_item_avx512<2, T, Tc>; break;
    case 48: item_fn = decode_item_avx512<3, T, Tc>; break;
    case 64: item_fn = decode_item_avx512<4, T, Tc>; break;
    case 80: item_fn = decode_item_avx512<5, T, Tc>; break;
    case 96: item_fn = decode_item_avx512<6, T, Tc>; break;
    case 128: item_fn = decode_item_avx512<8, T, Tc>; break;
    case 256: item_fn = decode_item_avx512<16, T, Tc>; break;
    default: return false;
  }
  const int64_t G = heads / kv_heads;
  const int64_t row = kv_heads * D;
  int64_t work = 0;
  for (int64_t i = 0; i < num; ++i) work += seq_lens[reqs[i]];
  parallel_for(num * kv_heads, threads, 2 * work * heads * D >= kParallelAttention, [&](int64_t it) {
    const int64_t i = it / kv_heads, h = it % kv_heads;
    const int64_t req = reqs[i], L = seq_lens[req];
    const int64_t start = window > 0 ? std::max<int64_t>(0, L - window) : 0;
    thread_local std::vector<float> buf;
    buf.resize(size_t(G * D + G * (L - start) + 16));
    item_fn(out + tokens[i] * os + h * G * D, q + tokens[i] * qs + h * G * D, kc + h * D, vc + h * D,
            block_table + req * bts, row, block_size, start, L - start, G, scale, buf.data());
  });
  return true;
}
