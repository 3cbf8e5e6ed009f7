// pool.h: max pooling forward and backward over channels-last buffers in the 3-D form of the
// backend's pool geometry.  Padding never wins: windows look at real input elements only
// (a window with none gives -inf forward and routes no gradient).  The backward pass routes
// each output gradient to the FIRST arg-max in window scan order (kd, kh, kw), as np.argmax
// does, NaN counting as the maximum.
#pragma once

#include <limits>

#include "common/geometry.h"
#include "cpu/common.h"
#include "cpu/elementwise.h"

namespace needle {
namespace cpu {

/// Calls f(input_pixel_index) for every real input pixel of window (n, od, oh, ow), in scan
/// order.
template <class F>
inline void for_each_tap(const PoolGeom& g, std::int64_t n, std::int64_t od, std::int64_t oh,
                         std::int64_t ow, F&& f) {
  for (std::int64_t kd = 0; kd < g.KD; ++kd) {
    const std::int64_t id = od * g.sd + kd - g.pd;
    if (id < 0 || id >= g.Di) continue;
    for (std::int64_t kh = 0; kh < g.KH; ++kh) {
      const std::int64_t ih = oh * g.sh + kh - g.ph;
      if (ih < 0 || ih >= g.Hi) continue;
      for (std::int64_t kw = 0; kw < g.KW; ++kw) {
        const std::int64_t iw = ow * g.sw + kw - g.pw;
        if (iw < 0 || iw >= g.Wi) continue;
        f(((n * g.Di + id) * g.Hi + ih) * g.Wi + iw);
      }
    }
  }
}

template <class T>
void maxpool_forward(const PoolGeom& g, const T* x, T* out) {
  const std::int64_t rows = g.N * g.Do * g.Ho * g.Wo, C = g.C;
  parallel_items(rows, 8, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t row = lo; row < hi; ++row) {
      std::int64_t r = row;
      const std::int64_t ow = r % g.Wo, oh = (r /= g.Wo) % g.Ho, od = (r /= g.Ho) % g.Do,
                         n = r / g.Do;
      T* o = out + row * C;
      for (std::int64_t c = 0; c < C; ++c) o[c] = -std::numeric_limits<T>::infinity();
      for_each_tap(g, n, od, oh, ow, [&](std::int64_t pix) {
        const T* src = x + pix * C;
#pragma omp simd
        for (std::int64_t c = 0; c < C; ++c) o[c] = nan_max(o[c], src[c]);
      });
    }
  });
}

template <class T>
void maxpool_backward(const PoolGeom& g, const T* x, const T* grad, T* dx) {
  const std::int64_t C = g.C, per_image = g.Di * g.Hi * g.Wi * C;
  parallel_items(g.N, 2, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<T> best(C);
    std::vector<std::int64_t> arg(C);
    for (std::int64_t n = lo; n < hi; ++n) {
      std::fill(dx + n * per_image, dx + (n + 1) * per_image, T(0));
      for (std::int64_t od = 0; od < g.Do; ++od)
        for (std::int64_t oh = 0; oh < g.Ho; ++oh)
          for (std::int64_t ow = 0; ow < g.Wo; ++ow) {
            std::fill(arg.begin(), arg.end(), -1);
            for_each_tap(g, n, od, oh, ow, [&](std::int64_t pix) {
              const T* src = x + pix * C;
              for (std::int64_t c = 0; c < C; ++c) {
                const T v = src[c], b = best[c];
                if (arg[c] < 0 || v > b || (v != v && b == b)) {
                  best[c] = v;
                  arg[c] = pix;
                }
              }
            });
            const T* gr = grad + (((n * g.Do + od) * g.Ho + oh) * g.Wo + ow) * C;
            for (std::int64_t c = 0; c < C; ++c)
              if (arg[c] >= 0) dx[arg[c] * C + c] += gr[c];
          }
    }
  });
}

}  // namespace cpu
}  // namespace needle
