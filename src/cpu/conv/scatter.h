// scatter.h: the forward with input dilation > 1 (the input gradient of a strided conv,
// built by the op layer): a GEMM of the input pixels with the repacked weight, then a
// col2im scatter-add, so the taps that would read the holes are never multiplied.
#pragma once

#include "cpu/conv/taps.h"
#include "cpu/gemm.h"

namespace needle {
namespace cpu {

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

}  // namespace cpu
}  // namespace needle
