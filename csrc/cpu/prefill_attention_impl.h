// Paged causal attention for prefills and chunks (query_len > 1), included by kernels_impl.h.
//
// Flash-style: one work item = (request, KV head, block of kQBlock query positions); the G
// query heads of the KV head and the block's positions form M = G * rows query rows that
// share every key/value tile. Keys are read from the paged cache in tiles of kKTile positions
// (a key tile transposed to fp32 [D][kKTile], a value tile widened to fp32 [kKTile][D]), and
// an online softmax (running max and sum per row, fp32) folds each tile into the accumulator.
// Query row i of a request sits at absolute position seq_len - query_len + i (the context
// prefix is whatever precedes it); it attends to positions <= its own (and within the sliding
// window). Positions >= seq_len are never read (unwritten slots may hold NaN).
//
// The avx512 build swaps the two inner products (scores, probabilities x values) for
// register-blocked intrinsics (prefill_attention_avx512.h); everything else is shared.

constexpr int64_t kQBlock = 32;  // query positions per work item
constexpr int64_t kKTile = 32;   // key positions per tile
constexpr float kNoMax = -1e30f;  // running max before any allowed key (finite: no inf - inf)

struct PrefillShape {
  int64_t heads, kv_heads, D, block_size, window;
  float scale;
};

#ifdef PLINTH_AVX512_INTRINSICS
#include "prefill_attention_avx512.h"
#else
// Folds a tile of scores s[M][kKTile] (keys k0..k0+n) into the running max and sum of each row
// (row m: position pos0 + m / G) and turns them into probabilities; alpha[m] rescales acc[m].
static void tile_softmax(float* s, float* mx, float* sum, float* alpha, int64_t M, int64_t G, int64_t pos0,
                         int64_t k0, int64_t n, int64_t window) {
  for (int64_t m = 0; m < M; ++m) {
    const int64_t pos = pos0 + m / G;
    const int64_t hi = std::min<int64_t>(n, pos - k0 + 1);  // allowed keys: [lo, hi) of the tile
    const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1 - k0) : 0;
    float* sm = s + m * kKTile;
    float tile_max = kNoMax;
    for (int64_t j = lo; j < hi; ++j) tile_max = std::max(tile_max, sm[j]);
    const float new_max = std::max(mx[m], tile_max);
    float total = 0.f;
#pragma omp simd reduction(+ : total)
    for (int64_t j = 0; j < kKTile; ++j) {
      const float e0 = fast_exp(sm[j] - new_max);  // every lane (scores are finite), so the loop vectorises
      const float e = (j >= lo && j < hi) ? e0 : 0.f;
      sm[j] = e;
      total += e;
    }
    alpha[m] = fast_exp(mx[m] - new_max);
    sum[m] = sum[m] * alpha[m] + total;
    mx[m] = new_max;
  }
}

// s[m][j] = q[m] . kt[:, j] for m < M, j < kKTile; two rows at a time share each key load
static void tile_scores(float* s, const float* q, const float* kt, int64_t M, int64_t D) {
  int64_t m = 0;
  for (; m + 2 <= M; m += 2) {
    float a0[kKTile] = {}, a1[kKTile] = {};
    const float *q0 = q + m * D, *q1 = q0 + D;
    for (int64_t d = 0; d < D; ++d) {
      const float x0 = q0[d], x1 = q1[d];
      const float* kd = kt + d * kKTile;
#pragma omp simd
      for (int64_t j = 0; j < kKTile; ++j) {
        a0[j] += x0 * kd[j];
        a1[j] += x1 * kd[j];
      }
    }
    std::memcpy(s + m * kKTile, a0, sizeof(a0));
    std::memcpy(s + (m + 1) * kKTile, a1, sizeof(a1));
  }
  for (; m < M; ++m) {
    float a0[kKTile] = {};
    for (int64_t d = 0; d < D; ++d) {
      const float x0 = q[m * D + d];
#pragma omp simd
      for (int64_t j = 0; j < kKTile; ++j) a0[j] += x0 * kt[d * kKTile + j];
    }
    std::memcpy(s + m * kKTile, a0, sizeof(a0));
  }
}

