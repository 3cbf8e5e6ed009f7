// The bound functions of the sequence kernels (cuda/sequence.cuh): argument checks on the host,
// then one launch per time step.  Included by ndarray_backend_cuda.cu, whose table binds them.
#pragma once

#include <pybind11/pybind11.h>

#include <initializer_list>

#include "common/checks.h"
#include "cuda/array.cuh"
#include "cuda/sequence.cuh"

namespace needle {
namespace cuda {

// ---- sequence kernels (src/cuda/sequence.cuh) --------------------------------------------
// (T, B, W) buffers are row-major and reach at least step t; step t starts at t·B·W.  The
// previous state of step 0 is the initial state (c0 / h0), of step t > 0 step t − 1.

// The dtype of every array equals the first one's (TypeError naming both otherwise).
void check_dtypes_all(const char* fn, std::initializer_list<const CudaArray*> arrays) {
  for (const CudaArray* a : arrays) check_dtypes(fn, **arrays.begin(), *a);
}

// The buffer's elements on the host (small: the row indices the embedding kernels check).
template <class T>
std::vector<T> host_copy(const CudaArray& a) {
  std::vector<T> host(static_cast<size_t>(a.size));
  if (a.size) CUDA_CHECK(cudaMemcpy(host.data(), a.data<T>(), a.size * sizeof(T),
                                    cudaMemcpyDeviceToHost));
  return host;
}

void lstm_step_forward_fn(const CudaArray& xw, const CudaArray& hw, const CudaArray& c0,
                          CudaArray& act, CudaArray& c_all, CudaArray& h_all, int64_t t,
                          int64_t batch, int64_t hidden) {
  const char* fn = "lstm_step_forward";
  check_dtypes_all(fn, {&xw, &hw, &c0, &act, &c_all, &h_all});
  const StepSizes s = check_step(fn, t, batch, hidden, 4);
  check_steps(fn, "xw", xw.size, t, s.gates);
  check_size(fn, "hw", hw.size, s.gates);
  check_size(fn, "c0", c0.size, s.state);
  check_steps(fn, "act", act.size, t, s.gates);
  check_steps(fn, "c_all", c_all.size, t, s.state);
  check_steps(fn, "h_all", h_all.size, t, s.state);
  dispatch(xw.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* c = c_all.data<T>();
    const T* c_prev = t == 0 ? c0.data<T>() : c + (t - 1) * s.state;
    launch_lstm_step_forward<T>(xw.data<T>() + t * s.gates, hw.data<T>(), c_prev,
                      act.data<T>() + t * s.gates, c + t * s.state,
                      h_all.data<T>() + t * s.state, batch, hidden);
  });
}

void lstm_step_backward_fn(const CudaArray& act, const CudaArray& c_all, const CudaArray& c0,
                           const CudaArray& d_out, const CudaArray& dh_mat, CudaArray& dc,
                           CudaArray& dgates, int64_t t, int64_t batch, int64_t hidden) {
  const char* fn = "lstm_step_backward";
  check_dtypes_all(fn, {&act, &c_all, &c0, &d_out, &dh_mat, &dc, &dgates});
  const StepSizes s = check_step(fn, t, batch, hidden, 4);
  check_steps(fn, "act", act.size, t, s.gates);
  check_steps(fn, "c_all", c_all.size, t, s.state);
  check_size(fn, "c0", c0.size, s.state);
  check_steps(fn, "d_out", d_out.size, t, s.state);
  check_size(fn, "dh_mat", dh_mat.size, s.state);
  check_size(fn, "dc", dc.size, s.state);
  check_steps(fn, "dgates", dgates.size, t, s.gates);
  dispatch(act.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* c = c_all.data<T>();
    const T* c_prev = t == 0 ? c0.data<T>() : c + (t - 1) * s.state;
    launch_lstm_step_backward<T>(act.data<T>() + t * s.gates, c + t * s.state, c_prev,
                       d_out.data<T>() + t * s.state, dh_mat.data<T>(), dc.data<T>(),
                       dgates.data<T>() + t * s.gates, batch, hidden);
  });
}

void rnn_step_forward_fn(const CudaArray& xw, const CudaArray& hw, CudaArray& h_all, int64_t t,
                         int64_t batch, int64_t hidden, bool relu) {
  const char* fn = "rnn_step_forward";
  check_dtypes_all(fn, {&xw, &hw, &h_all});
  const StepSizes s = check_step(fn, t, batch, hidden, 1);
  check_steps(fn, "xw", xw.size, t, s.state);
  check_size(fn, "hw", hw.size, s.state);
  check_steps(fn, "h_all", h_all.size, t, s.state);
  dispatch(xw.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_rnn_step_forward<T>(xw.data<T>() + t * s.state, hw.data<T>(),
                               h_all.data<T>() + t * s.state,
                     s.state, relu);
  });
}

