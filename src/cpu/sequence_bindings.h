// The bound functions of the sequence kernels (cpu/sequence.h): argument checks, then one
// kernel call per time step.  Included by ndarray_backend_cpu.cc, whose table binds them.
#pragma once

#include "common/checks.h"
#include "cpu/array.h"
#include "cpu/sequence.h"

namespace needle {
namespace cpu {

// ---- sequence kernels (src/cpu/sequence.h) ------------------------------------------------------
// (T, B, W) buffers are row-major and reach at least step t; step t starts at t·B·W.  The
// previous state of step 0 is the initial state (c0 / h0), of step t > 0 step t − 1.

void lstm_step_forward_array(const Array& xw, const Array& hw, const Array& c0, Array& act,
                             Array& c_all, Array& h_all, std::int64_t t, std::int64_t batch,
                             std::int64_t hidden) {
  const char* fn = "lstm_step_forward";
  check_dtypes(fn, {&xw, &hw, &c0, &act, &c_all, &h_all});
  const StepSizes s = check_step(fn, t, batch, hidden, 4);
  check_steps(fn, "xw", xw.size(), t, s.gates);
  check_size(fn, "hw", hw.size(), s.gates);
  check_size(fn, "c0", c0.size(), s.state);
  check_steps(fn, "act", act.size(), t, s.gates);
  check_steps(fn, "c_all", c_all.size(), t, s.state);
  check_steps(fn, "h_all", h_all.size(), t, s.state);
  ReleaseGil nogil(s.gates);
  dispatch(xw.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* c = c_all.data<T>();
    const T* c_prev = t == 0 ? c0.data<T>() : c + (t - 1) * s.state;
    lstm_step_forward(xw.data<T>() + t * s.gates, hw.data<T>(), c_prev,
                      act.data<T>() + t * s.gates, c + t * s.state,
                      h_all.data<T>() + t * s.state, batch, hidden);
  });
}

void lstm_step_backward_array(const Array& act, const Array& c_all, const Array& c0,
                              const Array& d_out, const Array& dh_mat, Array& dc, Array& dgates,
                              std::int64_t t, std::int64_t batch, std::int64_t hidden) {
  const char* fn = "lstm_step_backward";
  check_dtypes(fn, {&act, &c_all, &c0, &d_out, &dh_mat, &dc, &dgates});
  const StepSizes s = check_step(fn, t, batch, hidden, 4);
  check_steps(fn, "act", act.size(), t, s.gates);
  check_steps(fn, "c_all", c_all.size(), t, s.state);
  check_size(fn, "c0", c0.size(), s.state);
  check_steps(fn, "d_out", d_out.size(), t, s.state);
  check_size(fn, "dh_mat", dh_mat.size(), s.state);
  check_size(fn, "dc", dc.size(), s.state);
  check_steps(fn, "dgates", dgates.size(), t, s.gates);
  ReleaseGil nogil(s.gates);
  dispatch(act.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* c = c_all.data<T>();
    const T* c_prev = t == 0 ? c0.data<T>() : c + (t - 1) * s.state;
    lstm_step_backward(act.data<T>() + t * s.gates, c + t * s.state, c_prev,
                       d_out.data<T>() + t * s.state, dh_mat.data<T>(), dc.data<T>(),
                       dgates.data<T>() + t * s.gates, batch, hidden);
  });
}

void rnn_step_forward_array(const Array& xw, const Array& hw, Array& h_all, std::int64_t t,
                            std::int64_t batch, std::int64_t hidden, bool relu) {
  const char* fn = "rnn_step_forward";
  check_dtypes(fn, {&xw, &hw, &h_all});
  const StepSizes s = check_step(fn, t, batch, hidden, 1);
  check_steps(fn, "xw", xw.size(), t, s.state);
  check_size(fn, "hw", hw.size(), s.state);
  check_steps(fn, "h_all", h_all.size(), t, s.state);
  ReleaseGil nogil(s.state);
  dispatch(xw.dtype(), [&](auto tag) {
    using T = decltype(tag);
    rnn_step_forward(xw.data<T>() + t * s.state, hw.data<T>(), h_all.data<T>() + t * s.state,
                     batch, hidden, relu);
  });
}

void rnn_step_backward_array(const Array& h_all, const Array& d_out, const Array& dh_mat,
                             Array& dgates, std::int64_t t, std::int64_t batch,
                             std::int64_t hidden, bool relu) {
  const char* fn = "rnn_step_backward";
  check_dtypes(fn, {&h_all, &d_out, &dh_mat, &dgates});
  const StepSizes s = check_step(fn, t, batch, hidden, 1);
  check_steps(fn, "h_all", h_all.size(), t, s.state);
  check_steps(fn, "d_out", d_out.size(), t, s.state);
  check_size(fn, "dh_mat", dh_mat.size(), s.state);
  check_steps(fn, "dgates", dgates.size(), t, s.state);
  ReleaseGil nogil(s.state);
  dispatch(h_all.dtype(), [&](auto tag) {
    using T = decltype(tag);
    rnn_step_backward(h_all.data<T>() + t * s.state, d_out.data<T>() + t * s.state,
                      dh_mat.data<T>(), dgates.data<T>() + t * s.state, batch, hidden, relu);
  });
}

