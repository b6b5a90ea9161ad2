// Int8 weight-only linear, included by kernels_impl.h:
//   out[m, n] = scale[n] * sum_k x[m, k] * w[n, k]  (+ bias[n]),  fp32 accumulation.
// Weights are int8 [N, K] with one fp32 scale per output channel (symmetric). Each thread
// takes a block of output channels; four weight rows are widened to fp32 at a time and
// reused across all M activation rows (widened once up front), so the weights stream
// from memory once per call: half the bytes of a bf16 GEMM for memory-bound decode.

template <class T>
static void int8_linear_t(T* out, const T* x, const int8_t* w, const float* scale, const T* bias, int64_t M,
                          int64_t N, int64_t K, int64_t xs, int threads) {
  std::vector<float> xf(size_t(M * K));
  for (int64_t m = 0; m < M; ++m) {
    const T* xr = x + m * xs;
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) xf[m * K + k] = to_f(xr[k]);
  }
  const float* xp = xf.data();
  const int64_t blocks = (N + 3) / 4;
  parallel_for(blocks, threads, M * N * K >= kParallelAttention, [&](int64_t b) {
    thread_local std::vector<float> wbuf;
    wbuf.resize(size_t(4 * K));
    const int64_t n0 = b * 4, rows = std::min<int64_t>(4, N - n0);
    for (int64_t r = 0; r < 4; ++r) {
      const int8_t* wr = w + (n0 + std::min(r, rows - 1)) * K;  // a short block repeats its last row
      float* dst = wbuf.data() + r * K;
#pragma omp simd
      for (int64_t k = 0; k < K; ++k) dst[k] = float(wr[k]);
    }
    const float *w0 = wbuf.data(), *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = xp + m * K;
      float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
      for (int64_t k = 0; k < K; ++k) {
        a0 += xr[k] * w0[k];
        a1 += xr[k] * w1[k];
        a2 += xr[k] * w2[k];
        a3 += xr[k] * w3[k];
      }
      const float acc[4] = {a0, a1, a2, a3};
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t n = n0 + r;
        const float v = acc[r] * scale[n] + (bias != nullptr ? to_f(bias[n]) : 0.f);
        out[m * N + n] = from_f<T>(v);
      }
    }
  });
}

static void int8_linear(void* out, const void* x, const int8_t* w, const float* scale, const void* bias, int64_t M,
                        int64_t N, int64_t K, int64_t xs, int dtype, int threads) {
  if (dtype == kBF16)
    int8_linear_t((bf16*)out, (const bf16*)x, w, scale, (const bf16*)bias, M, N, K, xs, threads);
  else
    int8_linear_t((float*)out, (const float*)x, w, scale, (const float*)bias, M, N, K, xs, threads);
}
