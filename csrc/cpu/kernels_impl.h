// The kernels, written once as plain vectorisable C++ and compiled per ISA: an isa_*.cpp
// defines PLINTH_ISA (the namespace) and a target pragma, then includes this file.
// Semantics equal plinth.ops.reference, including where bf16 rounds between steps.
#ifndef PLINTH_ISA
#error "define PLINTH_ISA (the namespace of this ISA build) before including kernels_impl.h"
#endif

#define PLINTH_STR2(x) #x
#define PLINTH_STR(x) PLINTH_STR2(x)

namespace plinth {
namespace PLINTH_ISA {

using bf16 = uint16_t;

static inline float to_f(float x) { return x; }
static inline float to_f(bf16 x) {
  uint32_t u = uint32_t(x) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <class T> static inline T from_f(float f);
template <> inline float from_f<float>(float f) { return f; }
template <> inline bf16 from_f<bf16>(float f) {  // round to nearest even, as torch
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = 0u - uint32_t((u & 0x7FFFFFFFu) > 0x7F800000u);  // all ones for NaN; no branch
  return bf16((rounded & ~nan) | (0x7FC0u & nan));
}
template <class T> static inline float round_to(float f) { return to_f(from_f<T>(f)); }

// exp with ~1 ulp error on the range softmax and silu use; branch-free so loops vectorise.
static inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer, vectorisably
  const float n = (x * 1.44269504088896341f + shifter) - shifter;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return y * scale;
}

// Runs f(i) for i in [0, n), on `threads` OpenMP threads when `parallel`.
template <class F> static inline void parallel_for(int64_t n, int threads, bool parallel, F&& f) {
#ifdef _OPENMP
  if (parallel && threads > 1 && n > 1) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) f(i);
}

// Below these sizes a kernel runs on the calling thread: waking the OpenMP team costs more
// than it saves, and on a shared 2-core machine every parallel region can stall for a
// scheduler slice behind another process (measured: 2.7 vs 7 tok/s single stream under load).
constexpr int64_t kParallelElems = 1 << 18;      // elementwise kernels: elements
constexpr int64_t kParallelAttention = 1 << 18;  // decode attention: multiply-adds

template <class T>
static void rms_norm_t(T* out, T* res_out, const T* x, const T* res, const T* w, int64_t rows, int64_t hidden,
                       int64_t xs, int64_t rs, float eps, int threads) {
  parallel_for(rows, threads, rows * hidden >= kParallelElems, [&](int64_t r) {
    const T* xr = x + r * xs;
    T* o = out + r * hidden;
    float ss = 0.f;
    if (res != nullptr) {
      const T* rr = res + r * rs;
      T* ro = res_out + r * hidden;
#pragma omp simd reduction(+ : ss)
      for (int64_t i = 0; i < hidden; ++i) {
        const float v = round_to<T>(to_f(xr[i]) + to_f(rr[i]));
        ro[i] = from_f<T>(v);
        ss += v * v;
      }
      xr = ro;
    } else {
#pragma omp simd reduction(+ : ss)
      for (int64_t i = 0; i < hidden; ++i) ss += to_f(xr[i]) * to_f(xr[i]);
    }
    const float inv = 1.0f / std::sqrt(ss / float(hidden) + eps);
#pragma omp simd
    for (int64_t i = 0; i < hidden; ++i) o[i] = from_f<T>(to_f(w[i]) * round_to<T>(to_f(xr[i]) * inv));
  });
}

static void rms_norm(void* out, void* res_out, const void* x, const void* res, const void* w, int64_t rows,
                     int64_t hidden, int64_t xs, int64_t rs, float eps, int dtype, int threads) {
  if (dtype == kBF16)
    rms_norm_t((bf16*)out, (bf16*)res_out, (const bf16*)x, (const bf16*)res, (const bf16*)w, rows, hidden, xs, rs,
               eps, threads);
  else
    rms_norm_t((float*)out, (float*)res_out, (const float*)x, (const float*)res, (const float*)w, rows, hidden, xs,
               rs, eps, threads);
}

template <class T>
static void silu_and_mul_t(T* out, const T* x, int64_t rows, int64_t d, int64_t xs, int threads) {
  parallel_for(rows, threads, rows * d >= kParallelElems, [&](int64_t r) {
    const T* a = x + r * xs;
    const T* b = a + d;
    T* o = out + r * d;
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) {
      const float av = to_f(a[i]);
      o[i] = from_f<T>(round_to<T>(av / (1.0f + fast_exp(-av))) * to_f(b[i]));
    }
  });
}

static void silu_and_mul(void* out, const void* x, int64_t rows, int64_t d, int64_t xs, int dtype, int threads) {
  if (dtype == kBF16)
    silu_and_mul_t((bf16*)out, (const bf16*)x, rows, d, xs, threads);
  else
    silu_and_mul_t((float*)out, (const float*)x, rows, d, xs, threads);
}

