// The C++ CPU backend: the bound functions (argument checks, then a kernel) and the
// PYBIND11_MODULE function table.  The Array type is in cpu/array.h, the sequence kernels'
// bound functions in cpu/sequence_bindings.h, the kernels in src/cpu/*.h.  Every bound
// function checks its buffers' sizes, dtypes and geometry before any kernel runs, so no call
// from Python can read or write out of bounds: bad sizes raise ValueError, views reaching
// outside a buffer IndexError, dtype mismatches TypeError.  Long kernels release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common/checks.h"
#include "common/geometry.h"
#include "cpu/array.h"
#include "cpu/common.h"
#include "cpu/conv.h"
#include "cpu/elementwise.h"
#include "cpu/fused.h"
#include "cpu/gemm.h"
#include "cpu/half.h"
#include "cpu/pool.h"
#include "cpu/reduce.h"
#include "cpu/sequence_bindings.h"
#include "cpu/strided.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace needle {
namespace cpu {

// ---- conversion, fill, strided copies -------------------------------------------------------

py::array to_numpy(const Array& a, const Shape& shape, const Shape& strides, std::int64_t offset) {
  check_view("to_numpy", "a", shape, strides, offset, a.size());
  return dispatch(a.dtype(), [&](auto tag) -> py::array {
    using T = decltype(tag);
    py::array_t<T> out(std::vector<py::ssize_t>(shape.begin(), shape.end()));
    compact(a.data<T>(), out.mutable_data(), shape, strides, offset);
    return std::move(out);
  });
}

void from_numpy(const py::object& src, Array& out) {
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    auto arr = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(src);
    if (!arr) throw DTypeError("from_numpy: cannot convert the argument to a float array");
    const std::int64_t n = arr.size();
    if (n == 1 && out.size() != 1) {
      fill(out.data<T>(), *arr.data(), out.size());
    } else {
      if (n != out.size())
        throw std::invalid_argument("from_numpy: array of " + std::to_string(n) +
                                    " elements does not fit a buffer of " +
                                    std::to_string(out.size()));
      std::memcpy(out.data<T>(), arr.data(), n * sizeof(T));
    }
  });
}

void fill_array(Array& out, double val) {
  ReleaseGil nogil(out.size());
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    fill(out.data<T>(), T(val), out.size());
  });
}

void compact_array(const Array& a, Array& out, const Shape& shape, const Shape& strides,
                   std::int64_t offset) {
  check_dtypes("compact", {&a, &out});
  std::int64_t n = check_view("compact", "a", shape, strides, offset, a.size());
  check_size("compact", "out", out.size(), n);
  ReleaseGil nogil(n);
  dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    compact(a.data<T>(), out.data<T>(), shape, strides, offset);
  });
}

void ewise_setitem_array(const Array& a, Array& out, const Shape& shape, const Shape& strides,
                         std::int64_t offset) {
  check_dtypes("ewise_setitem", {&a, &out});
  std::int64_t n = check_view("ewise_setitem", "out", shape, strides, offset, out.size());
  check_size("ewise_setitem", "a", a.size(), n);
  ReleaseGil nogil(n);
  dispatch(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    ewise_setitem(a.data<T>(), out.data<T>(), shape, strides, offset);
  });
}

void scalar_setitem_array(std::int64_t size, double val, Array& out, const Shape& shape,
                          const Shape& strides, std::int64_t offset) {
  std::int64_t n = check_view("scalar_setitem", "out", shape, strides, offset, out.size());
  if (size != n)
    throw std::invalid_argument("scalar_setitem: size " + std::to_string(size) +
                                " does not match the view shape " + shape_str(shape));
  ReleaseGil nogil(n);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    scalar_setitem(T(val), out.data<T>(), shape, strides, offset);
  });
}

// ---- float16 host buffers (needle.distributed's compressed all-reduce) ------------------------
// NumPy arrays of exactly these dtypes, C-contiguous, of one size: nothing is converted on the
// way in, so the output is the caller's own memory (noconvert in the table below).
using Floats = py::array_t<float, py::array::c_style>;
using Halves = py::array_t<std::uint16_t, py::array::c_style>;

