// Elementwise kernels: fill, binary (array op array), scalar (array op value) and unary ops,
// as functors run by three grid-stride kernels; then their launchers.
//
// The module is built with --use_fast_math, which turns float exp/log/pow/division into
// approximate intrinsics (__powf is NaN for a negative base, so (-2)**2 would fail). These
// kernels are memory-bound, so float transcendentals and division are computed in double
// and rounded once: results match NumPy to the last bit or two at no cost in speed.
#pragma once

#include "cuda/common.cuh"

namespace needle {
namespace cuda {

template <class T>
__device__ __forceinline__ T d_div(T a, T b) {
  return static_cast<T>(static_cast<double>(a) / static_cast<double>(b));
}
template <class T>
__device__ __forceinline__ T d_pow(T a, T b) {
  return static_cast<T>(pow(static_cast<double>(a), static_cast<double>(b)));
}
template <class T>
__device__ __forceinline__ T d_exp(T a) {
  return static_cast<T>(exp(static_cast<double>(a)));
}

// ---- binary ops: out = op(x, y); the scalar kernels call op(x, val) ------------------------
struct OpAdd {
  template <class T> __device__ T operator()(T x, T y) const { return x + y; }
};
struct OpSub {
  template <class T> __device__ T operator()(T x, T y) const { return x - y; }
};
struct OpRSub {
  template <class T> __device__ T operator()(T x, T v) const { return v - x; }
};
struct OpMul {
  template <class T> __device__ T operator()(T x, T y) const { return x * y; }
};
struct OpDiv {
  template <class T> __device__ T operator()(T x, T y) const { return d_div(x, y); }
};
struct OpRDiv {
  template <class T> __device__ T operator()(T x, T v) const { return d_div(v, x); }
};
struct OpPower {
  template <class T> __device__ T operator()(T x, T y) const { return d_pow(x, y); }
};
struct OpRPower {
  template <class T> __device__ T operator()(T x, T v) const { return d_pow(v, x); }
};
struct OpMaximum {
  template <class T> __device__ T operator()(T x, T y) const { return nan_max(x, y); }
};
// ReLU's gradient: g where the ReLU's input a > 0, else 0 (also for NaN inputs).
struct OpReluGrad {
  template <class T> __device__ T operator()(T g, T a) const { return a > T(0) ? g : T(0); }
};
struct OpEq {
  template <class T> __device__ T operator()(T x, T y) const { return T(x == y); }
};
struct OpNe {
  template <class T> __device__ T operator()(T x, T y) const { return T(x != y); }
};
struct OpLt {
  template <class T> __device__ T operator()(T x, T y) const { return T(x < y); }
};
struct OpLe {
  template <class T> __device__ T operator()(T x, T y) const { return T(x <= y); }
};
struct OpGt {
  template <class T> __device__ T operator()(T x, T y) const { return T(x > y); }
};
struct OpGe {
  template <class T> __device__ T operator()(T x, T y) const { return T(x >= y); }
};

// ---- unary ops -------------------------------------------------------------------------------
struct OpNeg {
  template <class T> __device__ T operator()(T x) const { return -x; }
};
struct OpLog {
  template <class T> __device__ T operator()(T x) const {
    return static_cast<T>(log(static_cast<double>(x)));
  }
};
struct OpExp {
  template <class T> __device__ T operator()(T x) const { return d_exp(x); }
};
struct OpTanh {
  template <class T> __device__ T operator()(T x) const {
    return static_cast<T>(tanh(static_cast<double>(x)));
  }
};
struct OpSqrt {
  template <class T> __device__ T operator()(T x) const {
    return static_cast<T>(sqrt(static_cast<double>(x)));
  }
};
struct OpAbs {
  template <class T> __device__ T operator()(T x) const { return x < T(0) ? -x : x; }
};
struct OpSign {
  // NaN and +-0 map to themselves, as np.sign does.
  template <class T> __device__ T operator()(T x) const {
    return x > T(0) ? T(1) : (x < T(0) ? T(-1) : x);
  }
};
struct OpSigmoid {
  template <class T> __device__ T operator()(T x) const {
    return static_cast<T>(1.0 / (1.0 + exp(-static_cast<double>(x))));
  }
};
struct OpRelu {
  template <class T> __device__ T operator()(T x) const { return nan_max(x, T(0)); }
};

// ---- kernels -----------------------------------------------------------------------------------
#define NEEDLE_GRID_STRIDE(i, n)                                                        \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(blockDim.x) * gridDim.x)

template <class T>
__global__ void fill_kernel(T* out, T val, int64_t n) {
  NEEDLE_GRID_STRIDE(i, n) { out[i] = val; }
}

template <class T, class Op>
__global__ void ewise_kernel(const T* a, const T* b, T* out, int64_t n, Op op) {
  NEEDLE_GRID_STRIDE(i, n) { out[i] = op(a[i], b[i]); }
}

template <class T, class Op>
__global__ void scalar_kernel(const T* a, T val, T* out, int64_t n, Op op) {
  NEEDLE_GRID_STRIDE(i, n) { out[i] = op(a[i], val); }
}

template <class T, class Op>
__global__ void unary_kernel(const T* a, T* out, int64_t n, Op op) {
  NEEDLE_GRID_STRIDE(i, n) { out[i] = op(a[i]); }
}

// ---- launchers -----------------------------------------------------------------------------
template <class T>
void launch_fill(T* out, T val, int64_t n) {
  if (n <= 0) return;
  fill_kernel<T><<<grid_for(n), kThreads>>>(out, val, n);
  check_launch("fill_kernel");
}

template <class T, class Op>
void launch_ewise(const T* a, const T* b, T* out, int64_t n) {
  if (n <= 0) return;
  ewise_kernel<T, Op><<<grid_for(n), kThreads>>>(a, b, out, n, Op());
  check_launch("ewise_kernel");
}

template <class T, class Op>
void launch_scalar(const T* a, T val, T* out, int64_t n) {
  if (n <= 0) return;
  scalar_kernel<T, Op><<<grid_for(n), kThreads>>>(a, val, out, n, Op());
  check_launch("scalar_kernel");
}

template <class T, class Op>
void launch_unary(const T* a, T* out, int64_t n) {
  if (n <= 0) return;
  unary_kernel<T, Op><<<grid_for(n), kThreads>>>(a, out, n, Op());
  check_launch("unary_kernel");
}

}  // namespace cuda
}  // namespace needle
