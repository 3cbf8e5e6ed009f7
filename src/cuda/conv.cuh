// Convolution, channels-last, in the 3-D form of the backend table (1-D and 2-D problems
// have size-1 leading axes): forward and weight gradient, both as im2col + the one GEMM.
//
//   forward          out_g[r, co]   = sum_k cols_g[r, k] * w_g[k, co]      (per group g)
//   weight gradient  dw_g[k, co]    = sum_r cols_g[r, k] * gy_g[r, co]    (cols_g transposed)
//
// with r = (n, od, oh, ow) an output position, k = (kd, kh, kw, c) a kernel tap and input
// channel of the group, and cols_g[r, k] the input element that tap reads (zero in the
// padding and between input-dilated elements). The input gradient is itself a convolution
// (built by the op layer), so it needs no kernel here.
//
// Workspace: cols for a block of `nb` samples, laid out [g][r][k] so each group's matrix is
// a plain row-major matrix; nb is the largest batch block whose cols fit in
// workspace_limit() (at least one sample), so the extra memory of a call is
// max(workspace_limit(), one sample's cols). 1x1 convolutions with unit stride and no padding
// read the input directly (no workspace). Depthwise convolutions (one input channel per
// group) run direct kernels instead of GEMMs of width 1.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/gemm.cuh"

namespace needle {
namespace cuda {

template <class I>
struct ConvGeomT {
  I N, D, H, W, C, KD, KH, KW, Co, OD, OH, OW;
  I sd, sh, sw, pd, ph, pw, dd, dh, dw, idd, idh, idw, G;