void half_from_float_array(const Floats& src, Halves& dst) {
  const std::int64_t n = src.size();
  check_size_exact("half_from_float", "dst", dst.size(), n);
  std::uint16_t* out = dst.mutable_data();  // (a read-only array raises ValueError here)
  ReleaseGil nogil(n);
  floats_to_halves(src.data(), out, n);
}

void half_to_float_array(const Halves& src, Floats& dst) {
  const std::int64_t n = src.size();
  check_size_exact("half_to_float", "dst", dst.size(), n);
  float* out = dst.mutable_data();
  ReleaseGil nogil(n);
  halves_to_floats(src.data(), out, n);
}

void half_add_array(const Halves& in, Halves& inout) {
  const std::int64_t n = in.size();
  check_size_exact("half_add", "inout", inout.size(), n);
  std::uint16_t* out = inout.mutable_data();
  ReleaseGil nogil(n);
  add_halves(in.data(), out, n);
}

// out[offset + i] = scale * a[i] for i < a.size: one gradient written, already weighted, into its
// piece of a flat buffer (needle.distributed's bucket) in one pass.
void scaled_copy_array(const Array& a, double scale, Array& out, std::int64_t offset) {
  check_dtypes("scaled_copy", {&a, &out});
  const std::int64_t n = a.size();
  check_view("scaled_copy", "out", {n}, {1}, offset, out.size());
  ReleaseGil nogil(n);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    map_scalar<OpMul>(a.data<T>(), T(scale), out.data<T>() + offset, n);
  });
}

// ---- elementwise ------------------------------------------------------------------------------

template <class Op>
void ewise(const Array& a, const Array& b, Array& out) {
  check_dtypes("ewise", {&a, &b, &out});
  check_size("ewise", "a", a.size(), out.size());
  check_size("ewise", "b", b.size(), out.size());
  ReleaseGil nogil(out.size());
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    map_binary<Op>(a.data<T>(), b.data<T>(), out.data<T>(), out.size());
  });
}

template <class Op>
void scalar(const Array& a, double val, Array& out) {
  check_dtypes("scalar", {&a, &out});
  check_size("scalar", "a", a.size(), out.size());
  ReleaseGil nogil(out.size());
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    map_scalar<Op>(a.data<T>(), T(val), out.data<T>(), out.size());
  });
}

void scalar_power_array(const Array& a, double val, Array& out) {
  check_dtypes("scalar_power", {&a, &out});
  check_size("scalar_power", "a", a.size(), out.size());
  ReleaseGil nogil(out.size());
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    scalar_power(a.data<T>(), T(val), out.data<T>(), out.size());
  });
}

template <class Op>
void unary(const Array& a, Array& out) {
  check_dtypes("unary", {&a, &out});
  check_size("unary", "a", a.size(), out.size());
  ReleaseGil nogil(out.size());
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    map_unary<Op>(a.data<T>(), out.data<T>(), out.size());
  });
}

// ---- reductions -------------------------------------------------------------------------------

template <class R>
void reduce_array(const Array& a, Array& out, std::int64_t reduce_size) {
  check_dtypes("reduce", {&a, &out});
  check_reduce_size("reduce", reduce_size);
  check_size("reduce", "a", a.size(), checked_mul("reduce", out.size(), reduce_size));
  ReleaseGil nogil(out.size() * reduce_size);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    reduce<R>(a.data<T>(), out.data<T>(), out.size(), reduce_size);
  });
}

// ---- matmul -----------------------------------------------------------------------------------

void check_matmul_dims(const char* fn, std::int64_t m, std::int64_t n, std::int64_t p) {
  check_nonneg(fn, "m", m);
  check_nonneg(fn, "n", n);
  check_nonneg(fn, "p", p);
}

void matmul(const Array& a, const Array& b, Array& out, std::int64_t m, std::int64_t n,
            std::int64_t p) {
  check_dtypes("matmul", {&a, &b, &out});
  check_matmul_dims("matmul", m, n, p);
  check_size("matmul", "a", a.size(), checked_mul("matmul", m, n));
  check_size("matmul", "b", b.size(), checked_mul("matmul", n, p));
  check_size("matmul", "out", out.size(), checked_mul("matmul", m, p));
  ReleaseGil nogil(m * n * p);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gemm<T>(m, p, n, a.data<T>(), n, 1, b.data<T>(), p, 1, out.data<T>(), p, 1, false);
  });
}

