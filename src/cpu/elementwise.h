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

struct OpNeg { template <class T> T operator()(T a) const { return -a; } };
struct OpLog { template <class T> T operator()(T a) const { return std::log(a); } };
struct OpExp { template <class T> T operator()(T a) const { return std::exp(a); } };
struct OpTanh { template <class T> T operator()(T a) const { return std::tanh(a); } };
struct OpSqrt { template <class T> T operator()(T a) const { return std::sqrt(a); } };
struct OpAbs { template <class T> T operator()(T a) const { return std::abs(a); } };
struct OpSign {
  template <class T> T operator()(T a) const { return a > 0 ? T(1) : (a < 0 ? T(-1) : a); }
};
struct OpSigmoid {
  template <class T> T operator()(T a) const { return T(1) / (T(1) + std::exp(-a)); }
};
struct OpRelu { template <class T> T operator()(T a) const { return nan_max(a, T(0)); } };

template <class Op> constexpr bool is_math_op() { return false; }
template <> constexpr bool is_math_op<OpPow>() { return true; }
template <> constexpr bool is_math_op<OpRPow>() { return true; }
template <> constexpr bool is_math_op<OpLog>() { return true; }
template <> constexpr bool is_math_op<OpExp>() { return true; }
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
