// Paged decode attention (one query token per request), included by kernels_impl.h.
//
// One work item = (request, KV head): the G = heads / kv_heads query heads that share a KV
// head are packed, so each key and value row is read (and widened to fp32) once for G heads.
// Softmax is exact (max-subtracted), in fp32, over the written positions only: unwritten
// slots of the cache are never read, as the contract demands (they may hold NaN).

template <class T, class Tc>
static void decode_attention_t(T* out, int64_t os, const T* q, int64_t qs, const Tc* kc, const Tc* vc,
                               const int32_t* block_table, int64_t bts, const int32_t* seq_lens,
                               const int64_t* tokens, const int64_t* reqs, int64_t num, int64_t heads,
                               int64_t kv_heads, int64_t D, int64_t block_size, float scale, int64_t window,
                               int threads) {
  const int64_t G = heads / kv_heads;
  const int64_t row = kv_heads * D;  // elements between consecutive cache slots
  int64_t work = 0;
  for (int64_t i = 0; i < num; ++i) work += seq_lens[reqs[i]];
  parallel_for(num * kv_heads, threads, 2 * work * heads * D >= kParallelAttention, [&](int64_t item) {
    const int64_t i = item / kv_heads, h = item % kv_heads;
    const int64_t tok = tokens[i], req = reqs[i];
    const int64_t L = seq_lens[req];
    const int64_t start = window > 0 ? std::max<int64_t>(0, L - window) : 0;
    const int64_t n = L - start;
    const int32_t* bt = block_table + req * bts;
    thread_local std::vector<float> buf;
    buf.resize(size_t(2 * G * D + 2 * D + G * n + 2 * G));
    float* qf = buf.data();        // [G, D] scaled queries
    float* acc = qf + G * D;       // [G, D] weighted values
    float* kv = acc + G * D;       // [D] one widened key or value row
    float* vrow = kv + D;          // [D]
    float* scores = vrow + D;      // [G, n]
    float* mx = scores + G * n;    // [G]
    float* sum = mx + G;           // [G]
    for (int64_t g = 0; g < G; ++g) {
      const T* qr = q + tok * qs + (h * G + g) * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) qf[g * D + d] = to_f(qr[d]) * scale;
      mx[g] = -INFINITY;
      sum[g] = 0.f;
    }
    for (int64_t t = 0; t < n; ++t) {
      const int64_t p = start + t;
      const Tc* kr = kc + (int64_t(bt[p / block_size]) * block_size + p % block_size) * row + h * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) kv[d] = to_f(kr[d]);
      for (int64_t g = 0; g < G; ++g) {
        const float* qg = qf + g * D;
        float s = 0.f;
#pragma omp simd reduction(+ : s)
        for (int64_t d = 0; d < D; ++d) s += qg[d] * kv[d];
        scores[g * n + t] = s;
        mx[g] = std::max(mx[g], s);
      }
    }
    for (int64_t g = 0; g < G; ++g) {
      float* sg = scores + g * n;
      const float m = mx[g];
      float total = 0.f;
#pragma omp simd reduction(+ : total)
      for (int64_t t = 0; t < n; ++t) {
        sg[t] = fast_exp(sg[t] - m);
        total += sg[t];
      }
      sum[g] = total;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) acc[g * D + d] = 0.f;
    }
    for (int64_t t = 0; t < n; ++t) {
      const int64_t p = start + t;
      const Tc* vr = vc + (int64_t(bt[p / block_size]) * block_size + p % block_size) * row + h * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) vrow[d] = to_f(vr[d]);
      for (int64_t g = 0; g < G; ++g) {
        const float w = scores[g * n + t];
        float* ag = acc + g * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) ag[d] += w * vrow[d];
      }
    }
    for (int64_t g = 0; g < G; ++g) {
      T* o = out + tok * os + (h * G + g) * D;
      const float inv = 1.0f / sum[g];
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] = from_f<T>(acc[g * D + d] * inv);
    }
  });
}

static void decode_attention(void* out, int64_t os, const void* q, int64_t qs, const void* kc, const void* vc,
                             const int32_t* bt, int64_t bts, const int32_t* seq_lens, const int64_t* tokens,
                             const int64_t* reqs, int64_t num, int64_t heads, int64_t kv_heads, int64_t D,
                             int64_t block_size, float scale, int64_t window, int dtype, int cache_dtype,
                             int threads) {
#ifdef PLINTH_AVX512_INTRINSICS
#define PLINTH_DECODE(T, Tc)                                                                                     \
  if (decode_attention_avx512((T*)out, os, (const T*)q, qs, (const Tc*)kc, (const Tc*)vc, bt, bts, seq_lens,       \
                              tokens, reqs, num, heads, kv_heads, D, block_size, scale, window, threads))          \
    return;                                                                                                      \
  decode_attention_t((T*)out, os, (const T*)q, qs, (const Tc*)kc, (const Tc*)vc, bt, bts, seq_lens, tokens, reqs, \
                     num, heads, kv_heads, D, block_size, scale, window, threads)
#else
#define PLINTH_DECODE(T, Tc)                                                                                     \
  decode_attention_t((T*)out, os, (const T*)q, qs, (const Tc*)kc, (const Tc*)vc, bt, bts, seq_lens, tokens, reqs, \
                     num, heads, kv_heads, D, block_size, scale, window, threads)
#endif
  if (dtype == kBF16) {
    if (cache_dtype == kBF16) { PLINTH_DECODE(bf16, bf16); } else { PLINTH_DECODE(bf16, float); }
  } else {
    if (cache_dtype == kBF16) { PLINTH_DECODE(float, bf16); } else { PLINTH_DECODE(float, float); }
  }
#undef PLINTH_DECODE
}