void matmul_batched(const Array& a, const Array& b, Array& out, std::int64_t batch,
                    std::int64_t m, std::int64_t n, std::int64_t p, std::int64_t a_stride,
                    std::int64_t b_stride) {
  const char* fn = "matmul_batched";
  check_dtypes(fn, {&a, &b, &out});
  check_matmul_dims(fn, m, n, p);
  check_nonneg(fn, "batch", batch);
  check_nonneg(fn, "a_batch_stride", a_stride);
  check_nonneg(fn, "b_batch_stride", b_stride);
  if (batch == 0) return;
  check_size(fn, "a", a.size(), checked_mul(fn, batch - 1, a_stride) + checked_mul(fn, m, n));
  check_size(fn, "b", b.size(), checked_mul(fn, batch - 1, b_stride) + checked_mul(fn, n, p));
  check_size(fn, "out", out.size(), checked_mul(fn, batch, checked_mul(fn, m, p)));
  ReleaseGil nogil(batch * m * n * p);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T *A = a.data<T>(), *B = b.data<T>();
    T* C = out.data<T>();
    // many small products: one per thread; large ones: threads inside each product
    const bool per_thread = double(m) * n * p < 64.0 * 64 * 64;
    parallel_items(batch, per_thread ? 2 : batch + 1, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i)
        gemm<T>(m, p, n, A + i * a_stride, n, 1, B + i * b_stride, p, 1, C + i * m * p, p, 1,
                false);
    });
  });
}

constexpr std::int64_t kTile = 8;

/// The course's tiled layout: a (m/T, n/T, T, T) buffer of T x T tiles.
void matmul_tiled(const Array& a, const Array& b, Array& out, std::int64_t m, std::int64_t n,
                  std::int64_t p) {
  const char* fn = "matmul_tiled";
  check_dtypes(fn, {&a, &b, &out});
  check_matmul_dims(fn, m, n, p);
  if (m % kTile || n % kTile || p % kTile)
    throw std::invalid_argument("matmul_tiled: m, n, p must be multiples of " +
                                std::to_string(kTile) + ", got " + std::to_string(m) + ", " +
                                std::to_string(n) + ", " + std::to_string(p));
  check_size(fn, "a", a.size(), checked_mul(fn, m, n));
  check_size(fn, "b", b.size(), checked_mul(fn, n, p));
  check_size(fn, "out", out.size(), checked_mul(fn, m, p));
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t nt = n / kTile, pt = p / kTile;
    // C[i, j] = sum_k A[i, k] B[k, j] over tiles, each a strided T x T gemm
    for (std::int64_t i = 0; i < m / kTile; ++i)
      for (std::int64_t j = 0; j < pt; ++j) {
        T* c = out.data<T>() + (i * pt + j) * kTile * kTile;
        for (std::int64_t k = 0; k < nt; ++k)
          gemm_reference<T>(kTile, kTile, kTile, a.data<T>() + (i * nt + k) * kTile * kTile, kTile,
                            1, b.data<T>() + (k * pt + j) * kTile * kTile, kTile, 1, c, kTile, 1,
                            k > 0);
        if (nt == 0)
          for (std::int64_t e = 0; e < kTile * kTile; ++e) c[e] = T(0);
      }
  });
}

/// Test hook: C (M x N, strides rsC/csC) = A * B (+ C) through the blocked GEMM or the
/// reference loop, so the strided interface conv relies on is tested from Python.
void gemm_strided(const Array& a, const Array& b, Array& c, std::int64_t M, std::int64_t N,
                  std::int64_t K, std::int64_t rsA, std::int64_t csA, std::int64_t rsB,
                  std::int64_t csB, std::int64_t rsC, std::int64_t csC, bool accumulate,
                  bool reference) {
  check_dtypes("gemm", {&a, &b, &c});
  check_view("gemm", "A", {M, K}, {rsA, csA}, 0, a.size());
  check_view("gemm", "B", {K, N}, {rsB, csB}, 0, b.size());
  check_view("gemm", "C", {M, N}, {rsC, csC}, 0, c.size());
  ReleaseGil nogil(M * N * K);
  dispatch(c.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (reference)
      gemm_reference<T>(M, N, K, a.data<T>(), rsA, csA, b.data<T>(), rsB, csB, c.data<T>(), rsC,
                        csC, accumulate);
    else
      gemm<T>(M, N, K, a.data<T>(), rsA, csA, b.data<T>(), rsB, csB, c.data<T>(), rsC, csC,
              accumulate);
  });
}

