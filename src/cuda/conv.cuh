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
// read the input directly (no workspace). Depthwise forward (one input channel per group)
// runs a direct kernel instead of GEMMs of width 1.
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

struct ConvGeom {
  int64_t N, D, H, W, C, KD, KH, KW, Co, OD, OH, OW;
  int64_t sd, sh, sw, pd, ph, pw, dd, dh, dw, idd, idh, idw, G;
};

// Upper bound on the im2col workspace of one call (256 MiB by default; settable from
// Python with conv_workspace_bytes(), which the tests use to force batch blocking).
inline int64_t& workspace_limit() {
  static int64_t bytes = int64_t(256) << 20;
  return bytes;
}

// Position q (in the input-dilated, padded frame) -> input index, or -1 when it is padding
// or a hole between dilated input elements.
__device__ __forceinline__ int64_t dilated_index(int64_t q, int64_t idil, int64_t size) {
  if (q < 0 || q % idil != 0) return -1;
  q /= idil;
  return q < size ? q : -1;
}

// cols[g][r][kd][kh][kw][c] for samples n0 .. n0 + nb - 1 (r counts from sample n0).
template <class T>
__global__ void im2col_kernel(const T* x, T* cols, ConvGeom g, int64_t n0, int64_t nb) {
  const int64_t Cg = g.C / g.G;
  const int64_t total = g.G * nb * g.OD * g.OH * g.OW * g.KD * g.KH * g.KW * Cg;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(blockDim.x) * gridDim.x) {
    int64_t t = e;
    const int64_t c = t % Cg; t /= Cg;
    const int64_t kw = t % g.KW; t /= g.KW;
    const int64_t kh = t % g.KH; t /= g.KH;
    const int64_t kd = t % g.KD; t /= g.KD;
    const int64_t ow = t % g.OW; t /= g.OW;
    const int64_t oh = t % g.OH; t /= g.OH;
    const int64_t od = t % g.OD; t /= g.OD;
    const int64_t n = t % nb + n0;
    const int64_t grp = t / nb;
    const int64_t id = dilated_index(od * g.sd + kd * g.dd - g.pd, g.idd, g.D);
    const int64_t ih = dilated_index(oh * g.sh + kh * g.dh - g.ph, g.idh, g.H);
    const int64_t iw = dilated_index(ow * g.sw + kw * g.dw - g.pw, g.idw, g.W);
    T v = T(0);
    if (id >= 0 && ih >= 0 && iw >= 0) {
      v = x[(((n * g.D + id) * g.H + ih) * g.W + iw) * g.C + grp * Cg + c];
    }
    cols[e] = v;
  }
}

// Depthwise forward (C / G == 1): one thread per output element.
template <class T>
__global__ void depthwise_forward_kernel(const T* x, const T* w, T* out, ConvGeom g) {
  const int64_t cog = g.Co / g.G;
  const int64_t total = g.N * g.OD * g.OH * g.OW * g.Co;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(blockDim.x) * gridDim.x) {
    int64_t t = e;
    const int64_t co = t % g.Co; t /= g.Co;
    const int64_t ow = t % g.OW; t /= g.OW;
    const int64_t oh = t % g.OH; t /= g.OH;
    const int64_t od = t % g.OD;
    const int64_t n = t / g.OD;
    const int64_t ci = co / cog;  // the group's only input channel
    T acc = T(0);
    for (int64_t kd = 0; kd < g.KD; ++kd) {
      const int64_t id = dilated_index(od * g.sd + kd * g.dd - g.pd, g.idd, g.D);
      if (id < 0) continue;
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t ih = dilated_index(oh * g.sh + kh * g.dh - g.ph, g.idh, g.H);
        if (ih < 0) continue;
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t iw = dilated_index(ow * g.sw + kw * g.dw - g.pw, g.idw, g.W);
          if (iw < 0) continue;
          acc += x[(((n * g.D + id) * g.H + ih) * g.W + iw) * g.C + ci] *
                 w[((kd * g.KH + kh) * g.KW + kw) * g.Co + co];
        }
      }
    }
    out[e] = acc;
  }
}

inline bool conv_is_pointwise(const ConvGeom& g) {
  return g.KD * g.KH * g.KW == 1 && g.sd == 1 && g.sh == 1 && g.sw == 1 && g.pd == 0 &&
         g.ph == 0 && g.pw == 0 && g.idd == 1 && g.idh == 1 && g.idw == 1 && g.OD == g.D &&
         g.OH == g.H && g.OW == g.W;
}

inline int to_int(int64_t v, const char* what) {
  if (v > std::numeric_limits<int>::max()) {
    throw std::invalid_argument(std::string("conv: ") + what + " = " + std::to_string(v) +
                                " is too large for the CUDA GEMM");
  }
  return static_cast<int>(v);
}

// Samples per im2col block.
inline int64_t conv_batch_block(const ConvGeom& g, size_t itemsize) {
  const int64_t per_sample = g.OD * g.OH * g.OW * g.KD * g.KH * g.KW * g.C * int64_t(itemsize);
  if (per_sample <= 0) return g.N;
  return std::max<int64_t>(1, std::min<int64_t>(g.N, workspace_limit() / per_sample));
}

template <class T>
void launch_im2col(const T* x, T* cols, const ConvGeom& g, int64_t n0, int64_t nb) {
  const int64_t total = nb * g.OD * g.OH * g.OW * g.KD * g.KH * g.KW * g.C;
  if (total <= 0) return;
  im2col_kernel<T><<<grid_for(total), kThreads>>>(x, cols, g, n0, nb);
  check_launch("im2col_kernel");
}

template <class T>
void conv_forward(const T* x, const T* w, T* out, const ConvGeom& g) {
  const int64_t rows_per_sample = g.OD * g.OH * g.OW;
  const int64_t Cg = g.C / g.G, Cog = g.Co / g.G, Kvol = g.KD * g.KH * g.KW;
  const int64_t Kc = Kvol * Cg;
  const int64_t out_size = g.N * rows_per_sample * g.Co;
  if (out_size <= 0) return;
  if (Cg == 1) {
    depthwise_forward_kernel<T><<<grid_for(out_size), kThreads>>>(x, w, out, g);
    check_launch("depthwise_forward_kernel");
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