void rnn_step_backward_fn(const CudaArray& h_all, const CudaArray& d_out, const CudaArray& dh_mat,
                          CudaArray& dgates, int64_t t, int64_t batch, int64_t hidden, bool relu) {
  const char* fn = "rnn_step_backward";
  check_dtypes_all(fn, {&h_all, &d_out, &dh_mat, &dgates});
  const StepSizes s = check_step(fn, t, batch, hidden, 1);
  check_steps(fn, "h_all", h_all.size, t, s.state);
  check_steps(fn, "d_out", d_out.size, t, s.state);
  check_size(fn, "dh_mat", dh_mat.size, s.state);
  check_steps(fn, "dgates", dgates.size, t, s.state);
  dispatch(h_all.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_rnn_step_backward<T>(h_all.data<T>() + t * s.state, d_out.data<T>() + t * s.state,
                      dh_mat.data<T>(), dgates.data<T>() + t * s.state, s.state, relu);
  });
}

void gru_step_forward_fn(const CudaArray& xw, const CudaArray& hw, const CudaArray& bhh,
                         const CudaArray& h0, CudaArray& act, CudaArray& h_all, int64_t t,
                         int64_t batch, int64_t hidden) {
  const char* fn = "gru_step_forward";
  check_dtypes_all(fn, {&xw, &hw, &bhh, &h0, &act, &h_all});
  const StepSizes s = check_step(fn, t, batch, hidden, 3);
  check_steps(fn, "xw", xw.size, t, s.gates);
  check_size(fn, "hw", hw.size, s.gates);
  check_size(fn, "bhh", bhh.size, checked_mul(fn, 3, hidden));
  check_size(fn, "h0", h0.size, s.state);
  check_steps(fn, "act", act.size, t, s.gates + s.state);
  check_steps(fn, "h_all", h_all.size, t, s.state);
  dispatch(xw.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* h = h_all.data<T>();
    const T* h_prev = t == 0 ? h0.data<T>() : h + (t - 1) * s.state;
    launch_gru_step_forward<T>(xw.data<T>() + t * s.gates, hw.data<T>(), bhh.data<T>(), h_prev,
                     act.data<T>() + t * (s.gates + s.state), h + t * s.state, batch, hidden);
  });
}

void gru_step_backward_fn(const CudaArray& act, const CudaArray& h0, const CudaArray& h_all,
                          const CudaArray& d_out, const CudaArray& dh_mat, CudaArray& dh_carry,
                          CudaArray& dgx, CudaArray& dgh, int64_t t, int64_t batch,
                          int64_t hidden) {
  const char* fn = "gru_step_backward";
  check_dtypes_all(fn, {&act, &h0, &h_all, &d_out, &dh_mat, &dh_carry, &dgx, &dgh});
  const StepSizes s = check_step(fn, t, batch, hidden, 3);
  check_steps(fn, "act", act.size, t, s.gates + s.state);
  check_size(fn, "h0", h0.size, s.state);
  check_steps(fn, "h_all", h_all.size, t, s.state);
  check_steps(fn, "d_out", d_out.size, t, s.state);
  check_size(fn, "dh_mat", dh_mat.size, s.state);
  check_size(fn, "dh_carry", dh_carry.size, s.state);
  check_steps(fn, "dgx", dgx.size, t, s.gates);
  check_steps(fn, "dgh", dgh.size, t, s.gates);
  dispatch(act.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* h = h_all.data<T>();
    const T* h_prev = t == 0 ? h0.data<T>() : h + (t - 1) * s.state;
    launch_gru_step_backward<T>(act.data<T>() + t * (s.gates + s.state), h_prev,
                      d_out.data<T>() + t * s.state, dh_mat.data<T>(), dh_carry.data<T>(),
                      dgx.data<T>() + t * s.gates, dgh.data<T>() + t * s.gates, batch, hidden);
  });
}

void gather_rows_fn(const CudaArray& table, const CudaArray& idx, CudaArray& out, int64_t rows,
                    int64_t dim) {
  const char* fn = "gather_rows";
  check_dtypes_all(fn, {&table, &idx, &out});
  check_size(fn, "table", table.size, checked_prod(fn, {rows, dim}));
  check_size(fn, "out", out.size, checked_mul(fn, idx.size, dim));
  dispatch(table.dtype, [&](auto tag) {
    using T = decltype(tag);
    check_row_indices(fn, host_copy<T>(idx).data(), idx.size, rows);
    launch_gather_rows<T>(table.data<T>(), idx.data<T>(), out.data<T>(), idx.size, dim);
  });
}

void scatter_add_rows_fn(const CudaArray& grad, const CudaArray& idx, CudaArray& out, int64_t rows,
                         int64_t dim) {
  const char* fn = "scatter_add_rows";
  check_dtypes_all(fn, {&grad, &idx, &out});
  check_size(fn, "grad", grad.size, checked_mul(fn, idx.size, checked_prod(fn, {dim})));
  check_size(fn, "out", out.size, checked_prod(fn, {rows, dim}));
  dispatch(grad.dtype, [&](auto tag) {
    using T = decltype(tag);
    check_row_indices(fn, host_copy<T>(idx).data(), idx.size, rows);
    launch_fill<T>(out.data<T>(), T(0), checked_mul(fn, rows, dim));
    launch_scatter_add_rows<T>(grad.data<T>(), idx.data<T>(), out.data<T>(), idx.size, dim);
  });
}

}  // namespace cuda
}  // namespace needle