// ---- convolution and pooling ------------------------------------------------------------------

void conv_forward_array(const Array& a, const Array& b, Array& out, const Shape& geom) {
  const char* fn = "conv_forward";
  check_dtypes(fn, {&a, &b, &out});
  ConvGeom g = parse_conv_geom(fn, geom);
  check_size(fn, "a (N, Di, Hi, Wi, Cin)", a.size(), conv_input_size(fn, g));
  check_size(fn, "b (KD, KH, KW, Cin // groups, Cout)", b.size(), conv_weight_size(fn, g));
  const std::int64_t n_out = conv_output_size(fn, g);
  check_size(fn, "out (N, Do, Ho, Wo, Cout)", out.size(), n_out);
  ReleaseGil nogil(n_out);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::conv_forward(g, a.data<T>(), b.data<T>(), out.data<T>());
  });
}

void conv_backward_weight_array(const Array& a, const Array& grad, Array& out, const Shape& geom) {
  const char* fn = "conv_backward_weight";
  check_dtypes(fn, {&a, &grad, &out});
  ConvGeom g = parse_conv_geom(fn, geom);
  check_size(fn, "a (N, Di, Hi, Wi, Cin)", a.size(), conv_input_size(fn, g));
  const std::int64_t n_grad = conv_output_size(fn, g);
  check_size(fn, "grad (N, Do, Ho, Wo, Cout)", grad.size(), n_grad);
  check_size(fn, "out (KD, KH, KW, Cin // groups, Cout)", out.size(), conv_weight_size(fn, g));
  ReleaseGil nogil(n_grad);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::conv_backward_weight(g, a.data<T>(), grad.data<T>(), out.data<T>());
  });
}

void maxpool_forward_array(const Array& a, Array& out, const Shape& geom) {
  const char* fn = "maxpool_forward";
  check_dtypes(fn, {&a, &out});
  PoolGeom g = parse_pool_geom(fn, geom);
  check_size(fn, "a (N, Di, Hi, Wi, C)", a.size(), pool_input_size(fn, g));
  const std::int64_t n_out = pool_output_size(fn, g);
  check_size(fn, "out (N, Do, Ho, Wo, C)", out.size(), n_out);
  ReleaseGil nogil(n_out);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::maxpool_forward(g, a.data<T>(), out.data<T>());
  });
}

void maxpool_backward_array(const Array& a, const Array& grad, Array& out, const Shape& geom) {
  const char* fn = "maxpool_backward";
  check_dtypes(fn, {&a, &grad, &out});
  PoolGeom g = parse_pool_geom(fn, geom);
  const std::int64_t n_in = pool_input_size(fn, g);
  check_size(fn, "a (N, Di, Hi, Wi, C)", a.size(), n_in);
  check_size(fn, "grad (N, Do, Ho, Wo, C)", grad.size(), pool_output_size(fn, g));
  check_size(fn, "out (N, Di, Hi, Wi, C)", out.size(), n_in);
  ReleaseGil nogil(n_in);
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cpu::maxpool_backward(g, a.data<T>(), grad.data<T>(), out.data<T>());
  });
}

// ---- fused kernels ------------------------------------------------------------------------------

void sum_rows_array(const Array& a, Array& out, std::int64_t rows) {
  check_dtypes("sum_rows", {&a, &out});
  check_nonneg("sum_rows", "rows", rows);
  check_size("sum_rows", "a", a.size(), checked_mul("sum_rows", rows, out.size()));
  ReleaseGil nogil(rows * out.size());
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    sum_rows(a.data<T>(), out.data<T>(), rows, out.size());
  });
}

void rows_affine_array(const Array& a, const Array& b, const Array& s, const Array& t,
                       const Array& u, Array& out) {
  check_dtypes("rows_affine", {&a, &b, &s, &t, &u, &out});
  const std::int64_t cols = s.size();
  check_row_vectors("rows_affine", out.size(), s.size(), t.size(), u.size());
  check_size("rows_affine", "a", a.size(), out.size());
  check_size("rows_affine", "b", b.size(), out.size());
  ReleaseGil nogil(out.size());
  dispatch(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    rows_affine(a.data<T>(), b.data<T>(), s.data<T>(), t.data<T>(), u.data<T>(), out.data<T>(),
                out.size() / cols, cols);
  });
}