  // The same geometry in a narrower index type (int when every index fits: 64-bit
  // division, used heavily by these kernels, is several times slower than 32-bit).
  template <class J>
  ConvGeomT<J> as() const {
    return {J(N),  J(D),  J(H),  J(W),  J(C),  J(KD), J(KH), J(KW), J(Co),
            J(OD), J(OH), J(OW), J(sd), J(sh), J(sw), J(pd), J(ph), J(pw),
            J(dd), J(dh), J(dw), J(idd), J(idh), J(idw), J(G)};
  }
};
using ConvGeom = ConvGeomT<int64_t>;

// Upper bound on the im2col workspace of one call (256 MiB by default; settable from
// Python with conv_workspace_bytes(), which the tests use to force batch blocking).
inline int64_t& workspace_limit() {
  static int64_t bytes = int64_t(256) << 20;
  return bytes;
}

// Position q (in the input-dilated, padded frame) -> input index, or -1 when it is padding
// or a hole between dilated input elements.
template <class I>
__device__ __forceinline__ I dilated_index(I q, I idil, I size) {
  if (idil != 1) {
    if (q < 0 || q % idil != 0) return -1;
    q /= idil;
  }
  return (q >= 0 && q < size) ? q : -1;
}

// cols[g][r][kd][kh][kw][c] for samples n0 .. n0 + nb - 1 (r counts from sample n0).
// A segment is the Cg channels one tap reads for one output position: TPS threads copy it
// (consecutive channels, coalesced), so the index arithmetic is done once per segment.
template <class T, class I, int TPS>
__global__ void im2col_kernel(const T* x, T* cols, ConvGeomT<I> g, I n0, I nb, I segments) {
  const I Cg = g.C / g.G;
  const int lane = threadIdx.x % TPS;
  const I per_block = blockDim.x / TPS;
  for (I s = blockIdx.x * per_block + threadIdx.x / TPS; s < segments; s += gridDim.x * per_block) {
    I t = s;
    const I kw = t % g.KW; t /= g.KW;
    const I kh = t % g.KH; t /= g.KH;
    const I kd = t % g.KD; t /= g.KD;
    const I ow = t % g.OW; t /= g.OW;
    const I oh = t % g.OH; t /= g.OH;
    const I od = t % g.OD; t /= g.OD;
    const I n = t % nb + n0;
    const I grp = t / nb;
    const I id = dilated_index<I>(od * g.sd + kd * g.dd - g.pd, g.idd, g.D);
    const I ih = dilated_index<I>(oh * g.sh + kh * g.dh - g.ph, g.idh, g.H);
    const I iw = dilated_index<I>(ow * g.sw + kw * g.dw - g.pw, g.idw, g.W);
    T* dst = cols + s * Cg;
    if (id >= 0 && ih >= 0 && iw >= 0) {
      const T* src = x + (((n * g.D + id) * g.H + ih) * g.W + iw) * g.C + grp * Cg;
      for (I c = lane; c < Cg; c += TPS) dst[c] = src[c];
    } else {
      for (I c = lane; c < Cg; c += TPS) dst[c] = T(0);
    }
  }
}

// Depthwise forward (C / G == 1): one thread per output element.
template <class T, class I>
__global__ void depthwise_forward_kernel(const T* x, const T* w, T* out, ConvGeomT<I> g,
                                         I total) {
  const I cog = g.Co / g.G;
  for (I e = blockIdx.x * I(blockDim.x) + threadIdx.x; e < total; e += I(blockDim.x) * gridDim.x) {
    I t = e;
    const I co = t % g.Co; t /= g.Co;
    const I ow = t % g.OW; t /= g.OW;
    const I oh = t % g.OH; t /= g.OH;
    const I od = t % g.OD;
    const I n = t / g.OD;
    const I ci = co / cog;  // the group's only input channel
    T acc = T(0);
    for (I kd = 0; kd < g.KD; ++kd) {
      const I id = dilated_index<I>(od * g.sd + kd * g.dd - g.pd, g.idd, g.D);
      if (id < 0) continue;
      for (I kh = 0; kh < g.KH; ++kh) {
        const I ih = dilated_index<I>(oh * g.sh + kh * g.dh - g.ph, g.idh, g.H);
        if (ih < 0) continue;
        for (I kw = 0; kw < g.KW; ++kw) {
          const I iw = dilated_index<I>(ow * g.sw + kw * g.dw - g.pw, g.idw, g.W);
          if (iw < 0) continue;
          acc += x[(((n * g.D + id) * g.H + ih) * g.W + iw) * g.C + ci] *
                 w[((kd * g.KH + kh) * g.KW + kw) * g.Co + co];
        }
      }
    }
    out[e] = acc;
  }
}

// Depthwise weight gradient: block (tap, block of output rows); each thread owns output
// channels co (consecutive across the warp, so gy reads coalesce), sums its rows, and adds
// the partial sum into dw[tap, co] (zeroed before).
template <class T, class I>
__global__ void depthwise_backward_weight_kernel(const T* x, const T* gy, T* dw, ConvGeomT<I> g,
                                                 I rows, I rows_per_block) {
  const I cog = g.Co / g.G;
  const I tap = blockIdx.x;
  const I kw = tap % g.KW, kh = (tap / g.KW) % g.KH, kd = tap / (g.KW * g.KH);
  const I r0 = I(blockIdx.y) * rows_per_block;
  const I r1 = min(rows, r0 + rows_per_block);
  for (I co = threadIdx.x; co < g.Co; co += blockDim.x) {
    const I ci = co / cog;
    T acc = T(0);
    for (I r = r0; r < r1; ++r) {
      I t = r;
      const I ow = t % g.OW; t /= g.OW;
      const I oh = t % g.OH; t /= g.OH;
      const I od = t % g.OD;
      const I n = t / g.OD;
      const I id = dilated_index<I>(od * g.sd + kd * g.dd - g.pd, g.idd, g.D);
      const I ih = dilated_index<I>(oh * g.sh + kh * g.dh - g.ph, g.idh, g.H);
      const I iw = dilated_index<I>(ow * g.sw + kw * g.dw - g.pw, g.idw, g.W);
      if (id < 0 || ih < 0 || iw < 0) continue;
      acc += x[(((n * g.D + id) * g.H + ih) * g.W + iw) * g.C + ci] * gy[r * g.Co + co];
    }
    atomicAdd(dw + tap * g.Co + co, acc);
  }
}

// True when every index of the call (input, output, workspace, weight, window positions)
// fits in int.
inline bool conv_fits_int(const ConvGeom& g, int64_t workspace_elems) {
  const int64_t lim = std::numeric_limits<int>::max() / 2;
  auto reach = [&](int64_t out, int64_t s, int64_t k, int64_t d, int64_t p) {
    return out * s + k * d + (p < 0 ? -p : p) < lim;
  };
  return g.N * g.D * g.H * g.W * g.C < lim && g.N * g.OD * g.OH * g.OW * g.Co < lim &&
         workspace_elems < lim && g.KD * g.KH * g.KW * g.C * g.Co < lim &&
         reach(g.OD, g.sd, g.KD, g.dd, g.pd) && reach(g.OH, g.sh, g.KH, g.dh, g.ph) &&
         reach(g.OW, g.sw, g.KW, g.dw, g.pw);
}

inline bool conv_is_pointwise(const ConvGeom& g) {
  return g.KD * g.KH * g.KW == 1 && g.sd == 1 && g.sh == 1 && g.sw == 1 && g.pd == 0 &&
         g.ph == 0 && g.pw == 0 && g.idd == 1 && g.idh == 1 && g.idw == 1 && g.OD == g.D &&
         g.OH == g.H && g.OW == g.W;
}

// GEMM sizes stay a tile below INT_MAX so that no tile index overflows.
inline int to_int(int64_t v, const char* what) {
  if (v > std::numeric_limits<int>::max() - 1024) {
    throw std::invalid_argument(std::string("conv: ") + what + " = " + std::to_string(v) +
                                " is too large for the CUDA GEMM");
  }
  return static_cast<int>(v);
}

// Samples per im2col block.
inline int64_t conv_batch_block(const ConvGeom& g, size_t itemsize) {
  const double approx = double(g.OD) * g.OH * g.OW * g.KD * g.KH * g.KW * g.C * itemsize;
  if (approx > double(int64_t(1) << 50)) {
    throw std::invalid_argument("conv: the im2col matrix of one sample would take " +
                                std::to_string(approx) + " bytes");
  }
  const int64_t per_sample = g.OD * g.OH * g.OW * g.KD * g.KH * g.KW * g.C * int64_t(itemsize);
  if (per_sample <= 0) return g.N;
  return std::max<int64_t>(1, std::min<int64_t>(g.N, workspace_limit() / per_sample));
}

template <class T, class I>
void launch_im2col_tps(const T* x, T* cols, const ConvGeomT<I>& g, I n0, I nb, I segments,
                       int64_t Cg) {
  // threads per segment: the power of two that covers Cg, at most a warp
  if (Cg >= 17) {
    im2col_kernel<T, I, 32>
        <<<grid_for(int64_t(segments) * 32), kThreads>>>(x, cols, g, n0, nb, segments);
  } else if (Cg >= 5) {
    im2col_kernel<T, I, 8>
        <<<grid_for(int64_t(segments) * 8), kThreads>>>(x, cols, g, n0, nb, segments);
  } else {
    im2col_kernel<T, I, 1><<<grid_for(segments), kThreads>>>(x, cols, g, n0, nb, segments);
  }
  check_launch("im2col_kernel");
}

template <class T>
void launch_im2col(const T* x, T* cols, const ConvGeom& g, int64_t n0, int64_t nb) {
  const int64_t total = nb * g.OD * g.OH * g.OW * g.KD * g.KH * g.KW * g.C;
  if (total <= 0) return;
  const int64_t Cg = g.C / g.G;
  const int64_t segments = total / Cg;
  if (conv_fits_int(g, total)) {
    launch_im2col_tps<T, int>(x, cols, g.as<int>(), int(n0), int(nb), int(segments), Cg);
  } else {
    launch_im2col_tps<T, int64_t>(x, cols, g, n0, nb, segments, Cg);
  }
}

template <class T>
void launch_depthwise_forward(const T* x, const T* w, T* out, const ConvGeom& g) {
  const int64_t total = g.N * g.OD * g.OH * g.OW * g.Co;
  if (conv_fits_int(g, 0)) {
    depthwise_forward_kernel<T, int><<<grid_for(total), kThreads>>>(x, w, out, g.as<int>(),
                                                                    int(total));
  } else {
    depthwise_forward_kernel<T, int64_t><<<grid_for(total), kThreads>>>(x, w, out, g, total);
  }
  check_launch("depthwise_forward_kernel");
}

template <class T>
void launch_depthwise_backward_weight(const T* x, const T* gy, T* dw, const ConvGeom& g) {
  const int64_t rows = g.N * g.OD * g.OH * g.OW;
  const int64_t taps = g.KD * g.KH * g.KW;
  // enough (tap, row block) pairs for ~8 blocks per SM, at least 64 rows per block
  const int64_t want_blocks = int64_t(sm_count()) * 8;
  const int64_t row_blocks_wanted = std::max<int64_t>(1, ceil_div<int64_t>(want_blocks, taps));
  const int64_t rows_per_block =
      std::max<int64_t>(64, ceil_div<int64_t>(rows, row_blocks_wanted));
  const int64_t row_blocks = ceil_div<int64_t>(rows, rows_per_block);
  if (taps > 2147483647 || row_blocks > 65535) {
    throw std::invalid_argument("conv: depthwise weight gradient grid too large");
  }
  const int threads =
      static_cast<int>(std::min<int64_t>(kThreads, ceil_div<int64_t>(g.Co, 32) * 32));
  dim3 grid(static_cast<unsigned>(taps), static_cast<unsigned>(row_blocks));
  if (conv_fits_int(g, 0)) {
    depthwise_backward_weight_kernel<T, int><<<grid, threads>>>(x, gy, dw, g.as<int>(), int(rows),
                                                                int(rows_per_block));
  } else {
    depthwise_backward_weight_kernel<T, int64_t><<<grid, threads>>>(x, gy, dw, g, rows,
                                                                    rows_per_block);
  }
  check_launch("depthwise_backward_weight_kernel");
}

template <class T>
void conv_forward(const T* x, const T* w, T* out, const ConvGeom& g) {
  const int64_t rows_per_sample = g.OD * g.OH * g.OW;
  const int64_t Cg = g.C / g.G, Cog = g.Co / g.G, Kvol = g.KD * g.KH * g.KW;
  const int64_t Kc = Kvol * Cg;
  const int64_t out_size = g.N * rows_per_sample * g.Co;
  if (out_size <= 0) return;
  if (Cg == 1) {
    launch_depthwise_forward<T>(x, w, out, g);
    return;
  }
  GemmParams<T> p{};
  p.N = to_int(Cog, "C_out / groups");
  p.K = to_int(Kc, "kernel volume * C_in / groups");
  p.B = w;
  p.ldb = g.Co;
  p.batch_b = Cog;
  p.ldc = g.Co;
  p.batch_c = Cog;
  if (conv_is_pointwise(g)) {
    p.M = to_int(g.N * rows_per_sample, "N * output positions");
    p.A = x;
    p.lda = g.C;
    p.batch_a = Cg;
    p.C = out;
    gemm<T>(p, g.G, false, false);
    return;
  }
  const int64_t nb_max = conv_batch_block(g, sizeof(T));
  Workspace<T> cols(nb_max * rows_per_sample * Kvol * g.C);
  for (int64_t n0 = 0; n0 < g.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, g.N - n0);
    launch_im2col<T>(x, cols.get(), g, n0, nb);
    p.M = to_int(nb * rows_per_sample, "batch block * output positions");
    p.A = cols.get();
    p.lda = Kc;
    p.batch_a = nb * rows_per_sample * Kc;
    p.C = out + n0 * rows_per_sample * g.Co;
    gemm<T>(p, g.G, false, false);
  }
}

template <class T>
void conv_backward_weight(const T* x, const T* gy, T* dw, const ConvGeom& g) {
  const int64_t rows_per_sample = g.OD * g.OH * g.OW;
  const int64_t Cg = g.C / g.G, Cog = g.Co / g.G, Kvol = g.KD * g.KH * g.KW;
  const int64_t Kc = Kvol * Cg;
  launch_fill<T>(dw, T(0), Kc * g.Co);
  if (g.N * rows_per_sample <= 0 || Kc * g.Co <= 0) return;
  if (Cg == 1) {
    launch_depthwise_backward_weight<T>(x, gy, dw, g);
    return;
  }
  GemmParams<T> p{};
  p.M = to_int(Kc, "kernel volume * C_in / groups");
  p.N = to_int(Cog, "C_out / groups");
  p.ldb = g.Co;
  p.batch_b = Cog;
  p.C = dw;
  p.ldc = g.Co;
  p.batch_c = Cog;
  if (conv_is_pointwise(g)) {
    p.K = to_int(g.N * rows_per_sample, "N * output positions");
    p.A = x;
    p.lda = g.C;
    p.batch_a = Cg;
    p.B = gy;
    gemm<T>(p, g.G, true, true);
    return;
  }
  const int64_t nb_max = conv_batch_block(g, sizeof(T));
  Workspace<T> cols(nb_max * rows_per_sample * Kvol * g.C);
  for (int64_t n0 = 0; n0 < g.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, g.N - n0);
    launch_im2col<T>(x, cols.get(), g, n0, nb);
    p.K = to_int(nb * rows_per_sample, "batch block * output positions");
    p.A = cols.get();
    p.lda = Kc;
    p.batch_a = nb * rows_per_sample * Kc;
    p.B = gy + n0 * rows_per_sample * g.Co;
    gemm<T>(p, g.G, true, true);
  }
}

}  // namespace cuda
}  // namespace needle