void gru_step_forward_array(const Array& xw, const Array& hw, const Array& bhh, const Array& h0,
                            Array& act, Array& h_all, std::int64_t t, std::int64_t batch,
                            std::int64_t hidden) {
  const char* fn = "gru_step_forward";
  check_dtypes(fn, {&xw, &hw, &bhh, &h0, &act, &h_all});
  const StepSizes s = check_step(fn, t, batch, hidden, 3);
  check_steps(fn, "xw", xw.size(), t, s.gates);
  check_size(fn, "hw", hw.size(), s.gates);
  check_size(fn, "bhh", bhh.size(), checked_mul(fn, 3, hidden));
  check_size(fn, "h0", h0.size(), s.state);
  check_steps(fn, "act", act.size(), t, s.gates + s.state);
  check_steps(fn, "h_all", h_all.size(), t, s.state);
  ReleaseGil nogil(s.gates);
  dispatch(xw.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* h = h_all.data<T>();
    const T* h_prev = t == 0 ? h0.data<T>() : h + (t - 1) * s.state;
    gru_step_forward(xw.data<T>() + t * s.gates, hw.data<T>(), bhh.data<T>(), h_prev,
                     act.data<T>() + t * (s.gates + s.state), h + t * s.state, batch, hidden);
  });
}

void gru_step_backward_array(const Array& act, const Array& h0, const Array& h_all,
                             const Array& d_out, const Array& dh_mat, Array& dh_carry,
                             Array& dgx, Array& dgh, std::int64_t t, std::int64_t batch,
                             std::int64_t hidden) {
  const char* fn = "gru_step_backward";
  check_dtypes(fn, {&act, &h0, &h_all, &d_out, &dh_mat, &dh_carry, &dgx, &dgh});
  const StepSizes s = check_step(fn, t, batch, hidden, 3);
  check_steps(fn, "act", act.size(), t, s.gates + s.state);
  check_size(fn, "h0", h0.size(), s.state);
  check_steps(fn, "h_all", h_all.size(), t, s.state);
  check_steps(fn, "d_out", d_out.size(), t, s.state);
  check_size(fn, "dh_mat", dh_mat.size(), s.state);
  check_size(fn, "dh_carry", dh_carry.size(), s.state);
  check_steps(fn, "dgx", dgx.size(), t, s.gates);
  check_steps(fn, "dgh", dgh.size(), t, s.gates);
  ReleaseGil nogil(s.gates);
  dispatch(act.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* h = h_all.data<T>();
    const T* h_prev = t == 0 ? h0.data<T>() : h + (t - 1) * s.state;
    gru_step_backward(act.data<T>() + t * (s.gates + s.state), h_prev,
                      d_out.data<T>() + t * s.state, dh_mat.data<T>(), dh_carry.data<T>(),
                      dgx.data<T>() + t * s.gates, dgh.data<T>() + t * s.gates, batch, hidden);
  });
}

void gather_rows_array(const Array& table, const Array& idx, Array& out, std::int64_t rows,
                       std::int64_t dim) {
  const char* fn = "gather_rows";
  check_dtypes(fn, {&table, &idx, &out});
  check_size(fn, "table", table.size(), checked_prod(fn, {rows, dim}));
  check_size(fn, "out", out.size(), checked_mul(fn, idx.size(), dim));
  ReleaseGil nogil(idx.size() * dim);
  dispatch(table.dtype(), [&](auto tag) {
    using T = decltype(tag);
    check_row_indices(fn, idx.data<T>(), idx.size(), rows);
    gather_rows(table.data<T>(), idx.data<T>(), out.data<T>(), idx.size(), dim);
  });
}

void scatter_add_rows_array(const Array& grad, const Array& idx, Array& out, std::int64_t rows,
                            std::int64_t dim) {
  const char* fn = "scatter_add_rows";
  check_dtypes(fn, {&grad, &idx, &out});
  check_size(fn, "grad", grad.size(), checked_mul(fn, idx.size(), checked_prod(fn, {dim})));
  check_size(fn, "out", out.size(), checked_prod(fn, {rows, dim}));
  ReleaseGil nogil(idx.size() * dim);
  dispatch(grad.dtype(), [&](auto tag) {
    using T = decltype(tag);
    check_row_indices(fn, idx.data<T>(), idx.size(), rows);
    scatter_add_rows(grad.data<T>(), idx.data<T>(), out.data<T>(), idx.size(), rows, dim);
  });
}

}  // namespace cpu
}  // namespace needle
