// conv.h: convolution forward and weight-gradient kernels over channels-last buffers, in the
// 3-D form of the backend's conv geometry (see ndarray_backend_numpy.py).  Which kernel runs
// (conv_forward / conv_backward_weight at the bottom pick in this order):
//   * depthwise (Cg == 1): direct kernels, memory-bound, no GEMM.  Without a channel
//     multiplier the forward works per output line (depthwise_forward_lines) and a 3x3
//     weight gradient keeps all 18 partial vectors of a line in registers
//     (depthwise_backward_weight_lines); other shapes use the per-pixel tap-table kernels.
//   * input dilation > 1 (the input gradient of a strided conv, built by the op layer):
//     GEMM of the input pixels with the repacked weight, then col2im scatter-add
//     (conv_forward_scatter): the taps that would read the holes are never multiplied.
//   * C_out per group of one SIMD vector, or a multiple of two where direct_slices() says so
//     (the stem, 16/32-channel layers, grouped layers; with AVX2 also wider layers): direct
//     kernels over a per-thread zero-padded image (dense_forward_padded,
//     dense_backward_weight_padded): taps at fixed offsets, each kernel row of a dense conv
//     one contiguous (kw, channel) run, outputs or partials in vector registers.
//   * otherwise forward = im2col + GEMM per group: Im2colPackA copies im2col rows straight
//     from the input into the GEMM's row-major A panels (no im2col matrix, no transposing
//     copy; workspace: the GEMM's packing buffers only, ~3.5 MiB in float32), and weight
//     gradient = X^T * grad per group over im2col blocks of kIm2colBlockBytes per thread.
// Kernels below kMinParallelMacs multiply-adds stay on the calling thread.
#pragma once

#include "common/geometry.h"
#include "cpu/common.h"
#include "gemm.h"

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

/// Packs A = X_g (rows = output pixels, columns = (tap, channel of group g)) as row-major
/// micro-panels (row stride kRowStride = KC, see micro_kernel): each im2col row is copied
/// straight from the input in contiguous runs of Cg channels per tap (memcpy); no
/// transposing copy.  Rows mr..MR-1 of an edge panel are zero.
template <class T>
struct Im2colPackA {
  static constexpr int kRowStride = int(GemmBlocks<T>::KC);
  const ConvGeom& g;
  const T* x;
  std::int64_t group;
  const ConvScratch<T>& scratch;

  template <int MR>
  void pack(T* dst, std::int64_t i0, int mr, std::int64_t p0, std::int64_t kc) const {
    const std::int64_t Cg = g.Cg(), end = p0 + kc, K = g.K();
    const T** taps = scratch.taps();
    for (int i = 0; i < mr; ++i) {
      row_taps(g, x, out_pos(g, i0 + i), taps);
      T* row = dst + i * kRowStride;
      std::int64_t p = p0, kidx = p0 / Cg, c = p0 % Cg;
      while (p < end) {
        const T* src = taps[kidx] ? taps[kidx] + group * Cg + c : nullptr;
        std::int64_t run = std::min(Cg - c, end - p);
        // merge the following taps that continue the same stretch of memory (neighbouring
        // pixels when groups == 1, e.g. a 7-wide window over 3 channels) or of padding
        while (p + run < end && kidx + 1 < K) {
          const T* next = taps[kidx + 1];
          if (src ? !(g.G == 1 && next == src + run) : next != nullptr) break;
          ++kidx;
          run += std::min(Cg, end - p - run);
        }
        if (src)
          std::memcpy(row + (p - p0), src, run * sizeof(T));
        else
          std::memset(row + (p - p0), 0, run * sizeof(T));
        p += run;
        ++kidx;
        c = 0;
      }
    }
    for (int i = mr; i < MR; ++i) std::memset(dst + i * kRowStride, 0, kc * sizeof(T));
  }
};

/// im2col of output rows [row0, row0 + nrows) into cols laid out (rows, G, K, Cg): the
/// columns of group g are one contiguous run of K * Cg per row.
template <class T>
void im2col_rows(const ConvGeom& g, const T* x, std::int64_t row0, std::int64_t nrows, T* cols,
                 const T** taps) {
  const std::int64_t K = g.K(), Cg = g.Cg(), Kdim = K * Cg, width = g.G * Kdim;
  for (std::int64_t r = 0; r < nrows; ++r) {
    row_taps(g, x, out_pos(g, row0 + r), taps);
    T* dst = cols + r * width;
    for (std::int64_t k = 0; k < K; ++k)
      for (std::int64_t grp = 0; grp < g.G; ++grp) {
        T* d = dst + grp * Kdim + k * Cg;
        if (taps[k])
          std::memcpy(d, taps[k] + grp * Cg, Cg * sizeof(T));
        else
          std::memset(d, 0, Cg * sizeof(T));
      }
  }
}

// ---- depthwise (Cg == 1): direct kernels ---------------------------------------------------

/// out[row, ci * m + j] = sum_k x[tap(row, k), ci] * w[k, ci * m + j].  Threads split the
/// output lines (n, od, oh); along a line no index division is needed.  With m == 1 each
/// block of 64 channels is summed over all taps in a local accumulator and stored once.
template <class T>
void depthwise_forward(const ConvGeom& g, const T* x, const T* w, T* out) {
  const std::int64_t C = g.Cout, m = g.Cout / g.Cin, K = g.K();
  constexpr std::int64_t CB = 64;
  const ConvScratch<T> scratch(K, max_threads(), false);
  const double macs = double(g.rows()) * K * C;
  parallel_items(g.N * g.Do * g.Ho, macs >= kMinParallelMacs ? 2 : INT64_MAX,
                 [&](std::int64_t lo, std::int64_t hi) {
    const T** taps = scratch.taps();
    for (std::int64_t line = lo; line < hi; ++line) {
      OutPos pos = out_pos(g, line * g.Wo);
      for (std::int64_t ow = 0; ow < g.Wo; ++ow) {
        pos.ow = ow;
        row_taps(g, x, pos, taps);
        T* o = out + (line * g.Wo + ow) * C;
        if (m == 1) {
          std::int64_t c0 = 0;
          for (; c0 + CB <= C; c0 += CB) {  // full blocks: accumulators in vector registers
            using V = typename VecOf<T>::type;
            constexpr int NV = int(CB * sizeof(T) / sizeof(V));
            V acc[NV] = {};
            for (std::int64_t kidx = 0; kidx < K; ++kidx) {
              if (!taps[kidx]) continue;
              const T* src = taps[kidx] + c0;
              const T* wk = w + kidx * C + c0;
#pragma GCC unroll 16
              for (int v = 0; v < NV; ++v) {
                V a, b;
                std::memcpy(&a, src + v * (sizeof(V) / sizeof(T)), sizeof(V));
                std::memcpy(&b, wk + v * (sizeof(V) / sizeof(T)), sizeof(V));
                acc[v] += a * b;
              }
            }
            std::memcpy(o + c0, acc, sizeof(acc));
          }
          for (; c0 < C; c0 += CB) {
            const std::int64_t cb = std::min(CB, C - c0);
            T acc[CB] = {};
            for (std::int64_t kidx = 0; kidx < K; ++kidx) {
              if (!taps[kidx]) continue;
              const T* src = taps[kidx] + c0;
              const T* wk = w + kidx * C + c0;
#pragma omp simd
              for (std::int64_t c = 0; c < cb; ++c) acc[c] += src[c] * wk[c];
            }
            std::memcpy(o + c0, acc, cb * sizeof(T));
          }
          continue;
        }
        for (std::int64_t c = 0; c < C; ++c) o[c] = T(0);
        for (std::int64_t kidx = 0; kidx < K; ++kidx) {
          const T* src = taps[kidx];
          if (!src) continue;
          const T* wk = w + kidx * C;
          for (std::int64_t ci = 0; ci < g.Cin; ++ci)
            for (std::int64_t j = 0; j < m; ++j) o[ci * m + j] += src[ci] * wk[ci * m + j];
        }
      }
    }
  });
}

