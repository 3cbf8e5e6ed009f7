// taps.h: what every CPU conv kernel builds on: where a kernel tap reads (conv_src), output
// positions (OutPos, out_pos, next_pos), the input pointers of one output pixel's taps
// (row_taps), the per-thread scratch of a call (ConvScratch) and the sum of per-thread
// weight-gradient partials (sum_partials).
#pragma once

#include "common/geometry.h"
#include "cpu/common.h"
#include "cpu/gemm.h"

namespace needle {
namespace cpu {

/// Input index along one axis for output o and kernel tap k, or -1 when the tap hits
/// padding or a hole of the input dilation.
inline std::int64_t conv_src(std::int64_t o, std::int64_t k, std::int64_t s, std::int64_t d,
                             std::int64_t p, std::int64_t idl, std::int64_t size) {
  std::int64_t q = o * s + k * d - p;
  if (q < 0) return -1;
  if (idl != 1) {  // (an integer division costs more than the rest of a tap)
    if (q % idl) return -1;
    q /= idl;
  }
  return q < size ? q : -1;
}

/// Position of output row `row` = (n, od, oh, ow).
struct OutPos {
  std::int64_t n, od, oh, ow;
};

inline OutPos out_pos(const ConvGeom& g, std::int64_t row) {
  OutPos p;
  p.ow = row % g.Wo;
  row /= g.Wo;
  p.oh = row % g.Ho;
  row /= g.Ho;
  p.od = row % g.Do;
  p.n = row / g.Do;
  return p;
}

/// Output position after `p` along the rows (n, od, oh, ow) order.
inline void next_pos(const ConvGeom& g, OutPos& p) {
  if (++p.ow < g.Wo) return;
  p.ow = 0;
  if (++p.oh < g.Ho) return;
  p.oh = 0;
  if (++p.od < g.Do) return;
  p.od = 0;
  ++p.n;
}

/// Input pointers (channel 0) of every tap of output position p in kidx order, null where
/// the tap hits padding; taps has room for g.K() entries.  Per-axis indices are computed
/// once per axis, not once per tap.
template <class T>
inline void row_taps(const ConvGeom& g, const T* x, const OutPos& p, const T** taps) {
  std::int64_t k = 0;
  for (std::int64_t kd = 0; kd < g.KD; ++kd) {
    const std::int64_t id = conv_src(p.od, kd, g.sd, g.dd, g.pd, g.idd, g.Di);
    for (std::int64_t kh = 0; kh < g.KH; ++kh) {
      const std::int64_t ih = id < 0 ? -1 : conv_src(p.oh, kh, g.sh, g.dh, g.ph, g.idh, g.Hi);
      const T* base = ih < 0 ? nullptr : x + ((p.n * g.Di + id) * g.Hi + ih) * g.Wi * g.Cin;
      for (std::int64_t kw = 0; kw < g.KW; ++kw, ++k) {
        const std::int64_t iw = base ? conv_src(p.ow, kw, g.sw, g.dw, g.pw, g.idw, g.Wi) : -1;
        taps[k] = iw < 0 ? nullptr : base + iw * g.Cin;
      }
    }
  }
}

/// Per-call scratch for the conv kernels, one slice per thread (owned by the call, from the
/// pool): a table of K tap pointers and, for the forward packer, an MR x KC staging tile.
template <class T>
class ConvScratch {
 public:
  /// K tap pointers per thread (a table of several rows' taps when the caller asks for it).
  ConvScratch(std::int64_t K, int nt, bool stage)
      : K_(K), stage_len_(stage ? std::int64_t(GemmBlocks<T>::MR_NARROW) * GemmBlocks<T>::KC : 0),
        taps_(std::size_t(nt) * K), stage_(std::size_t(nt) * std::max<std::int64_t>(stage_len_, 1)),
        nt_(nt) {}
  const T** taps() const { return taps_.get() + slot() * K_; }
  T* stage() const { return stage_.get() + slot() * stage_len_; }

 private:
  int slot() const { return thread_slot(nt_); }
  std::int64_t K_, stage_len_;
  Workspace<const T*> taps_;
  Workspace<T> stage_;
  int nt_;
};

/// Output rows per chunk whose tap tables the chunked weight-gradient kernels build first
/// (depthwise_backward_weight, grouped_backward_weight_direct).
constexpr std::int64_t kDwChunk = 32;

/// dw[i] = sum over the nt per-thread partials part[t * wsize + i] (threads split i).
template <class T>
void sum_partials(const T* part, int nt, std::int64_t wsize, T* dw) {
  parallel_range(wsize, 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      T s = T(0);
      for (int t = 0; t < nt; ++t) s += part[t * wsize + i];
      dw[i] = s;
    }
  });
}

}  // namespace cpu
}  // namespace needle
