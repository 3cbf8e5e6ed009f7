// depthwise.h: direct kernels for depthwise convolution (one input channel per group),
// memory-bound, no GEMM: forward per pixel over tap tables (depthwise_forward, any channel
// multiplier) or per output line with register-blocked interior pixels
// (depthwise_forward_lines, Cout == Cin); weight gradient per chunk of rows
// (depthwise_backward_weight) or, for 3x3 kernels, per output line with every tap's partial
// in registers (depthwise_backward_weight_lines).
#pragma once

#include "cpu/conv/taps.h"

namespace needle {
namespace cpu {

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
      // f(input, weight) at channel c0 of every valid tap of output pixel ow.
      auto for_each_valid_tap = [&](std::int64_t ow, std::int64_t c0, auto&& f) {
        for (std::int64_t r = 0; r < nr; ++r)
          for (std::int64_t kw = 0; kw < KW; ++kw) {
            const std::int64_t iw = iwt[ow * KW + kw];
            if (iw >= 0) f(rowp[r] + iw * C + c0, wrow[r] + kw * C + c0);
          }
      };
      // One output pixel, channels [c0, c0 + cb): accumulators over every valid tap.
      auto one_pixel = [&](std::int64_t ow, std::int64_t c0, std::int64_t cb) {
        T* o = o_line + ow * C + c0;
        if (cb == CB) {
          V a0 = V{}, a1 = V{};
          for_each_valid_tap(ow, c0, [&](const T* xr, const T* wr) {
            V xv, wv;
            std::memcpy(&xv, xr, sizeof(V));
            std::memcpy(&wv, wr, sizeof(V));
            a0 += xv * wv;
            std::memcpy(&xv, xr + VW, sizeof(V));
            std::memcpy(&wv, wr + VW, sizeof(V));
            a1 += xv * wv;
          });
          std::memcpy(o, &a0, sizeof(V));
          std::memcpy(o + VW, &a1, sizeof(V));
          return;
        }
        T acc[CB] = {};
        for_each_valid_tap(ow, c0, [&](const T* xr, const T* wr) {
#pragma omp simd
          for (std::int64_t c = 0; c < cb; ++c) acc[c] += xr[c] * wr[c];
        });
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
  sum_partials(part.get(), nt, K * C, dw);
}

/// dw[k, ci * m + j] = sum_row x[tap(row, k), ci] * grad[row, ci * m + j]; each thread
/// sums its rows into a private K x Cout partial, added up at the end.  Rows go in chunks of
/// kDwChunk whose tap tables are built first; then, per tap and 64-channel block, the partial
/// stays in vector registers across the chunk.
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
  sum_partials(part.get(), nt, K * C, dw);
}

}  // namespace cpu
}  // namespace needle
