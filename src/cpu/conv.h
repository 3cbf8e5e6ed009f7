// conv.h: convolution forward and weight-gradient kernels over channels-last buffers, in the
// 3-D form of the backend's conv geometry (see ndarray_backend_numpy.py):
//   * im2col + GEMM: the A-panel packers below read im2col rows straight from the input
//     into the GEMM's packed panels (no im2col matrix is materialised, so the workspace is
//     only the GEMM's packing buffers: MC x KC per thread plus KC x NC, about 3.5 MiB for
//     float32), then gemm_packed multiplies per group.  The weight gradient is
//     X^T * grad per group through the same GEMM, X^T packed by a transposed packer.
//   * a direct kernel for depthwise convolution (Cg == 1, incl. channel multiplier
//     Cout = m * Cin), which is memory-bound and gains nothing from a GEMM.
// The input gradient is a convolution too (built by the op layer), so it has no kernel here.
#pragma once

#include "common.h"
#include "gemm.h"

namespace needle {
namespace cpu {

/// The 25-int conv geometry, checked by the binding before any kernel runs.
struct ConvGeom {
  std::int64_t N, Di, Hi, Wi, Cin, KD, KH, KW, Cout, Do, Ho, Wo;
  std::int64_t sd, sh, sw, pd, ph, pw, dd, dh, dw, idd, idh, idw, G;
  std::int64_t Cg() const { return Cin / G; }
  std::int64_t Coutg() const { return Cout / G; }
  std::int64_t K() const { return KD * KH * KW; }
  std::int64_t rows() const { return N * Do * Ho * Wo; }
};

/// Input index along one axis for output o and kernel tap k, or -1 when the tap hits
/// padding or a hole of the input dilation.
inline std::int64_t conv_src(std::int64_t o, std::int64_t k, std::int64_t s, std::int64_t d,
                             std::int64_t p, std::int64_t idl, std::int64_t size) {
  std::int64_t q = o * s + k * d - p;
  if (q < 0 || q % idl) return -1;
  q /= idl;
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

/// Pointer to channel 0 of the input pixel under tap kidx of output position p, or null.
template <class T>
inline const T* tap_ptr(const ConvGeom& g, const T* x, const OutPos& p, std::int64_t kidx) {
  const std::int64_t kw = kidx % g.KW, kh = (kidx / g.KW) % g.KH, kd = kidx / (g.KW * g.KH);
  const std::int64_t id = conv_src(p.od, kd, g.sd, g.dd, g.pd, g.idd, g.Di);
  if (id < 0) return nullptr;
  const std::int64_t ih = conv_src(p.oh, kh, g.sh, g.dh, g.ph, g.idh, g.Hi);
  if (ih < 0) return nullptr;
  const std::int64_t iw = conv_src(p.ow, kw, g.sw, g.dw, g.pw, g.idw, g.Wi);
  if (iw < 0) return nullptr;
  return x + (((p.n * g.Di + id) * g.Hi + ih) * g.Wi + iw) * g.Cin;
}

/// Packs A = X_g (rows = output pixels, columns = (tap, channel of group g)).
template <class T>
struct Im2colPackA {
  const ConvGeom& g;
  const T* x;
  std::int64_t group;

  template <int MR>
  void pack(T* dst, std::int64_t i0, int mr, std::int64_t p0, std::int64_t kc) const {
    const std::int64_t Cg = g.Cg(), end = p0 + kc;
    for (int i = 0; i < MR; ++i) {
      if (i >= mr) {
        for (std::int64_t k = 0; k < kc; ++k) dst[k * MR + i] = T(0);
        continue;
      }
      const OutPos pos = out_pos(g, i0 + i);
      std::int64_t p = p0, kidx = p0 / Cg, c = p0 % Cg;
      while (p < end) {
        const std::int64_t run = std::min(Cg - c, end - p);
        const T* src = tap_ptr(g, x, pos, kidx);
        T* d = dst + (p - p0) * MR + i;
        if (src) {
          src += group * Cg + c;
          for (std::int64_t t = 0; t < run; ++t) d[t * MR] = src[t];
        } else {
          for (std::int64_t t = 0; t < run; ++t) d[t * MR] = T(0);
        }
        p += run;
        ++kidx;
        c = 0;
      }
    }
  }
};

/// Packs A = X_g^T (rows = (tap, channel of group g), columns = output pixels).
template <class T>
struct Im2colTransposedPackA {
  const ConvGeom& g;
  const T* x;
  std::int64_t group;

  template <int MR>
  void pack(T* dst, std::int64_t i0, int mr, std::int64_t p0, std::int64_t kc) const {
    // the panel's rows split into runs of consecutive channels under one tap
    struct Run {
      std::int64_t kidx, c, len, at;
    };
    Run runs[MR];
    int nruns = 0;
    const std::int64_t Cg = g.Cg();
    for (std::int64_t r = i0; r < i0 + mr;) {
      const std::int64_t kidx = r / Cg, c = r % Cg;
      const std::int64_t len = std::min(Cg - c, i0 + mr - r);
      runs[nruns++] = Run{kidx, c + group * Cg, len, r - i0};
      r += len;
    }
    for (std::int64_t k = 0; k < kc; ++k) {
      const OutPos pos = out_pos(g, p0 + k);
      T* d = dst + k * MR;
      for (int r = 0; r < nruns; ++r) {
        const T* src = tap_ptr(g, x, pos, runs[r].kidx);
        if (src) {
          src += runs[r].c;
          for (std::int64_t t = 0; t < runs[r].len; ++t) d[runs[r].at + t] = src[t];
        } else {
          for (std::int64_t t = 0; t < runs[r].len; ++t) d[runs[r].at + t] = T(0);
        }
      }
      for (int i = mr; i < MR; ++i) d[i] = T(0);
    }
  }
};

// ---- depthwise (Cg == 1): direct kernels ---------------------------------------------------

/// out[row, ci * m + j] = sum_k x[tap(row, k), ci] * w[k, ci * m + j].
template <class T>
void depthwise_forward(const ConvGeom& g, const T* x, const T* w, T* out) {
  const std::int64_t C = g.Cout, m = g.Cout / g.Cin, K = g.K();
  parallel_items(g.rows(), 4, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t row = lo; row < hi; ++row) {
      T* o = out + row * C;
      for (std::int64_t c = 0; c < C; ++c) o[c] = T(0);
      const OutPos pos = out_pos(g, row);
      for (std::int64_t kidx = 0; kidx < K; ++kidx) {
        const T* src = tap_ptr(g, x, pos, kidx);
        if (!src) continue;
        const T* wk = w + kidx * C;
        if (m == 1) {
#pragma omp simd
          for (std::int64_t c = 0; c < C; ++c) o[c] += src[c] * wk[c];
        } else {
          for (std::int64_t ci = 0; ci < g.Cin; ++ci)
            for (std::int64_t j = 0; j < m; ++j) o[ci * m + j] += src[ci] * wk[ci * m + j];
        }
      }
    }
  });
}

/// dw[k, ci * m + j] = sum_row x[tap(row, k), ci] * grad[row, ci * m + j]; per-thread
/// partial sums (K x Cout each) are added at the end.
template <class T>
void depthwise_backward_weight(const ConvGeom& g, const T* x, const T* grad, T* dw) {
  const std::int64_t C = g.Cout, m = g.Cout / g.Cin, K = g.K(), rows = g.rows();
  const int nt = rows >= 64 ? max_threads() : 1;
  Workspace<T> part(std::size_t(nt) * K * C);
  for (std::int64_t i = 0; i < nt * K * C; ++i) part.get()[i] = T(0);
  parallel_items(nt, 2, [&](std::int64_t tlo, std::int64_t thi) {
    for (std::int64_t t = tlo; t < thi; ++t) {
      T* acc = part.get() + t * K * C;
      for (std::int64_t row = rows * t / nt; row < rows * (t + 1) / nt; ++row) {
        const OutPos pos = out_pos(g, row);
        const T* gr = grad + row * C;
        for (std::int64_t kidx = 0; kidx < K; ++kidx) {
          const T* src = tap_ptr(g, x, pos, kidx);
          if (!src) continue;
          T* ak = acc + kidx * C;
          if (m == 1) {
#pragma omp simd
            for (std::int64_t c = 0; c < C; ++c) ak[c] += src[c] * gr[c];
          } else {
            for (std::int64_t ci = 0; ci < g.Cin; ++ci)
              for (std::int64_t j = 0; j < m; ++j) ak[ci * m + j] += src[ci] * gr[ci * m + j];
          }
        }
      }
    }
  });
  for (std::int64_t i = 0; i < K * C; ++i) {
    T s = T(0);
    for (int t = 0; t < nt; ++t) s += part.get()[t * K * C + i];
    dw[i] = s;
  }
}

// ---- entry points ----------------------------------------------------------------------------

template <class T>
void conv_forward(const ConvGeom& g, const T* x, const T* w, T* out) {
  if (g.Cg() == 1 && g.G > 1) return depthwise_forward(g, x, w, out);
  const std::int64_t Coutg = g.Coutg(), Kdim = g.K() * g.Cg(), M = g.rows();
  if (Kdim == 0) {
    for (std::int64_t i = 0; i < M * g.Cout; ++i) out[i] = T(0);
    return;
  }
  for (std::int64_t grp = 0; grp < g.G; ++grp)
    gemm_packed(M, Coutg, Kdim, Im2colPackA<T>{g, x, grp}, w + grp * Coutg, g.Cout, 1,
                out + grp * Coutg, g.Cout, 1, false);
}

template <class T>
void conv_backward_weight(const ConvGeom& g, const T* x, const T* grad, T* dw) {
  const std::int64_t Coutg = g.Coutg(), Kdim = g.K() * g.Cg(), M = g.rows();
  if (M == 0) {
    for (std::int64_t i = 0; i < Kdim * g.Cout; ++i) dw[i] = T(0);
    return;
  }
  if (g.Cg() == 1 && g.G > 1) return depthwise_backward_weight(g, x, grad, dw);
  for (std::int64_t grp = 0; grp < g.G; ++grp)
    gemm_packed(Kdim, Coutg, M, Im2colTransposedPackA<T>{g, x, grp}, grad + grp * Coutg, g.Cout,
                1, dw + grp * Coutg, g.Cout, 1, false);
}

}  // namespace cpu
}  // namespace needle
