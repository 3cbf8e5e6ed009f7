// fused.cuh: the fused kernels of the function table (see src/cpu/fused.h).
#pragma once

#include "cuda/common.cuh"
#include "cuda/elementwise.cuh"

namespace needle {
namespace cuda {

// One thread per column walks down the rows (coalesced across the threads of a warp).
template <class T>
__global__ void sum_rows_kernel(const T* a, T* out, int64_t rows, int64_t cols) {
  NEEDLE_GRID_STRIDE(c, cols) {
    T acc = T(0);
    for (int64_t r = 0; r < rows; ++r) acc += a[r * cols + c];
    out[c] = acc;
  }
}

template <class T>
__global__ void rows_affine_kernel(const T* a, const T* b, const T* s, const T* t, const T* u,
                                   T* out, int64_t n, int64_t cols) {
  NEEDLE_GRID_STRIDE(i, n) {
    const int64_t c = i % cols;
    out[i] = a[i] * s[c] + b[i] * t[c] + u[c];
  }
}

template <class T>
__global__ void adam_step_kernel(const T* param, const T* grad, const T* m, const T* v, T step,
                                 T b1, T b2, T a1, T a2, double c2, T eps, T wd, T* param_out,
                                 T* m_out, T* v_out, int64_t n) {
  NEEDLE_GRID_STRIDE(i, n) {
    const T g = wd != T(0) ? grad[i] + param[i] * wd : grad[i];
    const T mi = m[i] * b1 + g * a1;
    const T vi = v[i] * b2 + g * g * a2;
    m_out[i] = mi;
    v_out[i] = vi;
    const T denom = static_cast<T>(sqrt(static_cast<double>(vi) / c2)) + eps;
    param_out[i] = param[i] - static_cast<T>(static_cast<double>(mi * step) / denom);
  }
}

template <class T>
void launch_sum_rows(const T* a, T* out, int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  sum_rows_kernel<T><<<grid_for(cols), kThreads>>>(a, out, rows, cols);
  check_launch("sum_rows_kernel");
}

template <class T>
void launch_rows_affine(const T* a, const T* b, const T* s, const T* t, const T* u, T* out,
                        int64_t n, int64_t cols) {
  if (n <= 0) return;
  rows_affine_kernel<T><<<grid_for(n), kThreads>>>(a, b, s, t, u, out, n, cols);
  check_launch("rows_affine_kernel");
}

template <class T>
void launch_adam_step(const T* param, const T* grad, const T* m, const T* v, const double* h,
                      T* param_out, T* m_out, T* v_out, int64_t n) {
  if (n <= 0) return;
  adam_step_kernel<T><<<grid_for(n), kThreads>>>(
      param, grad, m, v, T(h[0]), T(h[1]), T(h[2]), T(1 - h[1]), T(1 - h[2]), h[3], T(h[4]),
      T(h[5]), param_out, m_out, v_out, n);
  check_launch("adam_step_kernel");
}

}  // namespace cuda
}  // namespace needle
