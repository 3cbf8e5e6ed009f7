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

#include "common/geometry.h"
#include "cuda/common.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/gemm.cuh"

namespace needle {
namespace cuda {

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
  const I Cg = g.Cg();
  const int lane = threadIdx.x % TPS;
  const I per_block = blockDim.x / TPS;
  for (I s = blockIdx.x * per_block + threadIdx.x / TPS; s < segments; s += gridDim.x * per_block) {
    I t = s;
    const I kw = t % g.KW; t /= g.KW;
    const I kh = t % g.KH; t /= g.KH;
    const I kd = t % g.KD; t /= g.KD;
    const I ow = t % g.Wo; t /= g.Wo;
    const I oh = t % g.Ho; t /= g.Ho;
    const I od = t % g.Do; t /= g.Do;
    const I n = t % nb + n0;
    const I grp = t / nb;
    const I id = dilated_index<I>(od * g.sd + kd * g.dd - g.pd, g.idd, g.Di);
    const I ih = dilated_index<I>(oh * g.sh + kh * g.dh - g.ph, g.idh, g.Hi);
    const I iw = dilated_index<I>(ow * g.sw + kw * g.dw - g.pw, g.idw, g.Wi);
    T* dst = cols + s * Cg;
    if (id >= 0 && ih >= 0 && iw >= 0) {
      const T* src = x + (((n * g.Di + id) * g.Hi + ih) * g.Wi + iw) * g.Cin + grp * Cg;
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
  const I cog = g.Coutg();
  for (I e = blockIdx.x * I(blockDim.x) + threadIdx.x; e < total; e += I(blockDim.x) * gridDim.x) {
    I t = e;
    const I co = t % g.Cout; t /= g.Cout;
    const I ow = t % g.Wo; t /= g.Wo;
    const I oh = t % g.Ho; t /= g.Ho;
    const I od = t % g.Do;
    const I n = t / g.Do;
    const I ci = co / cog;  // the group's only input channel
    T acc = T(0);
    for (I kd = 0; kd < g.KD; ++kd) {
      const I id = dilated_index<I>(od * g.sd + kd * g.dd - g.pd, g.idd, g.Di);
      if (id < 0) continue;
      for (I kh = 0; kh < g.KH; ++kh) {
        const I ih = dilated_index<I>(oh * g.sh + kh * g.dh - g.ph, g.idh, g.Hi);
        if (ih < 0) continue;
        for (I kw = 0; kw < g.KW; ++kw) {
          const I iw = dilated_index<I>(ow * g.sw + kw * g.dw - g.pw, g.idw, g.Wi);
          if (iw < 0) continue;
          acc += x[(((n * g.Di + id) * g.Hi + ih) * g.Wi + iw) * g.Cin + ci] *
                 w[((kd * g.KH + kh) * g.KW + kw) * g.Cout + co];
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
  const I cog = g.Coutg();
  const I tap = blockIdx.x;
  const I kw = tap % g.KW, kh = (tap / g.KW) % g.KH, kd = tap / (g.KW * g.KH);
  const I r0 = I(blockIdx.y) * rows_per_block;
  const I r1 = min(rows, r0 + rows_per_block);
  for (I co = threadIdx.x; co < g.Cout; co += blockDim.x) {
    const I ci = co / cog;
    T acc = T(0);
    for (I r = r0; r < r1; ++r) {
      I t = r;
      const I ow = t % g.Wo; t /= g.Wo;
      const I oh = t % g.Ho; t /= g.Ho;
      const I od = t % g.Do;
      const I n = t / g.Do;
      const I id = dilated_index<I>(od * g.sd + kd * g.dd - g.pd, g.idd, g.Di);
      const I ih = dilated_index<I>(oh * g.sh + kh * g.dh - g.ph, g.idh, g.Hi);
      const I iw = dilated_index<I>(ow * g.sw + kw * g.dw - g.pw, g.idw, g.Wi);
      if (id < 0 || ih < 0 || iw < 0) continue;
      acc += x[(((n * g.Di + id) * g.Hi + ih) * g.Wi + iw) * g.Cin + ci] * gy[r * g.Cout + co];
    }
    atomicAdd(dw + tap * g.Cout + co, acc);
  }
}

// True when every index of the call (input, output, workspace, weight, window positions)
// fits in int.
inline bool conv_fits_int(const ConvGeom& g, int64_t workspace_elems) {
  const int64_t lim = std::numeric_limits<int>::max() / 2;
  auto reach = [&](int64_t out, int64_t s, int64_t k, int64_t d, int64_t p) {
    return out * s + k * d + (p < 0 ? -p : p) < lim;
  };
  return g.N * g.Di * g.Hi * g.Wi * g.Cin < lim && g.N * g.Do * g.Ho * g.Wo * g.Cout < lim &&
         workspace_elems < lim && g.KD * g.KH * g.KW * g.Cin * g.Cout < lim &&
         reach(g.Do, g.sd, g.KD, g.dd, g.pd) && reach(g.Ho, g.sh, g.KH, g.dh, g.ph) &&
         reach(g.Wo, g.sw, g.KW, g.dw, g.pw);
}

inline bool conv_is_pointwise(const ConvGeom& g) {
  return g.KD * g.KH * g.KW == 1 && g.sd == 1 && g.sh == 1 && g.sw == 1 && g.pd == 0 &&
         g.ph == 0 && g.pw == 0 && g.idd == 1 && g.idh == 1 && g.idw == 1 && g.Do == g.Di &&
         g.Ho == g.Hi && g.Wo == g.Wi;
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
  const double approx = double(g.Do) * g.Ho * g.Wo * g.KD * g.KH * g.KW * g.Cin * itemsize;
  if (approx > double(int64_t(1) << 50)) {
    throw std::invalid_argument("conv: the im2col matrix of one sample would take " +
                                std::to_string(approx) + " bytes");
  }
  const int64_t per_sample = g.Do * g.Ho * g.Wo * g.KD * g.KH * g.KW * g.Cin * int64_t(itemsize);
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
  const int64_t total = nb * g.Do * g.Ho * g.Wo * g.KD * g.KH * g.KW * g.Cin;
  if (total <= 0) return;
  const int64_t Cg = g.Cg();
  const int64_t segments = total / Cg;
  if (conv_fits_int(g, total)) {
    launch_im2col_tps<T, int>(x, cols, g.as<int>(), int(n0), int(nb), int(segments), Cg);
  } else {
    launch_im2col_tps<T, int64_t>(x, cols, g, n0, nb, segments, Cg);
  }
}

template <class T>
void launch_depthwise_forward(const T* x, const T* w, T* out, const ConvGeom& g) {
  const int64_t total = g.N * g.Do * g.Ho * g.Wo * g.Cout;
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
  const int64_t rows = g.N * g.Do * g.Ho * g.Wo;
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
      static_cast<int>(std::min<int64_t>(kThreads, ceil_div<int64_t>(g.Cout, 32) * 32));
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

// The GEMM operand A of every group for samples [n0, n0 + nb): f(A, lda, batch_a, n0, nb)
// once per batch block, A being the im2col matrix of the block (one row-major matrix per
// group), or, for a pointwise conv, the input itself in one call (no workspace).
template <class T, class F>
void for_each_im2col_block(const T* x, const ConvGeom& g, F&& f) {
  const int64_t rows_per_sample = g.Do * g.Ho * g.Wo, Kc = g.K() * g.Cg();
  if (conv_is_pointwise(g)) {
    f(x, g.Cin, g.Cg(), int64_t(0), g.N);
    return;
  }
  const int64_t nb_max = conv_batch_block(g, sizeof(T));
  Workspace<T> cols(nb_max * rows_per_sample * g.K() * g.Cin);
  for (int64_t n0 = 0; n0 < g.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, g.N - n0);
    launch_im2col<T>(x, cols.get(), g, n0, nb);
    f(cols.get(), Kc, nb * rows_per_sample * Kc, n0, nb);
  }
}

template <class T>
void conv_forward(const T* x, const T* w, T* out, const ConvGeom& g) {
  const int64_t rows_per_sample = g.Do * g.Ho * g.Wo;
  if (g.N * rows_per_sample * g.Cout <= 0) return;
  if (g.Cg() == 1) {
    launch_depthwise_forward<T>(x, w, out, g);
    return;
  }
  // out_g (rows x Cout/G) = A_g (rows x Kc) * w_g (Kc x Cout/G), per group
  GemmParams<T> p{};
  p.N = to_int(g.Coutg(), "C_out / groups");
  p.K = to_int(g.K() * g.Cg(), "kernel volume * C_in / groups");
  p.B = w;
  p.ldb = g.Cout;
  p.batch_b = g.Coutg();
  p.ldc = g.Cout;
  p.batch_c = g.Coutg();
  for_each_im2col_block<T>(x, g, [&](const T* a, int64_t lda, int64_t batch_a, int64_t n0,
                                     int64_t nb) {
    p.M = to_int(nb * rows_per_sample, "batch block * output positions");
    p.A = a;
    p.lda = lda;
    p.batch_a = batch_a;
    p.C = out + n0 * rows_per_sample * g.Cout;
    gemm<T>(p, g.G, false, false);
  });
}

template <class T>
void conv_backward_weight(const T* x, const T* gy, T* dw, const ConvGeom& g) {
  const int64_t rows_per_sample = g.Do * g.Ho * g.Wo, Kc = g.K() * g.Cg();
  launch_fill<T>(dw, T(0), Kc * g.Cout);
  if (g.N * rows_per_sample <= 0 || Kc * g.Cout <= 0) return;
  if (g.Cg() == 1) {
    launch_depthwise_backward_weight<T>(x, gy, dw, g);
    return;
  }
  // dw_g (Kc x Cout/G) += A_g^T (Kc x rows) * gy_g (rows x Cout/G), per group and block
  GemmParams<T> p{};
  p.M = to_int(Kc, "kernel volume * C_in / groups");
  p.N = to_int(g.Coutg(), "C_out / groups");
  p.ldb = g.Cout;
  p.batch_b = g.Coutg();
  p.C = dw;
  p.ldc = g.Cout;
  p.batch_c = g.Coutg();
  for_each_im2col_block<T>(x, g, [&](const T* a, int64_t lda, int64_t batch_a, int64_t n0,
                                     int64_t nb) {
    p.K = to_int(nb * rows_per_sample, "batch block * output positions");
    p.A = a;
    p.lda = lda;
    p.batch_a = batch_a;
    p.B = gy + n0 * rows_per_sample * g.Cout;
    gemm<T>(p, g.G, true, true);
  });
}

}  // namespace cuda
}  // namespace needle
