// strided.h: copies between a strided view (shape, strides, offset; strides may be negative
// or zero) and a compact buffer: compact (gather), ewise_setitem (scatter) and scalar_setitem
// (fill a view).  Dimensions are first coalesced so the common cases become a few long rows;
// rows whose inner stride is 1 are copied with memcpy.  Callers check the view's extent.
#pragma once

#include "common.h"
#include "gemm.h"  // ceil_div

namespace needle {
namespace cpu {

/// A view with size-1 axes dropped and mergeable neighbours merged (outer first).
struct Coalesced {
  std::vector<std::int64_t> shape, strides;
  std::int64_t inner() const { return shape.empty() ? 1 : shape.back(); }
  std::int64_t inner_stride() const { return strides.empty() ? 1 : strides.back(); }
  std::int64_t rows() const {
    std::int64_t r = 1;
    for (std::size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
    return r;
  }
};

inline Coalesced coalesce(const std::vector<std::int64_t>& shape,
                          const std::vector<std::int64_t>& strides) {
  Coalesced c;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!c.shape.empty() && c.strides.back() == strides[i] * shape[i]) {
      c.shape.back() *= shape[i];
      c.strides.back() = strides[i];
    } else {
      c.shape.push_back(shape[i]);
      c.strides.push_back(strides[i]);
    }
  }
  return c;
}

/// Calls row(view_offset, compact_offset, length, inner_stride) for every row of the view,
/// rows split across threads when the view is large.
template <class F>
void for_each_row(const Coalesced& c, std::int64_t offset, F&& row, bool parallel = true) {
  const std::int64_t inner = c.inner(), istride = c.inner_stride(), rows = c.rows();
  const int outer = int(c.shape.size()) - 1;
  if (rows == 1) {  // one long row (e.g. a contiguous view): split the row itself
    parallel_range(inner, parallel ? (1 << 16) : inner + 1, [&](std::int64_t lo, std::int64_t hi) {
      row(offset + lo * istride, lo, hi - lo, istride);
    });
    return;
  }
  const std::int64_t min_rows =
      std::max<std::int64_t>(2, (1 << 16) / std::max<std::int64_t>(inner, 1));
  parallel_items(rows, parallel ? min_rows : rows + 1, [&](std::int64_t lo, std::int64_t hi) {
    // multi-index of row `lo` over the outer axes, then step it like an odometer
    std::vector<std::int64_t> idx(std::max(outer, 0), 0);
    std::int64_t src = offset, r = lo;
    for (int d = outer - 1; d >= 0; --d) {
      idx[d] = r % c.shape[d];
      r /= c.shape[d];
      src += idx[d] * c.strides[d];
    }
    for (std::int64_t i = lo; i < hi; ++i) {
      row(src, i * inner, inner, istride);
      for (int d = outer - 1; d >= 0; --d) {
        src += c.strides[d];
        if (++idx[d] < c.shape[d]) break;
        src -= idx[d] * c.strides[d];
        idx[d] = 0;
      }
    }
  });
}

/// out (R x C, compact) <- a[r + c * cs]: a transpose, copied in 32 x 32 tiles so that both
/// the reads and the writes stay within a few cache lines per tile.
template <class T>
void transpose_copy(const T* a, std::int64_t cs, std::int64_t R, std::int64_t C, T* out) {
  constexpr std::int64_t B = 32;
  parallel_items(ceil_div(C, B), R * C >= (1 << 15) ? 2 : ceil_div(C, B) + 1,
                 [&](std::int64_t lo, std::int64_t hi) {
                   for (std::int64_t cb = lo * B; cb < std::min(C, hi * B); cb += B)
                     for (std::int64_t rb = 0; rb < R; rb += B)
                       for (std::int64_t c = cb; c < std::min(C, cb + B); ++c)
                         for (std::int64_t r = rb; r < std::min(R, rb + B); ++r)
                           out[r * C + c] = a[r + c * cs];
                 });
}

/// out[i] (R x C, compact) <- a[i * ms + r + c * cs] for C = 3 (an RGB batch from NCHW to
/// NHWC): one pass per image writing whole pixels, which the compiler vectorizes, the images
/// split across threads.
template <class T>
void interleave3(const T* a, std::int64_t n, std::int64_t ms, std::int64_t cs, std::int64_t R,
                 T* out) {
  parallel_items(n, n * R >= (1 << 14) ? 2 : n + 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      const T *s0 = a + i * ms, *s1 = s0 + cs, *s2 = s1 + cs;
      T* d = out + i * R * 3;
      for (std::int64_t r = 0; r < R; ++r) {
        d[3 * r] = s0[r];
        d[3 * r + 1] = s1[r];
        d[3 * r + 2] = s2[r];
      }
    }
  });
}

