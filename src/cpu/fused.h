// fused.h: kernels that fuse what the training step would otherwise run as many passes.
//   sum_rows:   column sums of a row-major (rows, cols) matrix (per-channel sums of a
//               channels-last batch) without transposing it;
//   rows_affine: out = a * s + b * t + u with per-column s, t, u (batch norm's normalisation
//               and input gradient in one pass, no broadcast copies);
//   adam_step:  one pass of the Adam update over flat parameter / gradient / moment buffers.
#pragma once

#include <cmath>
#include <vector>

#include "common.h"

namespace needle {
namespace cpu {

/// out[c] = sum over r < rows of a[r * cols + c].  Threads take blocks of rows and keep a
/// partial row each (a vectorizable loop over the columns); the partials are added last.
template <class T>
void sum_rows(const T* a, T* out, std::int64_t rows, std::int64_t cols) {
  int nt = max_threads();
  if (rows * cols < (1 << 15) || rows < 2 * nt) nt = 1;
  std::vector<T> part(std::size_t(nt) * std::size_t(cols), T(0));
  parallel_items(nt, 2, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t t = lo; t < hi; ++t) {
      T* acc = part.data() + t * cols;
      const std::int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
      for (std::int64_t r = r0; r < r1; ++r) {
        const T* row = a + r * cols;
#pragma omp simd
        for (std::int64_t c = 0; c < cols; ++c) acc[c] += row[c];
      }
    }
  });
  for (std::int64_t c = 0; c < cols; ++c) out[c] = part[c];
  for (int t = 1; t < nt; ++t)
    for (std::int64_t c = 0; c < cols; ++c) out[c] += part[t * cols + c];
}

/// out[r, c] = a[r, c] * s[c] + b[r, c] * t[c] + u[c] for row-major (rows, cols) matrices.
template <class T>
void rows_affine(const T* a, const T* b, const T* s, const T* t, const T* u, T* out,
                 std::int64_t rows, std::int64_t cols) {
  parallel_items(rows, std::max<std::int64_t>(2, (1 << 15) / std::max<std::int64_t>(cols, 1)),
                 [&](std::int64_t lo, std::int64_t hi) {
                   for (std::int64_t r = lo; r < hi; ++r) {
                     const T* ar = a + r * cols;
                     const T* br = b + r * cols;
                     T* o = out + r * cols;
#pragma omp simd
                     for (std::int64_t c = 0; c < cols; ++c)
                       o[c] = ar[c] * s[c] + br[c] * t[c] + u[c];
                   }
                 });
}

/// Adam over n elements, h = {step_size, beta1, beta2, correction2, eps, weight_decay}:
///   g = grad + weight_decay * param
///   m' = beta1 * m + (1 - beta1) * g,   v' = beta2 * v + (1 - beta2) * g * g
///   param' = param - step_size * m' / (sqrt(v' / correction2) + eps)
template <class T>
void adam_step(const T* param, const T* grad, const T* m, const T* v, const double* h,
               T* param_out, T* m_out, T* v_out, std::int64_t n) {
  const T step = T(h[0]), b1 = T(h[1]), b2 = T(h[2]), c2 = T(h[3]), eps = T(h[4]), wd = T(h[5]);
  const T a1 = T(1 - h[1]), a2 = T(1 - h[2]);
  parallel_range(n, 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
#pragma omp simd
    for (std::int64_t i = lo; i < hi; ++i) {
      const T g = wd != T(0) ? grad[i] + param[i] * wd : grad[i];
      const T mi = m[i] * b1 + g * a1;
      const T vi = v[i] * b2 + g * g * a2;
      m_out[i] = mi;
      v_out[i] = vi;
      param_out[i] = param[i] - mi * step / (std::sqrt(vi / c2) + eps);
    }
  });
}

}  // namespace cpu
}  // namespace needle
