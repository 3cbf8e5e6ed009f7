// conv.h: convolution forward and weight gradient over channels-last buffers, in the 3-D form
// of the backend's conv geometry (src/common/geometry.h).  The kernels live in src/cpu/conv/:
//   taps.h       what they all build on: tap positions, output positions, per-pixel tap
//                tables, per-thread scratch, the sum of per-thread partials
//   depthwise.h  depthwise (Cg == 1): direct, memory-bound kernels, no GEMM
//   direct.h     C_out per group of one SIMD vector or slices of two: direct kernels over a
//                per-thread zero-padded image (and grouped weight gradients over tap tables)
//   scatter.h    input dilation > 1: GEMM of the input pixels, then col2im scatter-add
//   im2col.h     everything else: im2col + the one GEMM, per group
// This file only picks, in the order below (the first that fits):
//   * depthwise (Cg == 1): without a channel multiplier the forward works per output line
//     (depthwise_forward_lines) and a 3x3 weight gradient keeps all 18 partial vectors of a
//     line in registers (depthwise_backward_weight_lines); other shapes use the per-pixel
//     tap-table kernels.
//   * input dilation > 1 (the input gradient of a strided conv, built by the op layer):
//     conv_forward_scatter; the taps that would read the holes are never multiplied.
//   * C_out per group of one SIMD vector, or a multiple of two where direct_slices() says so
//     (the stem, 16/32-channel layers, grouped layers; with AVX2 also wider layers): the
//     padded-image kernels, taps at fixed offsets, outputs or partials in vector registers.
//   * otherwise forward = im2col + GEMM per group, im2col rows packed straight into the
//     GEMM's A panels (workspace: the GEMM's packing buffers only, ~3.5 MiB in float32), and
//     weight gradient = X^T * grad per group over im2col blocks of kIm2colBlockBytes per thread.
// Kernels below kMinParallelMacs multiply-adds stay on the calling thread.
#pragma once

#include "common/geometry.h"
#include "cpu/common.h"
#include "cpu/conv/depthwise.h"
#include "cpu/conv/direct.h"
#include "cpu/conv/im2col.h"
#include "cpu/conv/scatter.h"
#include "cpu/conv/taps.h"

namespace needle {
namespace cpu {

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
  im2col_forward(g, x, w, out);
}

template <class T>
void conv_backward_weight(const ConvGeom& g, const T* x, const T* grad, T* dw) {
  const std::int64_t Coutg = g.Coutg(), Kdim = g.K() * g.Cg(), M = g.rows();
  if (M == 0 || Kdim == 0) {
    for (std::int64_t i = 0; i < Kdim * g.Cout; ++i) dw[i] = T(0);
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
  im2col_backward_weight(g, x, grad, dw);
}

}  // namespace cpu
}  // namespace needle