/// Depthwise forward without a channel multiplier (Cout == Cin == groups), one output line
/// (n, od, oh) at a time: the line's valid kernel rows are found once.  Interior pixels
/// (every kw inside the input, no input dilation along W) read their taps at fixed offsets,
/// up to kDwPixels of them per register block (depthwise_pixel_block); the edge pixels take
/// the input column of every (ow, kw) from a per-call table, two SIMD vectors of channels
/// at a time.
constexpr std::int64_t kDwPixels = 4;  // output pixels per register block of the depthwise forward

/// One output line of the depthwise forward: its nr valid kernel rows (input row, weight
/// row), the kernel width, the channel count and the steps between output pixels (stride)
/// and between taps (dilation) in the input row, in elements.
template <class T>
struct DwLine {
  const T* const* rowp;
  const T* const* wrow;
  std::int64_t nr, KW, C, xstep, kstep;
};

/// NP interior pixels x two SIMD vectors of channels from c0: each weight vector loaded once
/// serves NP pixels, and the 2 * NP accumulators are independent chains (the FMA latency is
/// hidden).  `off` is the first pixel's first tap in the input row, channel c0 included.
template <class T, int NP>
inline void depthwise_pixel_block(const DwLine<T>& l, std::int64_t off, std::int64_t c0, T* o) {
  using V = typename VecOf<T>::type;
  constexpr int VW = int(sizeof(V) / sizeof(T));
  V acc[NP][2];
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p) acc[p][0] = acc[p][1] = V{};
  for (std::int64_t r = 0; r < l.nr; ++r) {
    const T* xr = l.rowp[r] + off;
    const T* wr = l.wrow[r] + c0;
    for (std::int64_t kw = 0; kw < l.KW; ++kw) {
      V w0, w1, xv;
      std::memcpy(&w0, wr + kw * l.C, sizeof(V));
      std::memcpy(&w1, wr + kw * l.C + VW, sizeof(V));
      const T* xk = xr + kw * l.kstep;
#pragma GCC unroll 8
      for (int p = 0; p < NP; ++p) {
        std::memcpy(&xv, xk + p * l.xstep, sizeof(V));
        acc[p][0] += xv * w0;
        std::memcpy(&xv, xk + p * l.xstep + VW, sizeof(V));
        acc[p][1] += xv * w1;
      }
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p) {
    const V a0 = acc[p][0], a1 = acc[p][1];  // by value: stored straight from the registers
    std::memcpy(o + p * l.C, &a0, sizeof(V));
    std::memcpy(o + p * l.C + VW, &a1, sizeof(V));
  }
}

template <class T>
void depthwise_forward_lines(const ConvGeom& g, const T* x, const T* w, T* out) {
  using V = typename VecOf<T>::type;
  constexpr int VW = int(sizeof(V) / sizeof(T));
  constexpr std::int64_t CB = 2 * VW;
  const std::int64_t C = g.Cout, KW = g.KW, Wo = g.Wo, rows_k = g.KD * g.KH;
  std::vector<std::int64_t> iwt(std::size_t(Wo * KW));
  std::int64_t in_lo = Wo, in_hi = 0;  // interior range of ow
  for (std::int64_t ow = 0; ow < Wo; ++ow) {
    bool all = g.idw == 1;
    for (std::int64_t kw = 0; kw < KW; ++kw) {
      iwt[ow * KW + kw] = conv_src(ow, kw, g.sw, g.dw, g.pw, g.idw, g.Wi);
      all = all && iwt[ow * KW + kw] >= 0;
    }
    if (all) {
      in_lo = std::min(in_lo, ow);
      in_hi = ow + 1;
    }
  }
  if (in_lo >= in_hi) in_lo = in_hi = 0;
  const ConvScratch<T> scratch(2 * rows_k, max_threads(), false);
  const double macs = double(g.rows()) * g.K() * C;
  parallel_items(g.N * g.Do * g.Ho, macs >= kMinParallelMacs ? 2 : INT64_MAX,
                 [&](std::int64_t lo, std::int64_t hi) {
    const T** rowp = scratch.taps();  // valid kernel rows: input row, then weight row
    const T** wrow = rowp + rows_k;
    for (std::int64_t line = lo; line < hi; ++line) {
      const OutPos pos = out_pos(g, line * Wo);
      std::int64_t nr = 0;
      for (std::int64_t kd = 0; kd < g.KD; ++kd) {
        const std::int64_t id = conv_src(pos.od, kd, g.sd, g.dd, g.pd, g.idd, g.Di);
        if (id < 0) continue;
        for (std::int64_t kh = 0; kh < g.KH; ++kh) {
          const std::int64_t ih = conv_src(pos.oh, kh, g.sh, g.dh, g.ph, g.idh, g.Hi);
          if (ih < 0) continue;
          rowp[nr] = x + ((pos.n * g.Di + id) * g.Hi + ih) * g.Wi * C;
          wrow[nr++] = w + (kd * g.KH + kh) * KW * C;
        }
      }
      T* o_line = out + line * Wo * C;
      if (nr == 0) {
        std::fill(o_line, o_line + Wo * C, T(0));
        continue;
      }
      // One output pixel, channels [c0, c0 + cb): accumulators over every valid tap.
      auto one_pixel = [&](std::int64_t ow, std::int64_t c0, std::int64_t cb) {
        T* o = o_line + ow * C + c0;
        if (cb == CB) {
          V a0 = V{}, a1 = V{}, xv, wv;
          for (std::int64_t r = 0; r < nr; ++r)
            for (std::int64_t kw = 0; kw < KW; ++kw) {
              const std::int64_t iw = iwt[ow * KW + kw];
              if (iw < 0) continue;
              const T* xr = rowp[r] + iw * C + c0;
              const T* wr = wrow[r] + kw * C + c0;
              std::memcpy(&xv, xr, sizeof(V));
              std::memcpy(&wv, wr, sizeof(V));
              a0 += xv * wv;
              std::memcpy(&xv, xr + VW, sizeof(V));
              std::memcpy(&wv, wr + VW, sizeof(V));
              a1 += xv * wv;
            }
          std::memcpy(o, &a0, sizeof(V));
          std::memcpy(o + VW, &a1, sizeof(V));
          return;
        }
        T acc[CB] = {};
        for (std::int64_t r = 0; r < nr; ++r)
          for (std::int64_t kw = 0; kw < KW; ++kw) {
            const std::int64_t iw = iwt[ow * KW + kw];
            if (iw < 0) continue;
            const T* xr = rowp[r] + iw * C + c0;
            const T* wr = wrow[r] + kw * C + c0;
#pragma omp simd
            for (std::int64_t c = 0; c < cb; ++c) acc[c] += xr[c] * wr[c];
          }
        std::memcpy(o, acc, cb * sizeof(T));
      };
      // Pixels with every tap inside the input go in register blocks of up to kDwPixels
      // (depthwise_pixel_block); the few edge pixels one at a time.
      const DwLine<T> dl{rowp, wrow, nr, KW, C, g.sw * C, g.dw * C};
      auto edge_pixel = [&](std::int64_t ow) {
        for (std::int64_t c0 = 0; c0 < C; c0 += CB) one_pixel(ow, c0, std::min(CB, C - c0));
      };
      for (std::int64_t ow = 0; ow < in_lo; ++ow) edge_pixel(ow);
      for (std::int64_t ow = in_lo, np; ow < in_hi; ow += np) {
        np = std::min(kDwPixels, in_hi - ow);
        const std::int64_t off = (ow * g.sw - g.pw) * C;
        std::int64_t c0 = 0;
        for (; c0 + CB <= C; c0 += CB) {
          T* o = o_line + ow * C + c0;
          switch (np) {
            case 4: depthwise_pixel_block<T, 4>(dl, off + c0, c0, o); break;
            case 3: depthwise_pixel_block<T, 3>(dl, off + c0, c0, o); break;
            case 2: depthwise_pixel_block<T, 2>(dl, off + c0, c0, o); break;
            default: depthwise_pixel_block<T, 1>(dl, off + c0, c0, o);
          }
        }
        if (c0 < C)
          for (std::int64_t p = ow; p < ow + np; ++p) one_pixel(p, c0, C - c0);
      }
      for (std::int64_t ow = in_hi; ow < Wo; ++ow) edge_pixel(ow);
    }
  });
}

