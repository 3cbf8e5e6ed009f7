// direct.h: direct kernels for C_out per group of one SIMD vector or slices of two, no
// input dilation (the stem, 16/32-channel layers, grouped layers): each image is copied into
// a per-thread zero-padded buffer, so every tap sits at a fixed offset
// (dense_forward_padded, dense_backward_weight_padded); grouped weight gradients without
// that padding (grouped_backward_weight_direct); which layers take them (direct_slices).
#pragma once

#include "cpu/conv/taps.h"

namespace needle {
namespace cpu {

// ---- C_out per group of one vector or slices of two: direct kernels ------------------------
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
  sum_partials(part.get(), nt, wsize, dw);
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
  sum_partials(part.get(), nt, wsize, dw);
}

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

}  // namespace cpu
}  // namespace needle
