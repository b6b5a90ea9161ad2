// Python module plinth_cpu._C: run-time ISA dispatch over the per-ISA kernel tables.
//
// Arguments are raw addresses (tensor.data_ptr()) and sizes; plinth_cpu/kernels.py validates
// dtype, shape, strides and device before calling. The GIL is released while a kernel runs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "common.h"

namespace py = pybind11;

namespace plinth {
#if defined(__x86_64__) || defined(_M_X64)
namespace avx512 { Kernels table(); }
namespace avx2 { Kernels table(); }
#endif
#if defined(__aarch64__)
namespace neon { Kernels table(); }
#endif
namespace portable { Kernels table(); }
}  // namespace plinth

namespace {

using plinth::Kernels;

std::vector<Kernels> supported_tables() {  // best first; what this CPU can run
  std::vector<Kernels> tables;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    tables.push_back(plinth::avx512::table());
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) tables.push_back(plinth::avx2::table());
#endif
#if defined(__aarch64__)
  tables.push_back(plinth::neon::table());
#endif
  tables.push_back(plinth::portable::table());
  return tables;
}

std::vector<std::string> cpu_features() {  // extras worth showing next to the ISA path
  std::vector<std::string> out;
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(__clang__)
  if (__builtin_cpu_supports("avx512bf16")) out.push_back("avx512_bf16");
  if (__builtin_cpu_supports("avx512vnni")) out.push_back("avx512_vnni");
#endif
  return out;
}

const std::vector<Kernels>& tables() {
  static const std::vector<Kernels> t = supported_tables();
  return t;
}

const Kernels* active = nullptr;

const Kernels& k() { return active ? *active : tables().front(); }

void set_isa(const std::string& name) {
  std::string names;
  for (const Kernels& t : tables()) {
    if (name == t.isa) {
      active = &t;
      return;
    }
    names += std::string(names.empty() ? "" : ", ") + t.isa;
  }
  throw std::invalid_argument("ISA path '" + name + "' is not available on this CPU; available: " + names);
}