template <class T>
static inline void rotate_head(T* o, const T* x, const float* cos, const float* sin, int64_t half, int64_t rot,
                               int64_t head_size, bool neox) {
  if (neox) {
#pragma omp simd
    for (int64_t i = 0; i < half; ++i) {
      const float x1 = to_f(x[i]), x2 = to_f(x[i + half]);
      o[i] = from_f<T>(x1 * cos[i] - x2 * sin[i]);
      o[i + half] = from_f<T>(x2 * cos[i] + x1 * sin[i]);
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < half; ++i) {
      const float x1 = to_f(x[2 * i]), x2 = to_f(x[2 * i + 1]);
      o[2 * i] = from_f<T>(x1 * cos[i] - x2 * sin[i]);
      o[2 * i + 1] = from_f<T>(x2 * cos[i] + x1 * sin[i]);
    }
  }
  for (int64_t i = rot; i < head_size; ++i) o[i] = x[i];
}

template <class T, class C>
static void rotary_t(T* qo, T* ko, const T* q, const T* k, const int64_t* pos, const C* cache, int64_t tokens,
                     int64_t qh, int64_t kh, int64_t hs, int64_t rot, int64_t qs, int64_t ks, bool neox, int threads) {
  const int64_t half = rot / 2;
  parallel_for(tokens, threads, tokens * (qh + kh) * hs >= kParallelElems, [&](int64_t t) {
    float cs[1024];  // rotary_dim <= 1024 is checked by the wrapper
    const C* row = cache + pos[t] * rot;
    for (int64_t i = 0; i < rot; ++i) cs[i] = to_f(row[i]);
    for (int64_t h = 0; h < qh; ++h)
      rotate_head(qo + (t * qh + h) * hs, q + t * qs + h * hs, cs, cs + half, half, rot, hs, neox);
    for (int64_t h = 0; h < kh; ++h)
      rotate_head(ko + (t * kh + h) * hs, k + t * ks + h * hs, cs, cs + half, half, rot, hs, neox);
  });
}

static bool rotary(void* qo, void* ko, const void* q, const void* k, const int64_t* pos, const void* cache,
                   int64_t max_position, int64_t tokens, int64_t qh, int64_t kh, int64_t hs, int64_t rot, int64_t qs,
                   int64_t ks, bool neox, int dtype, int cache_dtype, int threads) {
  for (int64_t t = 0; t < tokens; ++t)
    if (pos[t] < 0 || pos[t] >= max_position) return false;
#define PLINTH_ROTARY(T, C) \
  rotary_t((T*)qo, (T*)ko, (const T*)q, (const T*)k, pos, (const C*)cache, tokens, qh, kh, hs, rot, qs, ks, neox, threads)
  if (dtype == kBF16) {
    if (cache_dtype == kBF16) PLINTH_ROTARY(bf16, bf16); else PLINTH_ROTARY(bf16, float);
  } else {
    if (cache_dtype == kBF16) PLINTH_ROTARY(float, bf16); else PLINTH_ROTARY(float, float);
  }
#undef PLINTH_ROTARY
  return true;
}

template <class Ti, class Tc>
static void write_kv_t(Tc* kc, Tc* vc, const Ti* k, const Ti* v, const int64_t* slots, int64_t tokens,
                       int64_t width, int64_t ks, int64_t vs) {
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t s = slots[t];
    if (s < 0) continue;
    Tc* kd = kc + s * width;
    Tc* vd = vc + s * width;
    const Ti* kr = k + t * ks;
    const Ti* vr = v + t * vs;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) {
      kd[i] = from_f<Tc>(to_f(kr[i]));
      vd[i] = from_f<Tc>(to_f(vr[i]));
    }
  }
}

static bool write_kv(void* kc, void* vc, const void* k, const void* v, const int64_t* slots, int64_t capacity,
                     int64_t tokens, int64_t width, int64_t ks, int64_t vs, int dtype, int cache_dtype, int threads) {
  (void)threads;  // a copy of a few KB per step: one thread is faster than waking the pool
  for (int64_t t = 0; t < tokens; ++t)
    if (slots[t] >= capacity) return false;
#define PLINTH_WRITE(Ti, Tc) \
  write_kv_t((Tc*)kc, (Tc*)vc, (const Ti*)k, (const Ti*)v, slots, tokens, width, ks, vs)
  if (dtype == kBF16) {
    if (cache_dtype == kBF16) PLINTH_WRITE(bf16, bf16); else PLINTH_WRITE(bf16, float);
  } else {
    if (cache_dtype == kBF16) PLINTH_WRITE(float, bf16); else PLINTH_WRITE(float, float);
  }
#undef PLINTH_WRITE
  return true;
}

#ifdef PLINTH_AVX512_INTRINSICS
#include "decode_attention_avx512.h"
#endif
#include "decode_attention_impl.h"
#include "prefill_attention_impl.h"
#include "int8_linear_impl.h"
#include "gemv_bf16_impl.h"
#include "w8a8_linear_impl.h"
#include "ggml_linear_impl.h"

Kernels table() {
  return Kernels{PLINTH_STR(PLINTH_ISA), rms_norm, silu_and_mul, rotary, write_kv, decode_attention, int8_linear,
                 prefill_attention, gemv_bf16, w8a8_linear, ggml_linear};
}

}  // namespace PLINTH_ISA
}  // namespace plinth
