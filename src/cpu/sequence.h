// sequence.h: the kernels of the recurrent layers (needle.ops.ops_sequence) and of the
// embedding lookup, forward and backward together:
//   lstm_step_forward / lstm_step_backward   the gate arithmetic of one LSTM step (i, f, g, o);
//   gru_step_forward / gru_step_backward     one GRU step (r, z, n, PyTorch's formula for n);
//   rnn_step_forward / rnn_step_backward     one Elman step (tanh or relu);
//   gather_rows / scatter_add_rows           rows of a table at indices, and the adjoint.
// Each step kernel is ONE pass over the (B, H) state of one time step: the matmuls (X W_ih for
// all steps, h W_hh per step) run before it, so what would be a dozen elementwise passes per
// step is one.  The arithmetic is needle.backend_numpy's reference, the specification; the
// pointers given are already those of step t (the binding offsets them; c_prev / h_prev are
// the initial state at t = 0).  Threads take blocks of batch rows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common.h"
#include "elementwise.h"

namespace needle {
namespace cpu {

// σ and tanh from fast_exp (elementwise.h), so that the loops over the hidden units
// vectorize: tanh(x) = 1 − 2 / (e^{2x} + 1), exact at ±inf, NaN in NaN out; in float32 its
// absolute error is about 1e-7 (the subtraction near 0), like the rounding of tanh itself.
template <class T>
inline T seq_sigmoid(T x) {
  return T(1) / (T(1) + fast_exp(-x));
}

template <class T>
inline T seq_tanh(T x) {
  return T(1) - T(2) / (fast_exp(T(2) * x) + T(1));
}

/// Rows per thread below which a step runs on one thread (a step is tiny at small B·H).
inline std::int64_t seq_min_rows(std::int64_t width) {
  return std::max<std::int64_t>(2, (1 << 14) / std::max<std::int64_t>(width, 1));
}

/// a = xw + hw (B, 4H); i, f, o = σ(a_i, a_f, a_o), g = tanh(a_g);
/// c = f·c_prev + i·g, h = o·tanh(c).  act (B, 4H) keeps i, f, g, o for the backward pass.
template <class T>
void lstm_step_forward(const T* xw, const T* hw, const T* c_prev, T* act, T* c, T* h,
                       std::int64_t batch, std::int64_t hidden) {
  const std::int64_t G = 4 * hidden;
  parallel_items(batch, seq_min_rows(G), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t b = lo; b < hi; ++b) {
      const T* x = xw + b * G;
      const T* r = hw + b * G;
      T* a = act + b * G;
      const T* cp = c_prev + b * hidden;
      T* cb = c + b * hidden;
      T* hb = h + b * hidden;
#pragma omp simd
      for (std::int64_t j = 0; j < hidden; ++j) {
        const T i = seq_sigmoid(x[j] + r[j]);
        const T f = seq_sigmoid(x[hidden + j] + r[hidden + j]);
        const T g = seq_tanh(x[2 * hidden + j] + r[2 * hidden + j]);
        const T o = seq_sigmoid(x[3 * hidden + j] + r[3 * hidden + j]);
        const T cn = f * cp[j] + i * g;
        a[j] = i;
        a[hidden + j] = f;
        a[2 * hidden + j] = g;
        a[3 * hidden + j] = o;
        cb[j] = cn;
        hb[j] = o * seq_tanh(cn);
      }
    }
  });
}

/// dh = d_out + dh_mat; dc' = dc + dh·o·(1 − tanh²c); dgates = ∂a for the blocks i, f, g, o;
/// dc <- dc'·f (∂c_prev).  dgates (B, 4H) is written, dc (B, H) read and written.
template <class T>
void lstm_step_backward(const T* act, const T* c, const T* c_prev, const T* d_out,
                        const T* dh_mat, T* dc, T* dgates, std::int64_t batch,
                        std::int64_t hidden) {
  const std::int64_t G = 4 * hidden;
  parallel_items(batch, seq_min_rows(G), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t b = lo; b < hi; ++b) {
      const T* a = act + b * G;
      T* d = dgates + b * G;
      const std::int64_t s = b * hidden;
#pragma omp simd
      for (std::int64_t j = 0; j < hidden; ++j) {
        const T i = a[j], f = a[hidden + j], g = a[2 * hidden + j], o = a[3 * hidden + j];
        const T tc = seq_tanh(c[s + j]);
        const T dh = d_out[s + j] + dh_mat[s + j];
        const T dct = dc[s + j] + dh * o * (T(1) - tc * tc);
        d[j] = dct * g * i * (T(1) - i);
        d[hidden + j] = dct * c_prev[s + j] * f * (T(1) - f);
        d[2 * hidden + j] = dct * i * (T(1) - g * g);
        d[3 * hidden + j] = dh * tc * o * (T(1) - o);
        dc[s + j] = dct * f;
      }
    }
  });
}