template <class T> T* ptr(uintptr_t address) { return reinterpret_cast<T*>(address); }

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "plinth CPU kernels (csrc/cpu) with run-time ISA dispatch";
  m.def("isa", [] { return std::string(k().isa); }, "the ISA path the kernels run on");
  m.def("available_isas", [] {
    std::vector<std::string> names;
    for (const Kernels& t : tables()) names.emplace_back(t.isa);
    return names;
  }, "ISA paths this CPU can run, best first");
  m.def("cpu_features", &cpu_features, "notable ISA extensions reported by cpuid");
  m.def("set_isa", &set_isa, py::arg("name"), "run the kernels on another available ISA path");
  m.def("openmp", [] {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
  }, "whether the kernels were built with OpenMP");

  m.def("rms_norm", [](uintptr_t out, uintptr_t res_out, uintptr_t x, uintptr_t res, uintptr_t w, int64_t rows,
                       int64_t hidden, int64_t xs, int64_t rs, float eps, int dtype, int threads) {
    py::gil_scoped_release nogil;
    k().rms_norm(ptr<void>(out), ptr<void>(res_out), ptr<void>(x), ptr<void>(res), ptr<void>(w), rows, hidden, xs,
                 rs, eps, dtype, threads);
  });
  m.def("silu_and_mul", [](uintptr_t out, uintptr_t x, int64_t rows, int64_t d, int64_t xs, int dtype,
                           int threads) {
    py::gil_scoped_release nogil;
    k().silu_and_mul(ptr<void>(out), ptr<void>(x), rows, d, xs, dtype, threads);
  });
  m.def("rotary", [](uintptr_t qo, uintptr_t ko, uintptr_t q, uintptr_t kk, uintptr_t pos, uintptr_t cache,
                     int64_t max_position, int64_t tokens, int64_t qh, int64_t kh, int64_t hs, int64_t rot, int64_t qs,
                     int64_t ks, bool neox, int dtype, int cache_dtype, int threads) {
    py::gil_scoped_release nogil;
    return k().rotary(ptr<void>(qo), ptr<void>(ko), ptr<void>(q), ptr<void>(kk), ptr<int64_t>(pos), ptr<void>(cache),
                      max_position, tokens, qh, kh, hs, rot, qs, ks, neox, dtype, cache_dtype, threads);
  }, "false (nothing written) when a position is outside the cache");
  m.def("write_kv", [](uintptr_t kc, uintptr_t vc, uintptr_t kk, uintptr_t v, uintptr_t slots, int64_t capacity,
                       int64_t tokens, int64_t width, int64_t ks, int64_t vs, int dtype, int cache_dtype, int threads) {
    py::gil_scoped_release nogil;
    return k().write_kv(ptr<void>(kc), ptr<void>(vc), ptr<void>(kk), ptr<void>(v), ptr<int64_t>(slots), capacity,
                        tokens, width, ks, vs, dtype, cache_dtype, threads);
  }, "false (nothing written) when a slot is past the cache");
  m.def("decode_attention", [](uintptr_t out, int64_t os, uintptr_t q, int64_t qs, uintptr_t kc, uintptr_t vc,
                               uintptr_t bt, int64_t bts, uintptr_t seq_lens, uintptr_t tokens, uintptr_t reqs,
                               int64_t num, int64_t heads, int64_t kv_heads, int64_t head_size, int64_t block_size,
                               float scale, int64_t window, int dtype, int cache_dtype, int threads) {
    py::gil_scoped_release nogil;
    k().decode_attention(ptr<void>(out), os, ptr<void>(q), qs, ptr<void>(kc), ptr<void>(vc), ptr<int32_t>(bt), bts,
                         ptr<int32_t>(seq_lens), ptr<int64_t>(tokens), ptr<int64_t>(reqs), num, heads, kv_heads,
                         head_size, block_size, scale, window, dtype, cache_dtype, threads);
  });
  m.def("prefill_attention", [](uintptr_t out, int64_t os, uintptr_t q, int64_t qs, uintptr_t kc, uintptr_t vc,
                                uintptr_t bt, int64_t bts, uintptr_t seq_lens, uintptr_t qsl, uintptr_t reqs,
                                int64_t num, int64_t heads, int64_t kv_heads, int64_t head_size, int64_t block_size,
                                float scale, int64_t window, int dtype, int cache_dtype, int threads) {
    py::gil_scoped_release nogil;
    k().prefill_attention(ptr<void>(out), os, ptr<void>(q), qs, ptr<void>(kc), ptr<void>(vc), ptr<int32_t>(bt), bts,
                          ptr<int32_t>(seq_lens), ptr<int32_t>(qsl), ptr<int64_t>(reqs), num, heads, kv_heads,
                          head_size, block_size, scale, window, dtype, cache_dtype, threads);
  });
  m.def("int8_linear", [](uintptr_t out, uintptr_t x, uintptr_t w, uintptr_t scale, uintptr_t bias, int64_t M,
                          int64_t N, int64_t K, int64_t xs, int dtype, int threads) {
    py::gil_scoped_release nogil;
    k().int8_linear(ptr<void>(out), ptr<void>(x), ptr<int8_t>(w), ptr<float>(scale), ptr<void>(bias), M, N, K, xs,
                    dtype, threads);
  });
  m.def("gemv_bf16", [](uintptr_t out, uintptr_t x, uintptr_t w, uintptr_t bias, int64_t M, int64_t N, int64_t K,
                        int64_t xs, int64_t os, int threads) {
    py::gil_scoped_release nogil;
    k().gemv_bf16(ptr<void>(out), ptr<void>(x), ptr<uint32_t>(w), ptr<void>(bias), M, N, K, xs, os, threads);
  });
  m.def("w8a8_linear", [](uintptr_t out, uintptr_t x, uintptr_t w, uintptr_t wsum, uintptr_t scale,
                          uintptr_t bias, int64_t M, int64_t N, int64_t K, int64_t xs, int64_t os, int dtype,
                          int threads) {
    py::gil_scoped_release nogil;
    k().w8a8_linear(ptr<void>(out), ptr<void>(x), ptr<int8_t>(w), ptr<int32_t>(wsum), ptr<float>(scale),
                    ptr<void>(bias), M, N, K, xs, os, dtype, threads);
  });
  m.def("ggml_linear", [](uintptr_t out, uintptr_t x, uintptr_t w, uintptr_t bias, int64_t M, int64_t N, int64_t K,
                          int64_t xs, int64_t os, int type, int dtype, int threads) {
    py::gil_scoped_release nogil;
    k().ggml_linear(ptr<void>(out), ptr<void>(x), ptr<uint8_t>(w), ptr<void>(bias), M, N, K, xs, os, type, dtype,
                    threads);
  });
}
