// sequence.cuh: the recurrent step kernels and the row gather / scatter-add (see
// src/cpu/sequence.h for the arithmetic; needle.backend_numpy is its specification).  One
// thread per (batch row, hidden unit) of one time step; the pointers are those of step t.
#pragma once

#include "cuda/common.cuh"
#include "cuda/elementwise.cuh"

namespace needle {
namespace cuda {

template <class T>
__device__ __forceinline__ T seq_sigmoid(T x) {
  return T(1) / (T(1) + exp(-x));
}

template <class T>
__global__ void lstm_step_forward_kernel(const T* xw, const T* hw, const T* c_prev, T* act,
                                         T* c, T* h, int64_t batch, int64_t hidden) {
  NEEDLE_GRID_STRIDE(k, batch * hidden) {
    const int64_t b = k / hidden, j = k % hidden, G = 4 * hidden;
    const T* x = xw + b * G;
    const T* r = hw + b * G;
    T* a = act + b * G;
    const T i = seq_sigmoid(x[j] + r[j]);
    const T f = seq_sigmoid(x[hidden + j] + r[hidden + j]);
    const T g = tanh(x[2 * hidden + j] + r[2 * hidden + j]);
    const T o = seq_sigmoid(x[3 * hidden + j] + r[3 * hidden + j]);
    const T cn = f * c_prev[k] + i * g;
    a[j] = i;
    a[hidden + j] = f;
    a[2 * hidden + j] = g;
    a[3 * hidden + j] = o;
    c[k] = cn;
    h[k] = o * tanh(cn);
  }
}

template <class T>
__global__ void lstm_step_backward_kernel(const T* act, const T* c, const T* c_prev,
                                          const T* d_out, const T* dh_mat, T* dc, T* dgates,
                                          int64_t batch, int64_t hidden) {
  NEEDLE_GRID_STRIDE(k, batch * hidden) {
    const int64_t b = k / hidden, j = k % hidden, G = 4 * hidden;
    const T* a = act + b * G;
    T* d = dgates + b * G;
    const T i = a[j], f = a[hidden + j], g = a[2 * hidden + j], o = a[3 * hidden + j];
    const T tc = tanh(c[k]);
    const T dh = d_out[k] + dh_mat[k];
    const T dct = dc[k] + dh * o * (T(1) - tc * tc);
    d[j] = dct * g * i * (T(1) - i);
    d[hidden + j] = dct * c_prev[k] * f * (T(1) - f);
    d[2 * hidden + j] = dct * i * (T(1) - g * g);
    d[3 * hidden + j] = dh * tc * o * (T(1) - o);
    dc[k] = dct * f;
  }
}

template <class T>
__global__ void gru_step_forward_kernel(const T* xw, const T* hw, const T* bhh, const T* h_prev,
                                        T* act, T* h, int64_t batch, int64_t hidden) {
  NEEDLE_GRID_STRIDE(k, batch * hidden) {
    const int64_t b = k / hidden, j = k % hidden, G = 3 * hidden;
    const T* x = xw + b * G;
    const T* w = hw + b * G;
    T* a = act + b * 4 * hidden;
    const T r = seq_sigmoid(x[j] + w[j] + bhh[j]);
    const T z = seq_sigmoid(x[hidden + j] + w[hidden + j] + bhh[hidden + j]);
    const T bn = w[2 * hidden + j] + bhh[2 * hidden + j];
    const T n = tanh(x[2 * hidden + j] + r * bn);
    a[j] = r;
    a[hidden + j] = z;
    a[2 * hidden + j] = n;
    a[3 * hidden + j] = bn;
    h[k] = n + z * (h_prev[k] - n);
  }
}

template <class T>
__global__ void gru_step_backward_kernel(const T* act, const T* h_prev, const T* d_out,
                                         const T* dh_mat, T* dh_carry, T* dgx, T* dgh,
                                         int64_t batch, int64_t hidden) {
  NEEDLE_GRID_STRIDE(k, batch * hidden) {
    const int64_t b = k / hidden, j = k % hidden, G = 3 * hidden;
    const T* a = act + b * 4 * hidden;
    T* gx = dgx + b * G;
    T* gh = dgh + b * G;
    const T r = a[j], z = a[hidden + j], n = a[2 * hidden + j], bn = a[3 * hidden + j];
    const T dh = d_out[k] + dh_mat[k] + dh_carry[k];
    const T dn = dh * (T(1) - z) * (T(1) - n * n);
    const T dr = dn * bn * r * (T(1) - r);
    const T dz = dh * (h_prev[k] - n) * z * (T(1) - z);
    gx[j] = dr;
    gh[j] = dr;
    gx[hidden + j] = dz;
    gh[hidden + j] = dz;
    gx[2 * hidden + j] = dn;
    gh[2 * hidden + j] = dn * r;
    dh_carry[k] = dh * z;
  }
}

template <class T>
__global__ void rnn_step_forward_kernel(const T* xw, const T* hw, T* h, int64_t n, bool relu) {
  NEEDLE_GRID_STRIDE(k, n) {
    const T a = xw[k] + hw[k];
    h[k] = relu ? (a > T(0) ? a : T(0)) : tanh(a);
  }
}

template <class T>
__global__ void rnn_step_backward_kernel(const T* h, const T* d_out, const T* dh_mat, T* dgates,
                                         int64_t n, bool relu) {
  NEEDLE_GRID_STRIDE(k, n) {
    const T deriv = relu ? T(h[k] > T(0)) : T(1) - h[k] * h[k];
    dgates[k] = (d_out[k] + dh_mat[k]) * deriv;
  }
}

// One thread per output element; the indices were checked on the host.
template <class T>
__global__ void gather_rows_kernel(const T* table, const T* idx, T* out, int64_t n,
                                   int64_t dim) {
  NEEDLE_GRID_STRIDE(k, n * dim) {
    const int64_t row = static_cast<int64_t>(idx[k / dim]);
    out[k] = table[row * dim + k % dim];
  }
}

// Repeated indices add up: atomicAdd (double atomics need sm_60, below the sm_80 floor).
template <class T>
__global__ void scatter_add_rows_kernel(const T* grad, const T* idx, T* out, int64_t n,
                                        int64_t dim) {
  NEEDLE_GRID_STRIDE(k, n * dim) {
    const int64_t row = static_cast<int64_t>(idx[k / dim]);
    atomicAdd(out + row * dim + k % dim, grad[k]);
  }
}

// ---- launchers ----------------------------------------------------------------------------------

template <class T>
void launch_lstm_step_forward(const T* xw, const T* hw, const T* c_prev, T* act, T* c, T* h,
                              int64_t batch, int64_t hidden) {
  if (batch * hidden <= 0) return;
  lstm_step_forward_kernel<T>
      <<<grid_for(batch * hidden), kThreads>>>(xw, hw, c_prev, act, c, h, batch, hidden);
  check_launch("lstm_step_forward_kernel");
}

template <class T>
void launch_lstm_step_backward(const T* act, const T* c, const T* c_prev, const T* d_out,
                               const T* dh_mat, T* dc, T* dgates, int64_t batch,
                               int64_t hidden) {
  if (batch * hidden <= 0) return;
  lstm_step_backward_kernel<T><<<grid_for(batch * hidden), kThreads>>>(
      act, c, c_prev, d_out, dh_mat, dc, dgates, batch, hidden);
  check_launch("lstm_step_backward_kernel");
}

template <class T>
void launch_gru_step_forward(const T* xw, const T* hw, const T* bhh, const T* h_prev, T* act,
                             T* h, int64_t batch, int64_t hidden) {
  if (batch * hidden <= 0) return;
  gru_step_forward_kernel<T>
      <<<grid_for(batch * hidden), kThreads>>>(xw, hw, bhh, h_prev, act, h, batch, hidden);
  check_launch("gru_step_forward_kernel");
}

template <class T>
void launch_gru_step_backward(const T* act, const T* h_prev, const T* d_out, const T* dh_mat,
                              T* dh_carry, T* dgx, T* dgh, int64_t batch, int64_t hidden) {
  if (batch * hidden <= 0) return;
  gru_step_backward_kernel<T><<<grid_for(batch * hidden), kThreads>>>(
      act, h_prev, d_out, dh_mat, dh_carry, dgx, dgh, batch, hidden);
  check_launch("gru_step_backward_kernel");
}

template <class T>
void launch_rnn_step_forward(const T* xw, const T* hw, T* h, int64_t n, bool relu) {
  if (n <= 0) return;
  rnn_step_forward_kernel<T><<<grid_for(n), kThreads>>>(xw, hw, h, n, relu);
  check_launch("rnn_step_forward_kernel");
}

template <class T>
void launch_rnn_step_backward(const T* h, const T* d_out, const T* dh_mat, T* dgates, int64_t n,
                              bool relu) {
  if (n <= 0) return;
  rnn_step_backward_kernel<T><<<grid_for(n), kThreads>>>(h, d_out, dh_mat, dgates, n, relu);
  check_launch("rnn_step_backward_kernel");
}

template <class T>
void launch_gather_rows(const T* table, const T* idx, T* out, int64_t n, int64_t dim) {
  if (n * dim <= 0) return;
  gather_rows_kernel<T><<<grid_for(n * dim), kThreads>>>(table, idx, out, n, dim);
  check_launch("gather_rows_kernel");
}

/// out must be zeroed first (the binding fills it).
template <class T>
void launch_scatter_add_rows(const T* grad, const T* idx, T* out, int64_t n, int64_t dim) {
  if (n * dim <= 0) return;
  scatter_add_rows_kernel<T><<<grid_for(n * dim), kThreads>>>(grad, idx, out, n, dim);
  check_launch("scatter_add_rows_kernel");
}

}  // namespace cuda
}  // namespace needle
