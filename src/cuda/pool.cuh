// Max pooling, channels-last, 3-D form (see the pool geometry of the backend table):
// forward (max over each window; padding counts as -inf and never wins) and backward (the
// output gradient goes to the first arg-max of its window, scattered with atomicAdd since
// overlapping windows may pick the same input element). NaN wins a window, as in NumPy.
#pragma once

#include <cstdint>
#include <limits>

#include "common/geometry.h"
#include "cuda/common.cuh"
#include "cuda/elementwise.cuh"

namespace needle {
namespace cuda {

// First arg-max of output element e's window: its value and its input index (-1 when the
// winner is padding, i.e. the window holds no element above -inf).
template <class T>
__device__ void window_argmax(const T* x, const PoolGeom& g, int64_t e, T* best_out,
                              int64_t* index_out) {
  int64_t t = e;
  const int64_t c = t % g.C; t /= g.C;
  const int64_t ow = t % g.Wo; t /= g.Wo;
  const int64_t oh = t % g.Ho; t /= g.Ho;
  const int64_t od = t % g.Do;
  const int64_t n = t / g.Do;
  T best = neg_inf<T>();
  int64_t index = -1;
  bool first = true;
  for (int64_t kd = 0; kd < g.KD; ++kd) {
    const int64_t id = od * g.sd + kd - g.pd;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.sh + kh - g.ph;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t iw = ow * g.sw + kw - g.pw;
        const bool inside = id >= 0 && id < g.Di && ih >= 0 && ih < g.Hi && iw >= 0 && iw < g.Wi;
        const int64_t idx = inside ? (((n * g.Di + id) * g.Hi + ih) * g.Wi + iw) * g.C + c : -1;
        const T v = inside ? x[idx] : neg_inf<T>();
        if (first || v > best || (v != v && best == best)) {
          best = v;
          index = idx;
          first = false;
        }
      }
    }
  }
  *best_out = best;
  *index_out = index;
}

template <class T>
__global__ void maxpool_forward_kernel(const T* x, T* out, PoolGeom g, int64_t total) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(blockDim.x) * gridDim.x) {
    T best;
    int64_t index;
    window_argmax(x, g, e, &best, &index);
    out[e] = best;
  }
}

template <class T>
__global__ void maxpool_backward_kernel(const T* x, const T* gy, T* dx, PoolGeom g,
                                        int64_t total) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(blockDim.x) * gridDim.x) {
    T best;
    int64_t index;
    window_argmax(x, g, e, &best, &index);
    if (index >= 0) atomicAdd(dx + index, gy[e]);
  }
}

template <class T>
void maxpool_forward(const T* x, T* out, const PoolGeom& g) {
  const int64_t total = g.N * g.Do * g.Ho * g.Wo * g.C;
  if (total <= 0) return;
  maxpool_forward_kernel<T><<<grid_for(total), kThreads>>>(x, out, g, total);
  check_launch("maxpool_forward_kernel");
}

template <class T>
void maxpool_backward(const T* x, const T* gy, T* dx, const PoolGeom& g) {
  launch_fill<T>(dx, T(0), g.N * g.Di * g.Hi * g.Wi * g.C);
  const int64_t total = g.N * g.Do * g.Ho * g.Wo * g.C;
  if (total <= 0) return;
  maxpool_backward_kernel<T><<<grid_for(total), kThreads>>>(x, gy, dx, g, total);
  check_launch("maxpool_backward_kernel");
}

}  // namespace cuda
}  // namespace needle
