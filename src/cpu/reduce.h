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
  template <class V> static V combine_vec(V a, V b) {
    return (a > b) | (a != a) ? a : b;  // lane-wise nan_max
  }
};

template <class V>
inline V combine_vec(SumReducer, V a, V b) { return a + b; }
template <class V>
inline V combine_vec(MaxReducer, V a, V b) { return MaxReducer::combine_vec(a, b); }

/// Reduce a[0:n] with 4 vector accumulators (4 x 16 float lanes on AVX-512).
template <class R, class T>
T reduce_segment(const T* a, std::int64_t n) {
  using V = typename VecOf<T>::type;
  constexpr int VW = int(sizeof(V) / sizeof(T)), U = 4;
  T v = R::template init<T>();
  std::int64_t i = 0;
  if (n >= U * VW) {
    V acc[U];
    for (int u = 0; u < U; ++u) acc[u] = V{} + R::template init<T>();
    for (; i + U * VW <= n; i += U * VW)
      for (int u = 0; u < U; ++u) {
        V x;
        std::memcpy(&x, a + i + u * VW, sizeof(V));
        acc[u] = combine_vec(R{}, acc[u], x);
      }
    acc[0] = combine_vec(R{}, combine_vec(R{}, acc[0], acc[1]), combine_vec(R{}, acc[2], acc[3]));
    T lanes[VW];
    std::memcpy(lanes, &acc[0], sizeof(V));
    for (int l = 0; l < VW; ++l) v = R::combine(v, lanes[l]);
  }
  for (; i < n; ++i) v = R::combine(v, a[i]);
  return v;
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