/// Depthwise weight gradient (Cout == Cin == groups) for a KH_ x KW_ kernel over 2-D lines
/// (KD == 1, no input dilation): per output line (n, od, oh) and block of two SIMD vectors
/// of channels, the KH_ * KW_ * 2 partial vectors stay in registers while the line's pixels
/// go by (one grad load serves every tap; independent accumulators hide the FMA latency);
/// each thread adds them into its private K x C partial once per line.  Taps outside the
/// input are skipped by kernel row (top/bottom) and at the line's two ends (left/right).
template <class T, int KH_, int KW_>
void depthwise_backward_weight_lines(const ConvGeom& g, const T* x, const T* grad, T* dw) {
  using V = typename VecOf<T>::type;
  constexpr int VW = int(sizeof(V) / sizeof(T));
  constexpr std::int64_t CB = 2 * VW, K = KH_ * KW_;
  const std::int64_t C = g.Cout, Wo = g.Wo, lines = g.N * g.Do * g.Ho;
  const double macs = double(g.rows()) * K * C;
  const int nt = macs >= kMinParallelMacs && lines > 1 ? max_threads() : 1;
  Workspace<T> part(std::size_t(nt) * K * C);
  std::fill(part.get(), part.get() + nt * K * C, T(0));
  // input column of (ow, kw), or -1
  std::vector<std::int64_t> iwt(static_cast<std::size_t>(Wo * KW_));
  for (std::int64_t ow = 0; ow < Wo; ++ow)
    for (int kw = 0; kw < KW_; ++kw)
      iwt[ow * KW_ + kw] = conv_src(ow, kw, g.sw, g.dw, g.pw, 1, g.Wi);
  parallel_items(nt, 2, [&](std::int64_t tlo, std::int64_t thi) {
    for (std::int64_t t = tlo; t < thi; ++t) {
      T* acc_t = part.get() + t * K * C;
      for (std::int64_t line = lines * t / nt; line < lines * (t + 1) / nt; ++line) {
        const OutPos pos = out_pos(g, line * Wo);
        const T* rowp[KH_];
        for (int kh = 0; kh < KH_; ++kh) {
          const std::int64_t ih = conv_src(pos.oh, kh, g.sh, g.dh, g.ph, 1, g.Hi);
          const std::int64_t id = conv_src(pos.od, 0, g.sd, g.dd, g.pd, 1, g.Di);
          rowp[kh] = ih < 0 || id < 0 ? nullptr
                                      : x + ((pos.n * g.Di + id) * g.Hi + ih) * g.Wi * C;
        }
        const T* g_line = grad + line * Wo * C;
        for (std::int64_t c0 = 0; c0 < C; c0 += CB) {
          if (c0 + CB > C) {  // partial block: plain loops
            for (std::int64_t ow = 0; ow < Wo; ++ow)
              for (int kh = 0; kh < KH_; ++kh) {
                if (!rowp[kh]) continue;
                for (int kw = 0; kw < KW_; ++kw) {
                  const std::int64_t iw = iwt[ow * KW_ + kw];
                  if (iw < 0) continue;
                  T* a = acc_t + (kh * KW_ + kw) * C;
                  const T* xr = rowp[kh] + iw * C;
                  const T* gr = g_line + ow * C;
                  for (std::int64_t c = c0; c < C; ++c) a[c] += xr[c] * gr[c];
                }
              }
            continue;
          }
          V acc[KH_][KW_][2];
          for (int kh = 0; kh < KH_; ++kh)
            for (int kw = 0; kw < KW_; ++kw) acc[kh][kw][0] = acc[kh][kw][1] = V{};
          for (std::int64_t ow = 0; ow < Wo; ++ow) {
            V g0, g1, xv;
            std::memcpy(&g0, g_line + ow * C + c0, sizeof(V));
            std::memcpy(&g1, g_line + ow * C + c0 + VW, sizeof(V));
#pragma GCC unroll 8
            for (int kh = 0; kh < KH_; ++kh) {
              if (!rowp[kh]) continue;
#pragma GCC unroll 8
              for (int kw = 0; kw < KW_; ++kw) {
                const std::int64_t iw = iwt[ow * KW_ + kw];
                if (iw < 0) continue;
                const T* xr = rowp[kh] + iw * C + c0;
                std::memcpy(&xv, xr, sizeof(V));
                acc[kh][kw][0] += xv * g0;
                std::memcpy(&xv, xr + VW, sizeof(V));
                acc[kh][kw][1] += xv * g1;
              }
            }
          }
          for (int kh = 0; kh < KH_; ++kh)
            for (int kw = 0; kw < KW_; ++kw) {
              T* a = acc_t + (kh * KW_ + kw) * C + c0;
              V old;
              std::memcpy(&old, a, sizeof(V));
              old += acc[kh][kw][0];
              std::memcpy(a, &old, sizeof(V));
              std::memcpy(&old, a + VW, sizeof(V));
              old += acc[kh][kw][1];
              std::memcpy(a + VW, &old, sizeof(V));
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

/// dw[k, ci * m + j] = sum_row x[tap(row, k), ci] * grad[row, ci * m + j]; each thread
/// sums its rows into a private K x Cout partial, added up at the end.  Rows go in chunks of
/// kDwChunk whose tap tables are built first; then, per tap and 64-channel block, the partial
/// stays in vector registers across the chunk.
constexpr std::int64_t kDwChunk = 32;

template <class T>
void depthwise_backward_weight(const ConvGeom& g, const T* x, const T* grad, T* dw) {
  const std::int64_t C = g.Cout, m = g.Cout / g.Cin, K = g.K(), rows = g.rows();
  constexpr std::int64_t CB = 64;
  const int nt = rows >= 64 && double(rows) * K * C >= kMinParallelMacs ? max_threads() : 1;
  Workspace<T> part(std::size_t(nt) * K * C);
  const ConvScratch<T> scratch(kDwChunk * K, nt, false);
  for (std::int64_t i = 0; i < nt * K * C; ++i) part.get()[i] = T(0);
  parallel_items(nt, 2, [&](std::int64_t tlo, std::int64_t thi) {
    for (std::int64_t t = tlo; t < thi; ++t) {
      T* acc = part.get() + t * K * C;
      const T** table = scratch.taps();  // kDwChunk rows x K taps
      const std::int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
      OutPos pos = out_pos(g, r0);
      for (std::int64_t c_row = r0; c_row < r1; c_row += kDwChunk) {
        const std::int64_t nr = std::min(kDwChunk, r1 - c_row);
        for (std::int64_t r = 0; r < nr; ++r) {
          if (pos.ow == g.Wo) pos = out_pos(g, c_row + r);  // next line: divisions once per line
          row_taps(g, x, pos, table + r * K);
          ++pos.ow;
        }
        for (std::int64_t kidx = 0; kidx < K; ++kidx) {
          T* ak = acc + kidx * C;
          std::int64_t c0 = 0;
          if (m == 1) {
            using V = typename VecOf<T>::type;
            constexpr int VW = int(sizeof(V) / sizeof(T)), NV = int(CB / VW);
            for (; c0 + CB <= C; c0 += CB) {
              V sum[NV];
              std::memcpy(sum, ak + c0, sizeof(sum));
              for (std::int64_t r = 0; r < nr; ++r) {
                const T* src = table[r * K + kidx];
                if (!src) continue;
                const T* gr = grad + (c_row + r) * C + c0;
#pragma GCC unroll 16
                for (int v = 0; v < NV; ++v) {
                  V a, b;
                  std::memcpy(&a, src + c0 + v * VW, sizeof(V));
                  std::memcpy(&b, gr + v * VW, sizeof(V));
                  sum[v] += a * b;
                }
              }
              std::memcpy(ak + c0, sum, sizeof(sum));
            }
          }
          if (c0 == C) continue;
          for (std::int64_t r = 0; r < nr; ++r) {
            const T* src = table[r * K + kidx];
            if (!src) continue;
            const T* gr = grad + (c_row + r) * C;
            if (m == 1) {
#pragma omp simd
              for (std::int64_t c = c0; c < C; ++c) ak[c] += src[c] * gr[c];
            } else {
              for (std::int64_t ci = 0; ci < g.Cin; ++ci)
                for (std::int64_t j = 0; j < m; ++j) ak[ci * m + j] += src[ci] * gr[ci * m + j];
            }
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

// ---- C_out per group of one vector or slices of two: direct kernels ------------------------

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

/// The zero-padded image of the padded-image kernels below: the extent the windows reach,
/// ((O-1)*s + (k-1)*d + 1) per axis, so every tap of every output pixel is in bounds.  It is
/// stored group-planar, (G, Dp, Hp, Wp, Cg): a group's channels of neighbouring pixels are
/// neighbours in memory, so a pass over one group's windows uses whole cache lines and every
/// set of the L1 (a (Dp, Hp, Wp, C_in) image would use a quarter of the sets at 64 channels
/// in 4 groups, evicting its own lines).  With groups == 1 the two layouts are the same.
struct PaddedImage {
  std::int64_t Dp, Hp, Wp, plane, size;  // plane = Dp * Hp * Wp * Cg, size = G * plane
};

inline PaddedImage padded_image(const ConvGeom& g) {
  PaddedImage pi;
  pi.Dp = (g.Do - 1) * g.sd + (g.KD - 1) * g.dd + 1;
  pi.Hp = (g.Ho - 1) * g.sh + (g.KH - 1) * g.dh + 1;
  pi.Wp = (g.Wo - 1) * g.sw + (g.KW - 1) * g.dw + 1;
  pi.plane = pi.Dp * pi.Hp * pi.Wp * g.Cg();
  pi.size = g.G * pi.plane;
  return pi;
}

/// A contiguous run of one kernel row: its offset in a group plane of the padded image, its
/// first weight row and its length.  With groups == 1 and dilation 1 a whole (kw, channel)
/// row is one run; otherwise each tap is a run of Cg channels.
struct PaddedRun {
  std::int64_t off, widx, len;
};

inline std::vector<PaddedRun> padded_runs(const ConvGeom& g, const PaddedImage& pi) {
  const std::int64_t Cg = g.Cg();
  std::vector<PaddedRun> runs;
  for (std::int64_t kd = 0; kd < g.KD; ++kd)
    for (std::int64_t kh = 0; kh < g.KH; ++kh) {
      const std::int64_t row_off = ((kd * g.dd) * pi.Hp + kh * g.dh) * pi.Wp * Cg;
      const std::int64_t k0 = (kd * g.KH + kh) * g.KW;
      if (g.G == 1 && g.dw == 1) {
        runs.push_back({row_off, k0 * Cg, g.KW * Cg});
      } else {
        for (std::int64_t kw = 0; kw < g.KW; ++kw)
          runs.push_back({row_off + kw * g.dw * Cg, (k0 + kw) * Cg, Cg});
      }
    }
  return runs;
}

/// xp (pi.size elements) <- image n of x, zero-padded: the input rows the windows reach are
/// copied; everything else must already be zero (the kernels zero each thread's buffer once
/// per call, and every image copies the same region).
template <class T>
void copy_padded_image(const ConvGeom& g, const PaddedImage& pi, const T* x, std::int64_t n,
                       T* xp) {
  const std::int64_t Cin = g.Cin, Cg = g.Cg(), Hp = pi.Hp, Wp = pi.Wp;
  const std::int64_t w_lo = std::max<std::int64_t>(0, g.pw);
  const std::int64_t w_hi = std::min<std::int64_t>(Wp, g.Wi + g.pw);
  if (w_lo >= w_hi) return;
  for (std::int64_t dp = 0; dp < pi.Dp; ++dp) {
    const std::int64_t id = dp - g.pd;
    if (id < 0 || id >= g.Di) continue;
    for (std::int64_t hp = 0; hp < Hp; ++hp) {
      const std::int64_t ih = hp - g.ph;
      if (ih < 0 || ih >= g.Hi) continue;
      const T* src = x + (((n * g.Di + id) * g.Hi + ih) * g.Wi + (w_lo - g.pw)) * Cin;
      T* dst = xp + ((dp * Hp + hp) * Wp + w_lo) * Cg;
      if (g.G == 1) {
        std::memcpy(dst, src, (w_hi - w_lo) * Cin * sizeof(T));
        continue;
      }
      for (std::int64_t wp = w_lo; wp < w_hi; ++wp, src += Cin, dst += Cg)
        for (std::int64_t grp = 0; grp < g.G; ++grp)
          std::memcpy(dst + grp * pi.plane, src + grp * Cg, Cg * sizeof(T));
    }
  }
}

/// Forward without im2col or tap tables, for C_out per group a multiple of NV vectors and no
/// input dilation (dense and grouped): threads take whole images; each image is first copied
/// into a per-thread zero-padded buffer (zeroed once per call; the extent the windows reach:
/// ((O-1)*s + (k-1)*d + 1) per axis, bounded by one image), so every tap is in bounds and
/// sits at a fixed offset from the pixel's base pointer.  For each block of P output pixels
/// the groups, and within a group the slices of NV vectors of output channels, run one after
/// the other (the block's input windows stay in L1 across them); with groups == 1 and
/// dilation 1 the (kw, channel) pairs of a kernel row are one contiguous run of KW * C_in
/// elements in both the padded image and the weight.  The inner loop runs over a run with
/// P output pixels x NV vectors of accumulators in registers.  The 3-channel stem: 7 runs of
/// 21 instead of 49 taps of 3.
template <class T, int NV, int P>
void dense_forward_padded(const ConvGeom& g, const T* x, const T* w, T* out) {
  using V = typename VecOf<T>::type;
  constexpr int VW = int(sizeof(V) / sizeof(T));
  const std::int64_t C = g.Cout, Cg = g.Cg(), Coutg = g.Coutg();
  const PaddedImage pi = padded_image(g);
  const std::int64_t Hp = pi.Hp, Wp = pi.Wp, pimg = pi.size, pix_out = g.Do * g.Ho * g.Wo;
  const std::vector<PaddedRun> runs = padded_runs(g, pi);
  const double macs = double(g.rows()) * g.K() * Cg * C;
  const bool par = macs >= kMinParallelMacs && g.N > 1;
  const int slots = par ? max_threads() : 1;
  Workspace<T> pad(std::size_t(slots) * pimg);
  parallel_items(g.N, par ? 2 : INT64_MAX, [&](std::int64_t lo, std::int64_t hi) {
    T* xp = pad.get() + std::size_t(thread_slot(slots)) * pimg;
    std::fill(xp, xp + pimg, T(0));  // the padding; each image then copies its rows in
    for (std::int64_t n = lo; n < hi; ++n) {
      copy_padded_image(g, pi, x, n, xp);
      T* o_img = out + n * pix_out * C;
      std::int64_t od = 0, oh = 0, ow = 0;
      for (std::int64_t r0 = 0; r0 < pix_out; r0 += P) {
        const std::int64_t np = std::min<std::int64_t>(P, pix_out - r0);
        const T* base[P];
        for (int p = 0; p < P; ++p) {
          if (p < np) {
            base[p] = xp + ((od * g.sd * Hp + oh * g.sh) * Wp + ow * g.sw) * Cg;
            if (++ow == g.Wo) {
              ow = 0;
              if (++oh == g.Ho) {
                oh = 0;
                ++od;
              }
            }
          } else {
            base[p] = base[0];
          }
        }
        for (std::int64_t grp = 0; grp < g.G; ++grp)
          for (std::int64_t co0 = grp * Coutg; co0 < (grp + 1) * Coutg; co0 += NV * VW) {
            V acc[P][NV];
            for (int p = 0; p < P; ++p)
              for (int v = 0; v < NV; ++v) acc[p][v] = V{};
            for (const PaddedRun& run : runs) {
              const T* wr = w + run.widx * C + co0;
              const std::int64_t off = run.off + grp * pi.plane;
              for (std::int64_t j = 0; j < run.len; ++j) {
                V wv[NV];
                for (int v = 0; v < NV; ++v) std::memcpy(&wv[v], wr + j * C + v * VW, sizeof(V));
#pragma GCC unroll 16
                for (int p = 0; p < P; ++p) {
                  const T xv = base[p][off + j];
                  for (int v = 0; v < NV; ++v) acc[p][v] += xv * wv[v];
                }
              }
            }
            for (std::int64_t p = 0; p < np; ++p)
              std::memcpy(o_img + (r0 + p) * C + co0, acc[p], NV * sizeof(V));
          }
      }
    }
  });
}

/// Output pixels per pass of dense_backward_weight_padded: their grad rows and input windows
/// (for one group's channels) stay in L1 while every register block goes over them.
constexpr std::int64_t kWgradPixels = 128;

/// One register block of dense_backward_weight_padded: a[cc * C + v * VW ...] += sum over
/// pixels r in [r0, r1) of xb[pixoff[r] + cc] * grad row r (gb + r * C), for cc < cb.  All CB
/// entries are computed (the reads past cb stay inside the padded buffer); cb are stored.
template <class T, int NV, int CB>
inline void padded_wgrad_block(const T* xb, const std::int64_t* pixoff, const T* gb,
                               std::int64_t C, std::int64_t r0, std::int64_t r1, T* a, int cb) {
  using V = typename VecOf<T>::type;
  constexpr int VW = int(sizeof(V) / sizeof(T));
  V sum[CB][NV];
  for (int cc = 0; cc < CB; ++cc)
    for (int v = 0; v < NV; ++v) sum[cc][v] = V{};
  for (std::int64_t r = r0; r < r1; ++r) {
    const T* xr = xb + pixoff[r];
    V gv[NV];
    for (int v = 0; v < NV; ++v) std::memcpy(&gv[v], gb + r * C + v * VW, sizeof(V));
#pragma GCC unroll 16
    for (int cc = 0; cc < CB; ++cc)
      for (int v = 0; v < NV; ++v) sum[cc][v] += xr[cc] * gv[v];
  }
  for (int cc = 0; cc < cb; ++cc)
    for (int v = 0; v < NV; ++v) {
      V old;
      std::memcpy(&old, a + cc * C + v * VW, sizeof(V));
      old += sum[cc][v];
      std::memcpy(a + cc * C + v * VW, &old, sizeof(V));
    }
}

/// Weight gradient for C_out per group a multiple of NV vectors, no input dilation (dense
/// and grouped): the padded-image scheme of dense_forward_padded.  Threads take whole images
/// and keep a private K * C_in x C_out partial; for each contiguous run of (kw, channel)
/// entries, each block of CB entries and each slice of NV vectors of output channels, the
/// CB x NV partial vectors stay in registers over a pass of kWgradPixels pixels, whose grad
/// rows and windows stay in L1 (one grad-vector load serves CB entries; the pixel offsets are
/// one per-call table).  A run's last block computes CB or CB / 2 entries (reading past the
/// run, into the next channels or the CB zeroed elements after each padded image) and stores
/// only its own: no slow partial loop.
template <class T, int NV, int CB>
void dense_backward_weight_padded(const ConvGeom& g, const T* x, const T* grad, T* dw) {
  constexpr int VW = int(sizeof(typename VecOf<T>::type) / sizeof(T));
  const std::int64_t C = g.Cout, Cg = g.Cg(), Coutg = g.Coutg();
  const std::int64_t wsize = g.K() * Cg * C;
  const PaddedImage pi = padded_image(g);
  const std::int64_t Hp = pi.Hp, Wp = pi.Wp, pimg = pi.size, pix_out = g.Do * g.Ho * g.Wo;
  const std::int64_t pstride = pimg + CB;  // each padded image, then CB zeros
  const std::vector<PaddedRun> runs = padded_runs(g, pi);
  std::vector<std::int64_t> pixoff(static_cast<std::size_t>(pix_out));
  for (std::int64_t od = 0, r = 0; od < g.Do; ++od)
    for (std::int64_t oh = 0; oh < g.Ho; ++oh)
      for (std::int64_t ow = 0; ow < g.Wo; ++ow, ++r)
        pixoff[r] = ((od * g.sd * Hp + oh * g.sh) * Wp + ow * g.sw) * Cg;
  const double macs = double(g.rows()) * wsize;
  const int nt = macs >= kMinParallelMacs && g.N > 1 ? max_threads() : 1;
  Workspace<T> part(std::size_t(nt) * wsize), pad(std::size_t(nt) * pstride);
  std::fill(part.get(), part.get() + nt * wsize, T(0));
  parallel_items(nt, 2, [&](std::int64_t tlo, std::int64_t thi) {
    for (std::int64_t t = tlo; t < thi; ++t) {
      T* acc = part.get() + t * wsize;
      T* xp = pad.get() + t * pstride;
      std::fill(xp, xp + pstride, T(0));  // padding and slack; images copy their rows in
      for (std::int64_t n = g.N * t / nt; n < g.N * (t + 1) / nt; ++n) {
        copy_padded_image(g, pi, x, n, xp);
        const T* g_img = grad + n * pix_out * C;
        for (std::int64_t r0 = 0; r0 < pix_out; r0 += kWgradPixels) {
          const std::int64_t r1 = std::min(r0 + kWgradPixels, pix_out);
          for (std::int64_t grp = 0; grp < g.G; ++grp)
            for (std::int64_t co0 = grp * Coutg; co0 < (grp + 1) * Coutg; co0 += NV * VW)
              for (const PaddedRun& run : runs)
                for (std::int64_t j0 = 0; j0 < run.len; j0 += CB) {
                  const int cb = int(std::min<std::int64_t>(CB, run.len - j0));
                  T* a = acc + (run.widx + j0) * C + co0;
                  const T* xb = xp + run.off + grp * pi.plane + j0;
                  const T* gb = g_img + co0;
                  if (cb <= CB / 2)  // a short last block: half the registers, half the work
                    padded_wgrad_block<T, NV, CB / 2>(xb, pixoff.data(), gb, C, r0, r1, a, cb);
                  else
                    padded_wgrad_block<T, NV, CB>(xb, pixoff.data(), gb, C, r0, r1, a, cb);
                }
        }
      }
    }
  });
  parallel_range(wsize, 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      T s = T(0);
      for (int t = 0; t < nt; ++t) s += part.get()[t * wsize + i];
      dw[i] = s;
    }
  });
}

/// Grouped weight gradient without im2col: dw[k, c, grp * Coutg + co] = sum over rows of
/// x[tap(row, k), grp * Cg + c] * grad[row, grp * Coutg + co].  Each thread keeps a private
/// partial; rows go in chunks of kDwChunk with their tap tables built first, then for each
/// (group, tap, block of CB channels) the CB x NV partial vectors stay in registers across
/// the chunk (one grad-vector load serves CB channels).
template <class T, int NV, int CB>
void grouped_backward_weight_direct(const ConvGeom& g, const T* x, const T* grad, T* dw) {
  using V = typename VecOf<T>::type;
  constexpr int VW = int(sizeof(V) / sizeof(T));
  const std::int64_t K = g.K(), Cg = g.Cg(), Coutg = g.Coutg(), C = g.Cout, rows = g.rows();
  const std::int64_t wsize = K * Cg * C;
  const int nt = rows >= 64 && double(rows) * wsize >= kMinParallelMacs ? max_threads() : 1;
  Workspace<T> part(std::size_t(nt) * wsize), zeros(std::size_t(g.Cin));
  std::fill(part.get(), part.get() + nt * wsize, T(0));
  std::fill(zeros.get(), zeros.get() + g.Cin, T(0));
  const ConvScratch<T> scratch(kDwChunk * K, nt, false);
  parallel_items(nt, 2, [&](std::int64_t tlo, std::int64_t thi) {
    for (std::int64_t t = tlo; t < thi; ++t) {
      T* acc = part.get() + t * wsize;
      const T** table = scratch.taps();  // kDwChunk rows x K taps, never null
      const std::int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
      OutPos pos = out_pos(g, r0);
      for (std::int64_t c_row = r0; c_row < r1; c_row += kDwChunk) {
        const std::int64_t nr = std::min(kDwChunk, r1 - c_row);
        for (std::int64_t r = 0; r < nr; ++r) {
          row_taps(g, x, pos, table + r * K);
          next_pos(g, pos);
          for (std::int64_t k = 0; k < K; ++k)
            if (!table[r * K + k]) table[r * K + k] = zeros.get();
        }
        for (std::int64_t grp = 0; grp < g.G; ++grp)
          for (std::int64_t k = 0; k < K; ++k)
            for (std::int64_t c0 = 0; c0 < Cg; c0 += CB) {
              const int cb = int(std::min<std::int64_t>(CB, Cg - c0));
              T* a = acc + (k * Cg + c0) * C + grp * Coutg;  // channel cc at a + cc * C
              V sum[CB][NV];
              for (int cc = 0; cc < CB; ++cc)
                for (int v = 0; v < NV; ++v)
                  if (cc < cb) std::memcpy(&sum[cc][v], a + cc * C + v * VW, sizeof(V));
                  else sum[cc][v] = V{};
              for (std::int64_t r = 0; r < nr; ++r) {
                const T* xr = table[r * K + k] + grp * Cg + c0;
                const T* gr = grad + (c_row + r) * C + grp * Coutg;
                V gv[NV];
                for (int v = 0; v < NV; ++v) std::memcpy(&gv[v], gr + v * VW, sizeof(V));
                if (cb == CB) {
#pragma GCC unroll 16
                  for (int cc = 0; cc < CB; ++cc)
                    for (int v = 0; v < NV; ++v) sum[cc][v] += xr[cc] * gv[v];
                } else {
                  for (int cc = 0; cc < cb; ++cc)
                    for (int v = 0; v < NV; ++v) sum[cc][v] += xr[cc] * gv[v];
                }
              }
              for (int cc = 0; cc < cb; ++cc)
                for (int v = 0; v < NV; ++v)
                  std::memcpy(a + cc * C + v * VW, &sum[cc][v], sizeof(V));
            }
      }
    }
  });
  parallel_range(wsize, 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      T s = T(0);
      for (int t = 0; t < nt; ++t) s += part.get()[t * wsize + i];
      dw[i] = s;
    }
  });
}

// ---- input dilation > 1 (the input gradient of a strided conv): GEMM + col2im ---------------

/// Output index along one axis that input element i reaches through tap k, or -1: the
/// forward reads x~[o*s + k*d - p] with x~[i*l] = x[i], so o = (i*l + p - k*d) / s.
inline std::int64_t scatter_dst(std::int64_t i, std::int64_t k, std::int64_t s, std::int64_t d,
                                std::int64_t p, std::int64_t l, std::int64_t size) {
  const std::int64_t t = i * l + p - k * d;
  if (t < 0 || t % s) return -1;
  return t / s < size ? t / s : -1;
}

/// Per-axis table dst[i * k_len + k] = scatter_dst(i, k, ...).
inline std::vector<std::int64_t> scatter_table(std::int64_t n, std::int64_t k_len, std::int64_t s,
                                               std::int64_t d, std::int64_t p, std::int64_t l,
                                               std::int64_t size) {
  std::vector<std::int64_t> t(std::size_t(n * k_len));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < k_len; ++k) t[i * k_len + k] = scatter_dst(i, k, s, d, p, l, size);
  return t;
}

/// Images per block of the scatter path's column buffer (kIm2colBlockBytes per thread).
constexpr std::size_t kScatterBlockBytes = std::size_t(4) << 20;

/// Forward with input dilation l > 1 without multiplying the holes: every input pixel's
/// contribution to all taps is one GEMM row, cols[pixel, (k, co)] = x[pixel, group] *
/// w_g[c, (k, co)] (M = input pixels, N = K * Coutg, K_gemm = Cg: the forward's MACs without
/// the (1 - 1/l^d) of taps that read zeros), then scatter-added to the outputs each tap
/// reaches (col2im).  Threads take whole images (no two threads write one output), in blocks
/// whose columns fit kScatterBlockBytes (at least one image); the weight is repacked once as
/// (G, Cg, K, Coutg).
template <class T>
void conv_forward_scatter(const ConvGeom& g, const T* x, const T* w, T* out) {
  const std::int64_t K = g.K(), Cg = g.Cg(), Coutg = g.Coutg(), C = g.Cout, Cin = g.Cin;
  const std::int64_t pix_in = g.Di * g.Hi * g.Wi, pix_out = g.Do * g.Ho * g.Wo, KN = K * Coutg;
  Workspace<T> wt(std::size_t(g.G * Cg * KN));
  for (std::int64_t grp = 0; grp < g.G; ++grp)
    for (std::int64_t c = 0; c < Cg; ++c)
      for (std::int64_t k = 0; k < K; ++k)
        std::memcpy(wt.get() + ((grp * Cg + c) * K + k) * Coutg,
                    w + (k * Cg + c) * C + grp * Coutg, Coutg * sizeof(T));
  const auto td = scatter_table(g.Di, g.KD, g.sd, g.dd, g.pd, g.idd, g.Do);
  const auto th = scatter_table(g.Hi, g.KH, g.sh, g.dh, g.ph, g.idh, g.Ho);
  const auto tw = scatter_table(g.Wi, g.KW, g.sw, g.dw, g.pw, g.idw, g.Wo);
  const std::int64_t per_image = pix_in * KN;
  const std::int64_t nb = std::max<std::int64_t>(
      1, std::min<std::int64_t>(g.N, std::int64_t(kScatterBlockBytes / sizeof(T)) / per_image));
  const std::int64_t blocks = ceil_div(g.N, nb);
  const double macs = double(g.N) * pix_in * KN * Cg;
  const int nt = blocks > 1 && macs >= kMinParallelMacs ? std::min<int>(max_threads(), blocks) : 1;
  const int slots = nt > 1 ? max_threads() : 1;
  Workspace<T> cols(std::size_t(slots) * nb * per_image);
  parallel_items(nt > 1 ? blocks : 1, 2, [&](std::int64_t lo, std::int64_t hi) {
    if (nt == 1) hi = blocks;  // serial: one call over every block
    T* mine = cols.get() + std::size_t(thread_slot(slots)) * nb * per_image;
    for (std::int64_t b = lo; b < hi; ++b) {
      const std::int64_t n0 = b * nb, nn = std::min(nb, g.N - n0);
      T* o_blk = out + n0 * pix_out * C;
      std::fill(o_blk, o_blk + nn * pix_out * C, T(0));
      for (std::int64_t grp = 0; grp < g.G; ++grp) {
        gemm<T>(nn * pix_in, KN, Cg, x + n0 * pix_in * Cin + grp * Cg, Cin, 1,
                wt.get() + grp * Cg * KN, KN, 1, mine, KN, 1, false);
        const T* col = mine;
        for (std::int64_t n = 0; n < nn; ++n)
          for (std::int64_t id = 0; id < g.Di; ++id)
            for (std::int64_t ih = 0; ih < g.Hi; ++ih)
              for (std::int64_t iw = 0; iw < g.Wi; ++iw, col += KN) {
                std::int64_t k = 0;
                for (std::int64_t kd = 0; kd < g.KD; ++kd) {
                  const std::int64_t od = td[id * g.KD + kd];
                  if (od < 0) {
                    k += g.KH * g.KW;
                    continue;
                  }
                  for (std::int64_t kh = 0; kh < g.KH; ++kh) {
                    const std::int64_t oh = th[ih * g.KH + kh];
                    if (oh < 0) {
                      k += g.KW;
                      continue;
                    }
                    T* orow = o_blk + ((n * g.Do + od) * g.Ho + oh) * g.Wo * C + grp * Coutg;
                    for (std::int64_t kw = 0; kw < g.KW; ++kw, ++k) {
                      const std::int64_t ow = tw[iw * g.KW + kw];
                      if (ow < 0) continue;
                      T* o = orow + ow * C;
                      const T* src = col + k * Coutg;
#pragma omp simd
                      for (std::int64_t co = 0; co < Coutg; ++co) o[co] += src[co];
                    }
                  }
                }
              }
      }
    }
  });
}

// ---- entry points ----------------------------------------------------------------------------

/// Whether the padded-image direct kernels take a layer whose C_out per group is a multiple
/// of two vectors (processed in slices of two).  With AVX-512: only one slice (measured: the
/// GEMM wins beyond it).  With AVX2: up to kDirectMaxCoutAvx2 output channels per group at
/// any size, wider ones on images of at least kDirectMinPixels output pixels (on tiny
/// images most of a pixel block is padding and the GEMM wins).
constexpr std::int64_t kDirectMaxCoutAvx2 = 64;
constexpr std::int64_t kDirectMinPixels = 64;

template <class T>
bool direct_slices(const ConvGeom& g) {
  constexpr std::int64_t VW = kVecBytes / sizeof(T);
  const std::int64_t Coutg = g.Coutg();
  if (Coutg % (2 * VW) != 0) return false;
  if (Coutg == 2 * VW) return true;
  if (kVecBytes == 64) return false;
  return Coutg <= kDirectMaxCoutAvx2 || g.Do * g.Ho * g.Wo >= kDirectMinPixels;
}

template <class T>
void conv_forward(const ConvGeom& g, const T* x, const T* w, T* out) {
  if (g.Cg() == 1 && g.G > 1) {
    if (g.Cout == g.Cin) return depthwise_forward_lines(g, x, w, out);
    return depthwise_forward(g, x, w, out);
  }
  const std::int64_t Coutg = g.Coutg(), Kdim = g.K() * g.Cg(), M = g.rows();
  if (Kdim == 0) {
    for (std::int64_t i = 0; i < M * g.Cout; ++i) out[i] = T(0);
    return;
  }
  if (g.idd > 1 || g.idh > 1 || g.idw > 1) return conv_forward_scatter(g, x, w, out);
  constexpr std::int64_t VW = kVecBytes / sizeof(T);
  if (Coutg == VW) return dense_forward_padded<T, 1, 8>(g, x, w, out);
  if (direct_slices<T>(g)) return dense_forward_padded<T, 2, 6>(g, x, w, out);
  const ConvScratch<T> scratch(g.K(), max_threads(), false);
  for (std::int64_t grp = 0; grp < g.G; ++grp)
    gemm_packed(M, Coutg, Kdim, Im2colPackA<T>{g, x, grp, scratch}, w + grp * Coutg, g.Cout, 1,
                out + grp * Coutg, g.Cout, 1, false);
}

/// Workspace of one thread's im2col block in the weight gradient.
constexpr std::size_t kIm2colBlockBytes = std::size_t(4) << 20;

/// dw = X^T * grad per group.  Each thread takes a contiguous range of output rows, packs
/// them block by block (at most kIm2colBlockBytes, or one row if a row is larger) with
/// im2col_rows, and accumulates X_blk^T * grad_blk into its own K*Cg x Cout partial through
/// the strided GEMM (X^T is a transposed view: no copy); the partials are summed at the end.
/// No barriers inside the reduction over rows.
template <class T>
void conv_backward_weight(const ConvGeom& g, const T* x, const T* grad, T* dw) {
  const std::int64_t Coutg = g.Coutg(), Kdim = g.K() * g.Cg(), M = g.rows();
  const std::int64_t width = g.G * Kdim, wsize = Kdim * g.Cout;
  if (M == 0 || Kdim == 0) {
    for (std::int64_t i = 0; i < wsize; ++i) dw[i] = T(0);
    return;
  }
  if (g.Cg() == 1 && g.G > 1) {
    const bool lines3x3 = g.Cout == g.Cin && g.KD == 1 && g.KH == 3 && g.KW == 3 &&
                          g.idd == 1 && g.idh == 1 && g.idw == 1;
    if (lines3x3) return depthwise_backward_weight_lines<T, 3, 3>(g, x, grad, dw);
    return depthwise_backward_weight(g, x, grad, dw);
  }
  constexpr std::int64_t VW = kVecBytes / sizeof(T);
  // entries per register block: CB x NV partial vectors, plus the grad vectors and one
  // broadcast, within the 32 (AVX-512) or 16 (AVX2) vector registers
  constexpr int CB1 = kVecBytes == 64 ? 16 : 12, CB2 = kVecBytes == 64 ? 12 : 6;
  const bool dense_direct = g.idd == 1 && g.idh == 1 && g.idw == 1;
  if (dense_direct && Coutg == VW) return dense_backward_weight_padded<T, 1, CB1>(g, x, grad, dw);
  if (dense_direct && direct_slices<T>(g))
    return dense_backward_weight_padded<T, 2, CB2>(g, x, grad, dw);
  if (Coutg == VW) return grouped_backward_weight_direct<T, 1, CB1>(g, x, grad, dw);
  if (Coutg == 2 * VW) return grouped_backward_weight_direct<T, 2, CB2>(g, x, grad, dw);
  const int nt = M >= 256 && double(M) * wsize >= kMinParallelMacs ? max_threads() : 1;
  const std::int64_t block =
      std::max<std::int64_t>(1, std::int64_t(kIm2colBlockBytes / sizeof(T)) / width);
  Workspace<T> part(std::size_t(nt) * wsize);
  Workspace<T> cols(std::size_t(nt) * std::min(block, M) * width);
  const ConvScratch<T> scratch(g.K(), nt, false);
  parallel_items(nt, 2, [&](std::int64_t tlo, std::int64_t thi) {
    for (std::int64_t t = tlo; t < thi; ++t) {
      T* acc = part.get() + t * wsize;
      T* mine = cols.get() + t * std::min(block, M) * width;
      std::fill(acc, acc + wsize, T(0));
      for (std::int64_t r0 = M * t / nt; r0 < M * (t + 1) / nt; r0 += block) {
        const std::int64_t nr = std::min(block, M * (t + 1) / nt - r0);
        im2col_rows(g, x, r0, nr, mine, scratch.taps());
        for (std::int64_t grp = 0; grp < g.G; ++grp)
          gemm<T>(Kdim, Coutg, nr, mine + grp * Kdim, 1, width, grad + r0 * g.Cout + grp * Coutg,
                  g.Cout, 1, acc + grp * Coutg, g.Cout, 1, true);
      }
    }
  });
  parallel_range(wsize, 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      T s = T(0);
      for (int t = 0; t < nt; ++t) s += part.get()[t * wsize + i];
      dw[i] = s;
    }
  });
}

}  // namespace cpu
}  // namespace needle