/// out (compact) <- view of a.
template <class T>
void compact(const T* a, T* out, const std::vector<std::int64_t>& shape,
             const std::vector<std::int64_t>& strides, std::int64_t offset) {
  Coalesced co = coalesce(shape, strides);
  const std::size_t D = co.shape.size();
  if (D == 3 && co.inner() == 3 && co.strides[1] == 1 && co.shape[1] >= 8) {
    interleave3(a + offset, co.shape[0], co.strides[0], co.inner_stride(), co.shape[1], out);
    return;
  }
  if (D >= 2 && co.strides[D - 2] == 1 && co.inner_stride() != 1 && co.shape[D - 2] >= 8 &&
      co.inner() >= 2) {
    // the last two axes are a transpose: tiled copies, one per index of the outer axes (also
    // for a short last axis: NCHW -> NHWC of a 3-channel image batch is (HW x 3) rows)
    const std::int64_t R = co.shape[D - 2], C = co.inner(), cs = co.inner_stride();
    Coalesced outer;
    outer.shape.assign(co.shape.begin(), co.shape.end() - 2);
    outer.strides.assign(co.strides.begin(), co.strides.end() - 2);
    outer.shape.push_back(1);
    outer.strides.push_back(0);
    for_each_row(outer, offset, [&](std::int64_t s, std::int64_t d, std::int64_t, std::int64_t) {
      transpose_copy(a + s, cs, R, C, out + d * R * C);
    });
    return;
  }
  for_each_row(co, offset,
               [&](std::int64_t s, std::int64_t d, std::int64_t n, std::int64_t st) {
                 if (st == 1) {
                   std::memcpy(out + d, a + s, n * sizeof(T));
                 } else {
#pragma omp simd
                   for (std::int64_t j = 0; j < n; ++j) out[d + j] = a[s + j * st];
                 }
               });
}

inline bool has_zero_stride(const Coalesced& c) {
  return std::find(c.strides.begin(), c.strides.end(), 0) != c.strides.end();
}

/// view of out <- a (compact).  A view that repeats elements (stride 0) is written serially,
/// so the last write wins as in NumPy.
template <class T>
void ewise_setitem(const T* a, T* out, const std::vector<std::int64_t>& shape,
                   const std::vector<std::int64_t>& strides, std::int64_t offset) {
  Coalesced c = coalesce(shape, strides);
  for_each_row(c, offset,
               [&](std::int64_t s, std::int64_t d, std::int64_t n, std::int64_t st) {
                 if (st == 1) {
                   std::memmove(out + s, a + d, n * sizeof(T));
                 } else {
                   for (std::int64_t j = 0; j < n; ++j) out[s + j * st] = a[d + j];
                 }
               },
               !has_zero_stride(c));
}

/// view of out <- val.
template <class T>
void scalar_setitem(T val, T* out, const std::vector<std::int64_t>& shape,
                    const std::vector<std::int64_t>& strides, std::int64_t offset) {
  for_each_row(coalesce(shape, strides), offset,
               [&](std::int64_t s, std::int64_t, std::int64_t n, std::int64_t st) {
                 if (st == 1) {
#pragma omp simd
                   for (std::int64_t j = 0; j < n; ++j) out[s + j] = val;
                 } else {
                   for (std::int64_t j = 0; j < n; ++j) out[s + j * st] = val;
                 }
               });
}

}  // namespace cpu
}  // namespace needle