/// With b = hw + bhh: r = σ(x_r + b_r), z = σ(x_z + b_z), n = tanh(x_n + r·b_n),
/// h = n + z·(h_prev − n).  act (B, 4H) keeps r, z, n, b_n.
template <class T>
void gru_step_forward(const T* xw, const T* hw, const T* bhh, const T* h_prev, T* act, T* h,
                      std::int64_t batch, std::int64_t hidden) {
  const std::int64_t G = 3 * hidden;
  parallel_items(batch, seq_min_rows(G), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t b = lo; b < hi; ++b) {
      const T* x = xw + b * G;
      const T* w = hw + b * G;
      T* a = act + b * 4 * hidden;
      const T* hp = h_prev + b * hidden;
      T* hb = h + b * hidden;
#pragma omp simd
      for (std::int64_t j = 0; j < hidden; ++j) {
        const T r = seq_sigmoid(x[j] + w[j] + bhh[j]);
        const T z = seq_sigmoid(x[hidden + j] + w[hidden + j] + bhh[hidden + j]);
        const T bn = w[2 * hidden + j] + bhh[2 * hidden + j];
        const T n = seq_tanh(x[2 * hidden + j] + r * bn);
        a[j] = r;
        a[hidden + j] = z;
        a[2 * hidden + j] = n;
        a[3 * hidden + j] = bn;
        hb[j] = n + z * (hp[j] - n);
      }
    }
  });
}

/// dh = d_out + dh_mat + dh_carry; dn = dh·(1 − z)·(1 − n²), dr = dn·b_n·r·(1 − r),
/// dz = dh·(h_prev − n)·z·(1 − z).  dgx = (dr, dz, dn), dgh = (dr, dz, dn·r);
/// dh_carry <- dh·z (the direct path to h_prev).
template <class T>
void gru_step_backward(const T* act, const T* h_prev, const T* d_out, const T* dh_mat,
                       T* dh_carry, T* dgx, T* dgh, std::int64_t batch, std::int64_t hidden) {
  const std::int64_t G = 3 * hidden;
  parallel_items(batch, seq_min_rows(G), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t b = lo; b < hi; ++b) {
      const T* a = act + b * 4 * hidden;
      T* gx = dgx + b * G;
      T* gh = dgh + b * G;
      const std::int64_t s = b * hidden;
#pragma omp simd
      for (std::int64_t j = 0; j < hidden; ++j) {
        const T r = a[j], z = a[hidden + j], n = a[2 * hidden + j], bn = a[3 * hidden + j];
        const T dh = d_out[s + j] + dh_mat[s + j] + dh_carry[s + j];
        const T dn = dh * (T(1) - z) * (T(1) - n * n);
        const T dr = dn * bn * r * (T(1) - r);
        const T dz = dh * (h_prev[s + j] - n) * z * (T(1) - z);
        gx[j] = gh[j] = dr;
        gx[hidden + j] = gh[hidden + j] = dz;
        gx[2 * hidden + j] = dn;
        gh[2 * hidden + j] = dn * r;
        dh_carry[s + j] = dh * z;
      }
    }
  });
}

/// h = relu(xw + hw) or tanh(xw + hw) over (B, H).
template <class T>
void rnn_step_forward(const T* xw, const T* hw, T* h, std::int64_t batch, std::int64_t hidden,
                      bool relu) {
  parallel_range(batch * hidden, 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
#pragma omp simd
    for (std::int64_t k = lo; k < hi; ++k) {
      const T a = xw[k] + hw[k];
      h[k] = relu ? (a > T(0) ? a : T(0)) : seq_tanh(a);
    }
  });
}

/// dgates = (d_out + dh_mat)·act'(h), act' from the output: 1 − h² (tanh) or h > 0 (relu).
template <class T>
void rnn_step_backward(const T* h, const T* d_out, const T* dh_mat, T* dgates,
                       std::int64_t batch, std::int64_t hidden, bool relu) {
  parallel_range(batch * hidden, 1 << 15, [&](std::int64_t lo, std::int64_t hi) {
#pragma omp simd
    for (std::int64_t k = lo; k < hi; ++k) {
      const T deriv = relu ? T(h[k] > T(0)) : T(1) - h[k] * h[k];
      dgates[k] = (d_out[k] + dh_mat[k]) * deriv;
    }
  });
}

/// out (N, dim) <- table (rows, dim) rows at idx (N); the indices were checked.
template <class T>
void gather_rows(const T* table, const T* idx, T* out, std::int64_t n, std::int64_t dim) {
  parallel_items(n, seq_min_rows(dim), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t k = lo; k < hi; ++k) {
      const T* src = table + static_cast<std::int64_t>(idx[k]) * dim;
      T* dst = out + k * dim;
      for (std::int64_t d = 0; d < dim; ++d) dst[d] = src[d];
    }
  });
}

/// out (rows, dim) <- zeros, then grad[k] (N, dim) added to row idx[k] (repeats add up).
/// Threads own column blocks, so two rows with the same index never race.
template <class T>
void scatter_add_rows(const T* grad, const T* idx, T* out, std::int64_t n, std::int64_t rows,
                      std::int64_t dim) {
  for (std::int64_t k = 0; k < rows * dim; ++k) out[k] = T(0);
  const std::int64_t min_cols =
      std::max<std::int64_t>(16, (1 << 14) / std::max<std::int64_t>(n, 1));
  parallel_items(dim, min_cols, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t k = 0; k < n; ++k) {
      const T* src = grad + k * dim;
      T* dst = out + static_cast<std::int64_t>(idx[k]) * dim;
      for (std::int64_t d = lo; d < hi; ++d) dst[d] += src[d];
    }
  });
}

}  // namespace cpu
}  // namespace needle