// acc[m] = acc[m] * alpha[m] + sum_j p[m][j] * v[j] for m < M, j < n; 16 features of 2 rows in registers
static void tile_values(float* acc, const float* alpha, const float* p, const float* v, int64_t M, int64_t n,
                        int64_t D) {
  constexpr int64_t W = 16;
  for (int64_t m = 0; m < M; m += 2) {
    const int64_t rn = std::min<int64_t>(2, M - m);
    for (int64_t d0 = 0; d0 < D; d0 += W) {
      if (d0 + W > D || rn < 2) {  // tail: one feature at a time
        for (int64_t r = 0; r < rn; ++r)
          for (int64_t d = d0; d < std::min(D, d0 + W); ++d) {
            float a = acc[(m + r) * D + d] * alpha[m + r];
            for (int64_t j = 0; j < n; ++j) a += p[(m + r) * kKTile + j] * v[j * D + d];
            acc[(m + r) * D + d] = a;
          }
        continue;
      }
      float a0[W], a1[W];
      float* r0 = acc + m * D + d0;
      float* r1 = r0 + D;
#pragma omp simd
      for (int64_t c = 0; c < W; ++c) {
        a0[c] = r0[c] * alpha[m];
        a1[c] = r1[c] * alpha[m + 1];
      }
      for (int64_t j = 0; j < n; ++j) {
        const float w0 = p[m * kKTile + j], w1 = p[(m + 1) * kKTile + j];
        const float* vj = v + j * D + d0;
#pragma omp simd
        for (int64_t c = 0; c < W; ++c) {
          a0[c] += w0 * vj[c];
          a1[c] += w1 * vj[c];
        }
      }
      std::memcpy(r0, a0, sizeof(a0));
      std::memcpy(r1, a1, sizeof(a1));
    }
  }
}
#endif

// One work item: rows [i0, i1) of a request's queries against KV head h.
template <class T, class Tc>
static void prefill_item(T* out, int64_t os, const T* q, int64_t qs, const Tc* kc, const Tc* vc, const int32_t* bt,
                         int64_t ctx, int64_t i0, int64_t i1, int64_t h, const PrefillShape& sh, float* buf) {
  const int64_t G = sh.heads / sh.kv_heads, D = sh.D, rows = i1 - i0, M = G * rows;
  const int64_t row = sh.kv_heads * D;  // elements between consecutive cache slots
  float* qf = buf;                  // [M, D] scaled queries, row m = (position i0 + m / G, head m % G)
  float* acc = qf + M * D;          // [M, D]
  float* kt = acc + M * D;          // [D, kKTile] key tile, transposed
  float* vt = kt + D * kKTile;      // [kKTile, D] value tile
  float* s = vt + kKTile * D;       // [M, kKTile] scores, then probabilities
  float* mx = s + M * kKTile;       // [M] running max
  float* sum = mx + M;              // [M] running sum
  float* alpha = sum + M;           // [M] rescale of acc for the current tile
  for (int64_t m = 0; m < M; ++m) {
    const T* qr = q + (i0 + m / G) * qs + (h * G + m % G) * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) qf[m * D + d] = to_f(qr[d]) * sh.scale;
    mx[m] = kNoMax;
    sum[m] = 0.f;
  }
  std::fill(acc, acc + M * D, 0.f);
  const int64_t first = sh.window > 0 ? std::max<int64_t>(0, ctx + i0 - sh.window + 1) : 0;
  const int64_t end = ctx + i1;  // one past the last position any row attends to
  for (int64_t k0 = first; k0 < end; k0 += kKTile) {
    const int64_t n = std::min<int64_t>(kKTile, end - k0);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t p = k0 + j;
      const int64_t slot = int64_t(bt[p / sh.block_size]) * sh.block_size + p % sh.block_size;
      const Tc* kr = kc + slot * row;
      const Tc* vr = vc + slot * row;
      for (int64_t d = 0; d < D; ++d) kt[d * kKTile + j] = to_f(kr[d]);
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) vt[j * D + d] = to_f(vr[d]);
    }
    for (int64_t j = n; j < kKTile; ++j)
      for (int64_t d = 0; d < D; ++d) kt[d * kKTile + j] = 0.f;
    tile_scores(s, qf, kt, M, D);
    tile_softmax(s, mx, sum, alpha, M, G, ctx + i0, k0, n, sh.window);
    tile_values(acc, alpha, s, vt, M, n, D);
  }
  for (int64_t m = 0; m < M; ++m) {
    T* o = out + (i0 + m / G) * os + (h * G + m % G) * D;
    const float inv = 1.0f / sum[m];
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) o[d] = from_f<T>(acc[m * D + d] * inv);
  }
}

