// elementwise.h: elementwise, scalar and unary kernels over compact buffers.  Each operation
// is a small functor; map_binary / map_scalar / map_unary run it in vectorizable loops, split
// across OpenMP threads above a size threshold.  NaN propagates as in NumPy (maximum, relu,
// sign, comparisons give 0 for NaN except !=).
#pragma once

#include <cmath>

#include "common.h"

namespace needle {
namespace cpu {

// Memory-bound ops only pay for a second thread on large arrays; transcendental ones sooner.
constexpr std::int64_t kParallelCheap = 1 << 15;
constexpr std::int64_t kParallelMath = 1 << 12;

template <class T>
inline T nan_max(T a, T b) {
  return (a > b || a != a) ? a : b;  // NaN in either operand wins, as np.maximum
}

struct OpAdd { template <class T> T operator()(T a, T b) const { return a + b; } };
struct OpSub { template <class T> T operator()(T a, T b) const { return a - b; } };
struct OpRSub { template <class T> T operator()(T a, T b) const { return b - a; } };
struct OpMul { template <class T> T operator()(T a, T b) const { return a * b; } };
struct OpDiv { template <class T> T operator()(T a, T b) const { return a / b; } };
struct OpRDiv { template <class T> T operator()(T a, T b) const { return b / a; } };
struct OpPow { template <class T> T operator()(T a, T b) const { return std::pow(a, b); } };
struct OpRPow { template <class T> T operator()(T a, T b) const { return std::pow(b, a); } };
struct OpMax { template <class T> T operator()(T a, T b) const { return nan_max(a, b); } };
struct OpEq { template <class T> T operator()(T a, T b) const { return T(a == b); } };
struct OpNe { template <class T> T operator()(T a, T b) const { return T(a != b); } };
struct OpLt { template <class T> T operator()(T a, T b) const { return T(a < b); } };
struct OpLe { template <class T> T operator()(T a, T b) const { return T(a <= b); } };
struct OpGt { template <class T> T operator()(T a, T b) const { return T(a > b); } };
struct OpGe { template <class T> T operator()(T a, T b) const { return T(a >= b); } };
// ReLU's gradient: g where the ReLU's input a > 0, else 0 (also for NaN inputs), one pass.
struct OpReluGrad {
  template <class T> T operator()(T g, T a) const { return a > T(0) ? g : T(0); }
};

/// exp for float32 in a form the compiler vectorizes (no calls, no branches): n = round(x /
/// ln 2), r = x - n ln 2 (two-part ln 2), exp(r) by its degree-7 Taylor polynomial
/// (|r| <= ln2 / 2, truncation error < 1e-8 relative), times 2^n built from exponent bits in
/// two halves so that n in [-150, 128] stays representable.  Overflow gives inf, underflow
/// 0 or a subnormal, NaN passes through.  Max error ~2 ulp (tested against NumPy).
inline float fast_exp(float x) {
  const float xc = x > 88.75f ? 88.75f : (x < -104.0f || x != x ? -104.0f : x);
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to int
  float r = xc - n * 0.693145751953125f;
  r = r - n * 1.42860682030941723212e-6f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t ni = std::int32_t(n), h = ni >> 1;
  const std::int32_t e1 = (h + 127) << 23, e2 = (ni - h + 127) << 23;
  const float y = p * __builtin_bit_cast(float, e1) * __builtin_bit_cast(float, e2);
  return x != x ? x : y;
}
inline double fast_exp(double x) { return std::exp(x); }

struct OpNeg { template <class T> T operator()(T a) const { return -a; } };
struct OpLog { template <class T> T operator()(T a) const { return std::log(a); } };
struct OpExp { template <class T> T operator()(T a) const { return fast_exp(a); } };
struct OpTanh { template <class T> T operator()(T a) const { return std::tanh(a); } };
struct OpSqrt { template <class T> T operator()(T a) const { return std::sqrt(a); } };
struct OpAbs { template <class T> T operator()(T a) const { return std::abs(a); } };
struct OpSign {
  template <class T> T operator()(T a) const { return a > 0 ? T(1) : (a < 0 ? T(-1) : a); }
};
struct OpSigmoid {
  template <class T> T operator()(T a) const { return T(1) / (T(1) + fast_exp(-a)); }
};
struct OpRelu { template <class T> T operator()(T a) const { return nan_max(a, T(0)); } };

template <class Op> constexpr bool is_math_op() { return false; }
template <> constexpr bool is_math_op<OpPow>() { return true; }
template <> constexpr bool is_math_op<OpRPow>() { return true; }
template <> constexpr bool is_math_op<OpLog>() { return true; }
template <> constexpr bool is_math_op<OpTanh>() { return true; }
template <> constexpr bool is_math_op<OpSigmoid>() { return true; }

template <class Op>
constexpr std::int64_t parallel_threshold() {
  return is_math_op<Op>() ? kParallelMath : kParallelCheap;
}

template <class Op, class T>
void map_binary(const T* a, const T* b, T* out, std::int64_t n) {
  parallel_range(n, parallel_threshold<Op>(), [&](std::int64_t lo, std::int64_t hi) {
    Op op;
#pragma omp simd
    for (std::int64_t i = lo; i < hi; ++i) out[i] = op(a[i], b[i]);
  });
}

template <class Op, class T>
void map_scalar(const T* a, T val, T* out, std::int64_t n) {
  parallel_range(n, parallel_threshold<Op>(), [&](std::int64_t lo, std::int64_t hi) {
    Op op;
#pragma omp simd
    for (std::int64_t i = lo; i < hi; ++i) out[i] = op(a[i], val);
  });
}

template <class Op, class T>
void map_unary(const T* a, T* out, std::int64_t n) {
  parallel_range(n, parallel_threshold<Op>(), [&](std::int64_t lo, std::int64_t hi) {
    Op op;
#pragma omp simd
    for (std::int64_t i = lo; i < hi; ++i) out[i] = op(a[i]);
  });
}

/// a ** val with cheap exact paths for the exponents training uses most (2, 1, 0.5 -> sqrt
/// is not taken: pow(-0.0, 0.5) is +0 but sqrt(-0.0) is -0).
template <class T>
void scalar_power(const T* a, T val, T* out, std::int64_t n) {
  if (val == T(2)) {
    parallel_range(n, kParallelCheap, [&](std::int64_t lo, std::int64_t hi) {
#pragma omp simd
      for (std::int64_t i = lo; i < hi; ++i) out[i] = a[i] * a[i];
    });
  } else if (val == T(1)) {
    if (a != out) std::memmove(out, a, n * sizeof(T));
  } else {
    map_scalar<OpPow>(a, val, out, n);
  }
}

template <class T>
void fill(T* out, T val, std::int64_t n) {
  parallel_range(n, kParallelCheap, [&](std::int64_t lo, std::int64_t hi) {
#pragma omp simd
    for (std::int64_t i = lo; i < hi; ++i) out[i] = val;
  });
}

}  // namespace cpu
}  // namespace needle