void adam_step_array(const Array& param, const Array& grad, const Array& m, const Array& v,
                     const std::vector<double>& hyper, Array& param_out, Array& m_out,
                     Array& v_out) {
  check_dtypes("adam_step", {&param, &grad, &m, &v, &param_out, &m_out, &v_out});
  check_adam_hyper("adam_step", hyper.size());
  const std::int64_t n = param_out.size();
  check_size("adam_step", "param", param.size(), n);
  check_size("adam_step", "grad", grad.size(), n);
  check_size("adam_step", "m", m.size(), n);
  check_size("adam_step", "v", v.size(), n);
  check_size("adam_step", "m_out", m_out.size(), n);
  check_size("adam_step", "v_out", v_out.size(), n);
  ReleaseGil nogil(n);
  dispatch(param_out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    adam_step(param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), hyper.data(),
              param_out.data<T>(), m_out.data<T>(), v_out.data<T>(), n);
  });
}

}  // namespace cpu
}  // namespace needle

PYBIND11_MODULE(ndarray_backend_cpu, m) {
  using namespace needle::cpu;
  m.doc() = "needle's C++ CPU backend (same function table as ndarray_backend_numpy)";
  m.attr("__device_name__") = "cpu";
  m.attr("__tile_size__") = kTile;

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const DTypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    }
  });

  py::class_<Array>(m, "Array")
      .def(py::init([](std::int64_t size, const py::object& dtype) {
             return new Array(size, dtype_from_object(dtype));
           }),
           "size"_a, "dtype"_a = "float32")
      .def_property_readonly("size", &Array::size)
      .def_property_readonly("dtype", [](const Array& a) { return dtype_name(a.dtype()); })
      .def("ptr", &Array::address);

  m.def("to_numpy", &to_numpy);
  m.def("from_numpy", &from_numpy);
  m.def("fill", &fill_array);
  m.def("compact", &compact_array);
  m.def("ewise_setitem", &ewise_setitem_array);
  m.def("scalar_setitem", &scalar_setitem_array);
  m.def("scaled_copy", &scaled_copy_array);
  m.def("half_from_float", &half_from_float_array, py::arg("src").noconvert(),
        py::arg("dst").noconvert());
  m.def("half_to_float", &half_to_float_array, py::arg("src").noconvert(), py::arg("dst").noconvert());
  m.def("half_add", &half_add_array, py::arg("in").noconvert(), py::arg("inout").noconvert());

  m.def("ewise_add", &ewise<OpAdd>);
  m.def("scalar_add", &scalar<OpAdd>);
  m.def("ewise_sub", &ewise<OpSub>);
  m.def("scalar_sub", &scalar<OpSub>);
  m.def("scalar_rsub", &scalar<OpRSub>);
  m.def("ewise_mul", &ewise<OpMul>);
  m.def("scalar_mul", &scalar<OpMul>);
  m.def("ewise_div", &ewise<OpDiv>);
  m.def("scalar_div", &scalar<OpDiv>);
  m.def("scalar_rdiv", &scalar<OpRDiv>);
  m.def("ewise_power", &ewise<OpPow>);
  m.def("scalar_power", &scalar_power_array);
  m.def("scalar_rpower", &scalar<OpRPow>);
  m.def("ewise_maximum", &ewise<OpMax>);
  m.def("scalar_maximum", &scalar<OpMax>);
  m.def("ewise_eq", &ewise<OpEq>);
  m.def("scalar_eq", &scalar<OpEq>);
  m.def("ewise_ne", &ewise<OpNe>);
  m.def("scalar_ne", &scalar<OpNe>);
  m.def("ewise_lt", &ewise<OpLt>);
  m.def("scalar_lt", &scalar<OpLt>);
  m.def("ewise_le", &ewise<OpLe>);
  m.def("scalar_le", &scalar<OpLe>);
  m.def("ewise_gt", &ewise<OpGt>);
  m.def("scalar_gt", &scalar<OpGt>);
  m.def("ewise_ge", &ewise<OpGe>);
  m.def("scalar_ge", &scalar<OpGe>);
  m.def("ewise_relu_grad", &ewise<OpReluGrad>);

  m.def("ewise_neg", &unary<OpNeg>);
  m.def("ewise_log", &unary<OpLog>);
  m.def("ewise_exp", &unary<OpExp>);
  m.def("ewise_tanh", &unary<OpTanh>);
  m.def("ewise_sqrt", &unary<OpSqrt>);
  m.def("ewise_abs", &unary<OpAbs>);
  m.def("ewise_sign", &unary<OpSign>);
  m.def("ewise_sigmoid", &unary<OpSigmoid>);
  m.def("ewise_relu", &unary<OpRelu>);

  m.def("reduce_sum", &reduce_array<SumReducer>);
  m.def("reduce_max", &reduce_array<MaxReducer>);

  m.def("matmul", &matmul);
  m.def("matmul_batched", &matmul_batched);
  m.def("matmul_tiled", &matmul_tiled);

  m.def("conv_forward", &conv_forward_array);
  m.def("conv_backward_weight", &conv_backward_weight_array);
  m.def("maxpool_forward", &maxpool_forward_array);
  m.def("maxpool_backward", &maxpool_backward_array);

  m.def("sum_rows", &sum_rows_array, "a"_a, "out"_a, "rows"_a);
  m.def("rows_affine", &rows_affine_array, "a"_a, "b"_a, "s"_a, "t"_a, "u"_a, "out"_a);
  m.def("adam_step", &adam_step_array, "param"_a, "grad"_a, "m"_a, "v"_a, "hyper"_a,
        "param_out"_a, "m_out"_a, "v_out"_a);

  m.def("lstm_step_forward", &lstm_step_forward_array, "xw"_a, "hw"_a, "c0"_a, "act"_a,
        "c_all"_a, "h_all"_a, "t"_a, "batch"_a, "hidden"_a);
  m.def("lstm_step_backward", &lstm_step_backward_array, "act"_a, "c_all"_a, "c0"_a, "d_out"_a,
        "dh_mat"_a, "dc"_a, "dgates"_a, "t"_a, "batch"_a, "hidden"_a);
  m.def("rnn_step_forward", &rnn_step_forward_array, "xw"_a, "hw"_a, "h_all"_a, "t"_a,
        "batch"_a, "hidden"_a, "relu"_a);
  m.def("rnn_step_backward", &rnn_step_backward_array, "h_all"_a, "d_out"_a, "dh_mat"_a,
        "dgates"_a, "t"_a, "batch"_a, "hidden"_a, "relu"_a);
  m.def("gru_step_forward", &gru_step_forward_array, "xw"_a, "hw"_a, "bhh"_a, "h0"_a, "act"_a,
        "h_all"_a, "t"_a, "batch"_a, "hidden"_a);
  m.def("gru_step_backward", &gru_step_backward_array, "act"_a, "h0"_a, "h_all"_a, "d_out"_a,
        "dh_mat"_a, "dh_carry"_a, "dgx"_a, "dgh"_a, "t"_a, "batch"_a, "hidden"_a);
  m.def("gather_rows", &gather_rows_array, "table"_a, "idx"_a, "out"_a, "rows"_a, "dim"_a);
  m.def("scatter_add_rows", &scatter_add_rows_array, "grad"_a, "idx"_a, "out"_a, "rows"_a,
        "dim"_a);

  // not in the backend table: test hooks and pool introspection
  m.def("_gemm", &gemm_strided, "a"_a, "b"_a, "c"_a, "M"_a, "N"_a, "K"_a, "rsA"_a, "csA"_a,
        "rsB"_a, "csB"_a, "rsC"_a, "csC"_a, "accumulate"_a = false, "reference"_a = false);
  m.def("pool_stats", []() {
    auto s = BufferPool::instance().stats();
    auto a = PrefilledArena::instance().stats();
    return py::dict("fresh_allocs"_a = s.fresh_allocs, "fresh_bytes"_a = s.fresh_bytes,
                    "reuses"_a = s.reuses, "cached_bytes"_a = s.cached_bytes,
                    "arena_bytes"_a = a.bytes, "arena_filled"_a = a.filled,
                    "arena_used"_a = a.used);
  });
  m.def("pool_clear", []() { BufferPool::instance().clear(); });
}