template <class T, class Tc>
static void prefill_attention_t(T* out, int64_t os, const T* q, int64_t qs, const Tc* kc, const Tc* vc,
                                const int32_t* block_table, int64_t bts, const int32_t* seq_lens,
                                const int32_t* query_start_loc, const int64_t* reqs, int64_t num,
                                const PrefillShape& sh, int threads) {
  // work items, heaviest (last query blocks) first so a dynamic schedule ends evenly
  struct Item {
    int64_t req, block, h;
  };
  std::vector<Item> items;
  int64_t macs = 0, max_rows = 0;
  for (int64_t i = 0; i < num; ++i) {
    const int64_t r = reqs[i], qlen = query_start_loc[r + 1] - query_start_loc[r];
    const int64_t blocks = (qlen + kQBlock - 1) / kQBlock;
    for (int64_t b = blocks - 1; b >= 0; --b)
      for (int64_t h = 0; h < sh.kv_heads; ++h) items.push_back({r, b, h});
    macs += 2 * qlen * int64_t(seq_lens[r]) * sh.heads * sh.D;
    max_rows = std::max(max_rows, std::min(qlen, kQBlock));
  }
  const int64_t G = sh.heads / sh.kv_heads, M = G * max_rows;
  const size_t buf_len = size_t(2 * M * sh.D + 2 * kKTile * sh.D + M * kKTile + 3 * M + M * kKTile / 2);
#ifdef PLINTH_PREFILL_BF16
  constexpr bool bf16_io = std::is_same<T, bf16>::value && std::is_same<Tc, bf16>::value;
  const bool use_bf16 = bf16_io && sh.D % 16 == 0 && has_avx512_bf16();
#endif
  const auto run = [&](const Item& it) {
    thread_local std::vector<float> buf;
    if (buf.size() < buf_len) buf.resize(buf_len);
    const int64_t start = query_start_loc[it.req], qlen = query_start_loc[it.req + 1] - start;
    const int64_t i0 = it.block * kQBlock, i1 = std::min(qlen, i0 + kQBlock);
#ifdef PLINTH_PREFILL_BF16
    if constexpr (bf16_io) {
      if (use_bf16) {
        prefill_item_bf16(out + start * os, os, q + start * qs, qs, kc + it.h * sh.D, vc + it.h * sh.D,
                          block_table + it.req * bts, int64_t(seq_lens[it.req]) - qlen, i0, i1, it.h, sh,
                          buf.data());
        return;
      }
    }
#endif
    prefill_item(out + start * os, os, q + start * qs, qs, kc + it.h * sh.D, vc + it.h * sh.D,
                 block_table + it.req * bts, int64_t(seq_lens[it.req]) - qlen, i0, i1, it.h, sh, buf.data());
  };
  const int64_t n = int64_t(items.size());
#ifdef _OPENMP
  if (threads > 1 && n > 1 && macs >= kParallelAttention) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) run(items[size_t(i)]);
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) run(items[size_t(i)]);
}

static void prefill_attention(void* out, int64_t os, const void* q, int64_t qs, const void* kc, const void* vc,
                              const int32_t* bt, int64_t bts, const int32_t* seq_lens, const int32_t* qsl,
                              const int64_t* reqs, int64_t num, int64_t heads, int64_t kv_heads, int64_t D,
                              int64_t block_size, float scale, int64_t window, int dtype, int cache_dtype,
                              int threads) {
  const PrefillShape sh{heads, kv_heads, D, block_size, window, scale};
#define PLINTH_PREFILL(T, Tc)                                                                                  \
  prefill_attention_t((T*)out, os, (const T*)q, qs, (const Tc*)kc, (const Tc*)vc, bt, bts, seq_lens, qsl, reqs, \
                      num, sh, threads)
  if (dtype == kBF16) {
    if (cache_dtype == kBF16) { PLINTH_PREFILL(bf16, bf16); } else { PLINTH_PREFILL(bf16, float); }
  } else {
    if (cache_dtype == kBF16) { PLINTH_PREFILL(float, bf16); } else { PLINTH_PREFILL(float, float); }
  }
#undef PLINTH_PREFILL
}
