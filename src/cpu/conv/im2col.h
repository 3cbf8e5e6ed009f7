// im2col.h: the GEMM path of convolution, for the layers no direct kernel takes: the forward
// packs im2col rows straight into the GEMM's A panels (Im2colPackA, no im2col matrix), the
// weight gradient multiplies blocks of im2col rows (im2col_rows) transposed with grad.
#pragma once

#include "cpu/conv/taps.h"
#include "cpu/gemm.h"

namespace needle {
namespace cpu {

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

/// Forward = im2col + GEMM per group: out_g = X_g * w_g, X_g packed panel by panel.
template <class T>
void im2col_forward(const ConvGeom& g, const T* x, const T* w, T* out) {
  const std::int64_t Coutg = g.Coutg(), Kdim = g.K() * g.Cg(), M = g.rows();
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
void im2col_backward_weight(const ConvGeom& g, const T* x, const T* grad, T* dw) {
  const std::int64_t Coutg = g.Coutg(), Kdim = g.K() * g.Cg(), M = g.rows();
  const std::int64_t width = g.G * Kdim, wsize = Kdim * g.Cout;
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
  sum_partials(part.get(), nt, wsize, dw);
}

}  // namespace cpu
}  // namespace needle
