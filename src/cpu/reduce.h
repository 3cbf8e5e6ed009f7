// reduce.h: reductions over contiguous groups: out[i] = sum / max of
// a[i * r : (i + 1) * r].  Many groups are split across threads; one long group is split
// into per-thread partial results.  Sums use 16 independent lanes (vectorized, and more
// accurate than one running sum); max propagates NaN as NumPy does.
#pragma once

#include <limits>

#include "common.h"
#include "elementwise.h"

namespace needle {
namespace cpu {

struct SumReducer {
  template <class T> static T init() { return T(0); }
  template <class T> static T combine(T a, T b) { return a + b; }
};

struct MaxReducer {
  template <class T> static T init() { return -std::numeric_limits<T>::infinity(); }
  template <class T> static T combine(T a, T b) { return nan_max(a, b); }
};

/// Reduce a[0:n] with 16 independent accumulators (a loop the compiler vectorizes).
template <class R, class T>
T reduce_segment(const T* a, std::int64_t n) {
  constexpr int L = 16;
  if (n < L) {
    T v = R::template init<T>();
    for (std::int64_t i = 0; i < n; ++i) v = R::combine(v, a[i]);
    return v;
  }
  T acc[L];
  for (int j = 0; j < L; ++j) acc[j] = R::template init<T>();
  std::int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) acc[j] = R::combine(acc[j], a[i + j]);
  for (int j = 0; i < n; ++i, ++j) acc[j] = R::combine(acc[j], a[i]);
  for (int w = L / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] = R::combine(acc[j], acc[j + w]);
  return acc[0];
}

template <class R, class T>
void reduce(const T* a, T* out, std::int64_t groups, std::int64_t r) {
  const std::int64_t total = groups * r;
  int nt = max_threads();
  if (groups < nt && total >= (1 << 16)) {
    // few long groups: each thread reduces a slice of every group
    for (std::int64_t g = 0; g < groups; ++g) {
      std::vector<T> part(nt, R::template init<T>());
      const T* seg = a + g * r;
      parallel_items(nt, 2, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t t = lo; t < hi; ++t) {
          std::int64_t b = r * t / nt, e = r * (t + 1) / nt;
          part[t] = reduce_segment<R>(seg + b, e - b);
        }
      });
      T v = part[0];
      for (int t = 1; t < nt; ++t) v = R::combine(v, part[t]);
      out[g] = v;
    }
    return;
  }
  parallel_items(groups, std::max<std::int64_t>(2, (1 << 15) / std::max<std::int64_t>(r, 1)),
                 [&](std::int64_t lo, std::int64_t hi) {
                   for (std::int64_t g = lo; g < hi; ++g)
                     out[g] = reduce_segment<R>(a + g * r, r);
                 });
}

}  // namespace cpu
}  // namespace needle
