// The CUDA backend module: host-side argument checks and the PYBIND11_MODULE table, with the
// same names and argument order as python/needle/backend_ndarray/ndarray_backend_numpy.py.
// The Array type (device memory from the pool) is in cuda/array.cuh, the sequence kernels'
// bound functions in cuda/sequence_bindings.cuh, the kernels in src/cuda/*.cuh.
//
// Errors: std::invalid_argument -> ValueError, std::out_of_range -> IndexError,
// py::type_error -> TypeError, CUDA failures -> RuntimeError. Kernels run asynchronously on
// the default stream; to_numpy and synchronize() wait for them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/checks.h"
#include "common/geometry.h"
#include "cuda/array.cuh"
#include "cuda/common.cuh"
#include "cuda/conv.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/fused.cuh"
#include "cuda/gemm.cuh"
#include "cuda/pool.cuh"
#include "cuda/reduce.cuh"
#include "cuda/sequence_bindings.cuh"
#include "cuda/strided.cuh"

namespace py = pybind11;
using namespace needle;
using namespace needle::cuda;

namespace {

constexpr int kTile = 8;  // block size of the course's tiled matmul layout

// ---- conversion and strided copies ---------------------------------------------------------
py::object to_numpy(const CudaArray& a, const std::vector<int64_t>& shape,
                    const std::vector<int64_t>& strides, int64_t offset) {
  const int64_t n = check_view("to_numpy", "a", shape, strides, offset, a.size);
  return dispatch(a.dtype, [&](auto tag) -> py::object {
    using T = decltype(tag);
    py::array_t<T> result(std::vector<py::ssize_t>(shape.begin(), shape.end()));
    if (n == 0) return std::move(result);  // (an empty view needs no layout)
    T* host = result.mutable_data();
    py::gil_scoped_release release;
    copy_to_host<T>(a.data<T>(), host, n, make_layout(shape, strides, offset), a.size);
    return std::move(result);
  });
}

void from_numpy(py::object src, CudaArray& out) {
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    auto arr = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(src);
    if (!arr) throw py::type_error("from_numpy: cannot convert the input to " + out.dtype_name());
    if (arr.size() != out.size) {
      throw std::invalid_argument("from_numpy: input has " + std::to_string(arr.size()) +
                                  " elements, out has " + std::to_string(out.size));
    }
    if (out.size == 0) return;
    const T* host = arr.data();
    py::gil_scoped_release release;
    CUDA_CHECK(cudaMemcpy(out.data<T>(), host, out.size * sizeof(T), cudaMemcpyHostToDevice));
  });
}

void fill(CudaArray& out, double val) {
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_fill<T>(out.data<T>(), static_cast<T>(val), out.size);
  });
}

void compact(const CudaArray& a, CudaArray& out, const std::vector<int64_t>& shape,
             const std::vector<int64_t>& strides, int64_t offset) {
  check_dtypes("compact", a, out);
  const int64_t n = check_view("compact", "a", shape, strides, offset, a.size);
  check_size_exact("compact", "out", out.size, n);
  dispatch(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_compact<T>(a.data<T>(), out.data<T>(), n, make_layout(shape, strides, offset), a.size);
  });
}

void ewise_setitem(const CudaArray& a, CudaArray& out, const std::vector<int64_t>& shape,
                   const std::vector<int64_t>& strides, int64_t offset) {
  check_dtypes("ewise_setitem", a, out);
  const int64_t n = check_view("ewise_setitem", "out", shape, strides, offset, out.size);
  check_size("ewise_setitem", "a", a.size, n);
  dispatch(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_setitem<T>(a.data<T>(), out.data<T>(), n, make_layout(shape, strides, offset),
                      out.size);
  });
}

void scalar_setitem(int64_t size, double val, CudaArray& out, const std::vector<int64_t>& shape,
                    const std::vector<int64_t>& strides, int64_t offset) {
  const int64_t n = check_view("scalar_setitem", "out", shape, strides, offset, out.size);
  if (size != n) {
    throw std::invalid_argument("scalar_setitem: size " + std::to_string(size) +
                                " does not match shape " + shape_str(shape));
  }
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_scalar_setitem<T>(static_cast<T>(val), out.data<T>(), n,
                             make_layout(shape, strides, offset), out.size);
  });
}

// out[offset + i] = scale * a[i] for i < a.size (a gradient into its piece of a flat buffer).
void scaled_copy(const CudaArray& a, double scale, CudaArray& out, int64_t offset) {
  check_dtypes("scaled_copy", a, out);
  const int64_t n = check_view("scaled_copy", "out", {a.size}, {1}, offset, out.size);
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_scalar<T, OpMul>(a.data<T>(), static_cast<T>(scale), out.data<T>() + offset, n);
  });
}

// ---- elementwise ---------------------------------------------------------------------------
template <class Op>
void ewise(const char* fn, const CudaArray& a, const CudaArray& b, CudaArray& out) {
  check_dtypes(fn, a, out);
  check_dtypes(fn, b, out);
  check_size(fn, "a", a.size, out.size);
  check_size(fn, "b", b.size, out.size);
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_ewise<T, Op>(a.data<T>(), b.data<T>(), out.data<T>(), out.size);
  });
}

template <class Op>
void scalar(const char* fn, const CudaArray& a, double val, CudaArray& out) {
  check_dtypes(fn, a, out);
  check_size(fn, "a", a.size, out.size);
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_scalar<T, Op>(a.data<T>(), static_cast<T>(val), out.data<T>(), out.size);
  });
}

template <class Op>
void unary(const char* fn, const CudaArray& a, CudaArray& out) {
  check_dtypes(fn, a, out);
  check_size(fn, "a", a.size, out.size);
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_unary<T, Op>(a.data<T>(), out.data<T>(), out.size);
  });
}

// ---- reductions --------------------------------------------------------------------------------
template <class Op>
void reduce(const char* fn, const CudaArray& a, CudaArray& out, int64_t reduce_size) {
  check_dtypes(fn, a, out);
  check_reduce_size(fn, reduce_size);
  check_size(fn, "a", a.size, checked_mul(fn, out.size, reduce_size));
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_reduce<Op, T>(a.data<T>(), out.data<T>(), out.size, reduce_size);
  });
}

// ---- matmul -------------------------------------------------------------------------------
int to_dim(const char* fn, const char* name, int64_t v) {
  check_nonneg(fn, name, v);
  if (v > std::numeric_limits<int>::max() - 1024) {
    throw std::invalid_argument(std::string(fn) + ": " + name + " = " + std::to_string(v) +
                                " exceeds the CUDA GEMM's int range");
  }
  return static_cast<int>(v);
}

void matmul_batched(const CudaArray& a, const CudaArray& b, CudaArray& out, int64_t batch,
                    int64_t m, int64_t n, int64_t p, int64_t a_batch_stride,
                    int64_t b_batch_stride) {
  const char* fn = "matmul_batched";
  check_dtypes(fn, a, out);
  check_dtypes(fn, b, out);
  check_nonneg(fn, "batch", batch);
  check_nonneg(fn, "a_batch_stride", a_batch_stride);
  check_nonneg(fn, "b_batch_stride", b_batch_stride);
  const GemmDims dims{to_dim(fn, "m", m), to_dim(fn, "n", n), to_dim(fn, "p", p)};
  check_size_exact(fn, "out", out.size, checked_mul(fn, checked_mul(fn, batch, m), p));
  if (batch > 0) {
    check_size(fn, "a", a.size, checked_mul(fn, batch - 1, a_batch_stride) + m * n);
    check_size(fn, "b", b.size, checked_mul(fn, batch - 1, b_batch_stride) + n * p);
  }
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_matmul_batched<T>(a.data<T>(), b.data<T>(), out.data<T>(), batch, dims, a_batch_stride,
                             b_batch_stride);
  });
}

void matmul(const CudaArray& a, const CudaArray& b, CudaArray& out, int64_t m, int64_t n,
            int64_t p) {
  matmul_batched(a, b, out, 1, m, n, p, 0, 0);
}

void matmul_tiled(const CudaArray& a, const CudaArray& b, CudaArray& out, int64_t m, int64_t n,
                  int64_t p) {
  const char* fn = "matmul_tiled";
  check_dtypes(fn, a, out);
  check_dtypes(fn, b, out);
  for (int64_t v : {m, n, p}) {
    check_nonneg(fn, "dimension", v);
    if (v % kTile != 0) {
      throw std::invalid_argument(std::string(fn) + ": dimensions must be multiples of " +
                                  std::to_string(kTile) + ", got " + shape_str({m, n, p}));
    }
  }
  check_size(fn, "a", a.size, checked_mul(fn, m, n));
  check_size(fn, "b", b.size, checked_mul(fn, n, p));
  check_size_exact(fn, "out", out.size, checked_mul(fn, m, p));
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_matmul_tiled<T, kTile>(a.data<T>(), b.data<T>(), out.data<T>(), m, n, p);
  });
}

// ---- convolution and pooling ----------------------------------------------------------------
void conv_forward_fn(const CudaArray& a, const CudaArray& b, CudaArray& out,
                     const std::vector<int64_t>& geometry) {
  const char* fn = "conv_forward";
  check_dtypes(fn, a, out);
  check_dtypes(fn, b, out);
  const ConvGeom g = parse_conv_geom(fn, geometry);
  check_size(fn, "a", a.size, conv_input_size(fn, g));
  check_size(fn, "b", b.size, conv_weight_size(fn, g));
  check_size_exact(fn, "out", out.size, conv_output_size(fn, g));
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    conv_forward<T>(a.data<T>(), b.data<T>(), out.data<T>(), g);
  });
}

void conv_backward_weight_fn(const CudaArray& a, const CudaArray& grad, CudaArray& out,
                             const std::vector<int64_t>& geometry) {
  const char* fn = "conv_backward_weight";
  check_dtypes(fn, a, out);
  check_dtypes(fn, grad, out);
  const ConvGeom g = parse_conv_geom(fn, geometry);
  check_size(fn, "a", a.size, conv_input_size(fn, g));
  check_size(fn, "grad", grad.size, conv_output_size(fn, g));
  check_size_exact(fn, "out", out.size, conv_weight_size(fn, g));
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    conv_backward_weight<T>(a.data<T>(), grad.data<T>(), out.data<T>(), g);
  });
}

void maxpool_forward_fn(const CudaArray& a, CudaArray& out, const std::vector<int64_t>& geometry) {
  const char* fn = "maxpool_forward";
  check_dtypes(fn, a, out);
  const PoolGeom g = parse_pool_geom(fn, geometry);
  check_size(fn, "a", a.size, pool_input_size(fn, g));
  check_size_exact(fn, "out", out.size, pool_output_size(fn, g));
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    maxpool_forward<T>(a.data<T>(), out.data<T>(), g);
  });
}

void maxpool_backward_fn(const CudaArray& a, const CudaArray& grad, CudaArray& out,
                         const std::vector<int64_t>& geometry) {
  const char* fn = "maxpool_backward";
  check_dtypes(fn, a, out);
  check_dtypes(fn, grad, out);
  const PoolGeom g = parse_pool_geom(fn, geometry);
  const int64_t in_size = pool_input_size(fn, g);
  check_size(fn, "a", a.size, in_size);
  check_size(fn, "grad", grad.size, pool_output_size(fn, g));
  check_size_exact(fn, "out", out.size, in_size);
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    maxpool_backward<T>(a.data<T>(), grad.data<T>(), out.data<T>(), g);
  });
}

// ---- device ------------------------------------------------------------------------------------
// True iff a CUDA device can be used; never throws (no driver, no GPU -> False).
bool device_available() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

// ---- fused kernels --------------------------------------------------------------------------
void sum_rows_fn(const CudaArray& a, CudaArray& out, int64_t rows) {
  check_dtypes("sum_rows", a, out);
  check_nonneg("sum_rows", "rows", rows);
  check_size("sum_rows", "a", a.size, checked_mul("sum_rows", rows, out.size));
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_sum_rows<T>(a.data<T>(), out.data<T>(), rows, out.size);
  });
}

void rows_affine_fn(const CudaArray& a, const CudaArray& b, const CudaArray& s,
                    const CudaArray& t, const CudaArray& u, CudaArray& out) {
  const char* fn = "rows_affine";
  check_dtypes(fn, a, out);
  check_dtypes(fn, b, out);
  check_dtypes(fn, s, out);
  check_dtypes(fn, t, out);
  check_dtypes(fn, u, out);
  const int64_t cols = s.size;
  check_row_vectors(fn, out.size, s.size, t.size, u.size);
  check_size(fn, "a", a.size, out.size);
  check_size(fn, "b", b.size, out.size);
  dispatch(out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_rows_affine<T>(a.data<T>(), b.data<T>(), s.data<T>(), t.data<T>(), u.data<T>(),
                          out.data<T>(), out.size, cols);
  });
}

void adam_step_fn(const CudaArray& param, const CudaArray& grad, const CudaArray& m,
                  const CudaArray& v, const std::vector<double>& hyper, CudaArray& param_out,
                  CudaArray& m_out, CudaArray& v_out) {
  const char* fn = "adam_step";
  check_dtypes(fn, param, param_out);
  check_dtypes(fn, grad, param_out);
  check_dtypes(fn, m, param_out);
  check_dtypes(fn, v, param_out);
  check_dtypes(fn, m_out, param_out);
  check_dtypes(fn, v_out, param_out);
  check_adam_hyper(fn, hyper.size());
  const int64_t n = param_out.size;
  check_size(fn, "param", param.size, n);
  check_size(fn, "grad", grad.size, n);
  check_size(fn, "m", m.size, n);
  check_size(fn, "v", v.size, n);
  check_size(fn, "m_out", m_out.size, n);
  check_size(fn, "v_out", v_out.size, n);
  dispatch(param_out.dtype, [&](auto tag) {
    using T = decltype(tag);
    launch_adam_step<T>(param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(), hyper.data(),
                        param_out.data<T>(), m_out.data<T>(), v_out.data<T>(), n);
  });
}

void synchronize() {
  py::gil_scoped_release release;
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace

#define NEEDLE_EWISE(name, Op)                                                         \
  m.def(#name, [](const CudaArray& a, const CudaArray& b, CudaArray& out) {            \
    ewise<Op>(#name, a, b, out);                                                       \
  }, py::arg("a"), py::arg("b"), py::arg("out"))
#define NEEDLE_SCALAR(name, Op)                                                        \
  m.def(#name, [](const CudaArray& a, double val, CudaArray& out) {                    \
    scalar<Op>(#name, a, val, out);                                                    \
  }, py::arg("a"), py::arg("val"), py::arg("out"))
#define NEEDLE_UNARY(name, Op)                                                         \
  m.def(#name, [](const CudaArray& a, CudaArray& out) { unary<Op>(#name, a, out); },   \
        py::arg("a"), py::arg("out"))

PYBIND11_MODULE(ndarray_backend_cuda, m) {
  m.doc() = "needle CUDA backend: the function table of ndarray_backend_numpy on the GPU";
  m.attr("__device_name__") = "cuda";
  m.attr("__tile_size__") = kTile;

  py::class_<CudaArray>(m, "Array")
      .def(py::init<int64_t, const std::string&>(), py::arg("size"), py::arg("dtype") = "float32")
      .def_property_readonly("size", [](const CudaArray& a) { return a.size; })
      .def_property_readonly("dtype", &CudaArray::dtype_name)
      .def("ptr", [](const CudaArray& a) { return reinterpret_cast<uintptr_t>(a.ptr); });

  m.def("device_available", &device_available);
  m.def("synchronize", &synchronize);
  m.def("pool_cached_bytes", [] { return DevicePool::instance().cached_bytes(); });
  m.def("pool_release", [] { DevicePool::instance().release_cache(); });
  // Sets the conv im2col workspace bound when given a positive value; returns the old one.
  m.def("conv_workspace_bytes", [](int64_t bytes) {
    const int64_t old = workspace_limit();
    if (bytes > 0) workspace_limit() = bytes;
    return old;
  }, py::arg("bytes") = 0);

  m.def("to_numpy", &to_numpy,
        py::arg("a"), py::arg("shape"), py::arg("strides"), py::arg("offset"));
  m.def("from_numpy", &from_numpy, py::arg("a"), py::arg("out"));
  m.def("fill", &fill, py::arg("out"), py::arg("val"));
  m.def("compact", &compact,
        py::arg("a"), py::arg("out"), py::arg("shape"), py::arg("strides"), py::arg("offset"));
  m.def("ewise_setitem", &ewise_setitem,
        py::arg("a"), py::arg("out"), py::arg("shape"), py::arg("strides"), py::arg("offset"));
  m.def("scalar_setitem", &scalar_setitem,
        py::arg("size"), py::arg("val"), py::arg("out"), py::arg("shape"), py::arg("strides"),
        py::arg("offset"));
  m.def("scaled_copy", &scaled_copy,
        py::arg("a"), py::arg("scale"), py::arg("out"), py::arg("offset"));

  NEEDLE_EWISE(ewise_add, OpAdd);
  NEEDLE_SCALAR(scalar_add, OpAdd);
  NEEDLE_EWISE(ewise_sub, OpSub);
  NEEDLE_SCALAR(scalar_sub, OpSub);
  NEEDLE_SCALAR(scalar_rsub, OpRSub);
  NEEDLE_EWISE(ewise_mul, OpMul);
  NEEDLE_SCALAR(scalar_mul, OpMul);
  NEEDLE_EWISE(ewise_div, OpDiv);
  NEEDLE_SCALAR(scalar_div, OpDiv);
  NEEDLE_SCALAR(scalar_rdiv, OpRDiv);
  NEEDLE_EWISE(ewise_power, OpPower);
  NEEDLE_SCALAR(scalar_power, OpPower);
  NEEDLE_SCALAR(scalar_rpower, OpRPower);
  NEEDLE_EWISE(ewise_maximum, OpMaximum);
  NEEDLE_SCALAR(scalar_maximum, OpMaximum);
  NEEDLE_EWISE(ewise_eq, OpEq);
  NEEDLE_SCALAR(scalar_eq, OpEq);
  NEEDLE_EWISE(ewise_ne, OpNe);
  NEEDLE_SCALAR(scalar_ne, OpNe);
  NEEDLE_EWISE(ewise_lt, OpLt);
  NEEDLE_SCALAR(scalar_lt, OpLt);
  NEEDLE_EWISE(ewise_le, OpLe);
  NEEDLE_SCALAR(scalar_le, OpLe);
  NEEDLE_EWISE(ewise_gt, OpGt);
  NEEDLE_SCALAR(scalar_gt, OpGt);
  NEEDLE_EWISE(ewise_ge, OpGe);
  NEEDLE_SCALAR(scalar_ge, OpGe);
  NEEDLE_EWISE(ewise_relu_grad, OpReluGrad);

  NEEDLE_UNARY(ewise_neg, OpNeg);
  NEEDLE_UNARY(ewise_log, OpLog);
  NEEDLE_UNARY(ewise_exp, OpExp);
  NEEDLE_UNARY(ewise_tanh, OpTanh);
  NEEDLE_UNARY(ewise_sqrt, OpSqrt);
  NEEDLE_UNARY(ewise_abs, OpAbs);
  NEEDLE_UNARY(ewise_sign, OpSign);
  NEEDLE_UNARY(ewise_sigmoid, OpSigmoid);
  NEEDLE_UNARY(ewise_relu, OpRelu);

  m.def("reduce_sum", [](const CudaArray& a, CudaArray& out, int64_t reduce_size) {
    reduce<ReduceSum>("reduce_sum", a, out, reduce_size);
  }, py::arg("a"), py::arg("out"), py::arg("reduce_size"));
  m.def("reduce_max", [](const CudaArray& a, CudaArray& out, int64_t reduce_size) {
    reduce<ReduceMax>("reduce_max", a, out, reduce_size);
  }, py::arg("a"), py::arg("out"), py::arg("reduce_size"));

  m.def("matmul", &matmul,
        py::arg("a"), py::arg("b"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("p"));
  m.def("matmul_batched", &matmul_batched, py::arg("a"), py::arg("b"), py::arg("out"),
        py::arg("batch"), py::arg("m"), py::arg("n"), py::arg("p"), py::arg("a_batch_stride"),
        py::arg("b_batch_stride"));
  m.def("matmul_tiled", &matmul_tiled,
        py::arg("a"), py::arg("b"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("p"));

  m.def("conv_forward", &conv_forward_fn,
        py::arg("a"), py::arg("b"), py::arg("out"), py::arg("geom"));
  m.def("conv_backward_weight", &conv_backward_weight_fn,
        py::arg("a"), py::arg("grad"), py::arg("out"), py::arg("geom"));
  m.def("maxpool_forward", &maxpool_forward_fn, py::arg("a"), py::arg("out"), py::arg("geom"));
  m.def("maxpool_backward", &maxpool_backward_fn,
        py::arg("a"), py::arg("grad"), py::arg("out"), py::arg("geom"));
  m.def("sum_rows", &sum_rows_fn, py::arg("a"), py::arg("out"), py::arg("rows"));
  m.def("rows_affine", &rows_affine_fn, py::arg("a"), py::arg("b"), py::arg("s"), py::arg("t"),
        py::arg("u"), py::arg("out"));
  m.def("adam_step", &adam_step_fn, py::arg("param"), py::arg("grad"), py::arg("m"),
        py::arg("v"), py::arg("hyper"), py::arg("param_out"), py::arg("m_out"), py::arg("v_out"));

  m.def("lstm_step_forward", &lstm_step_forward_fn, py::arg("xw"), py::arg("hw"), py::arg("c0"),
        py::arg("act"), py::arg("c_all"), py::arg("h_all"), py::arg("t"), py::arg("batch"),
        py::arg("hidden"));
  m.def("lstm_step_backward", &lstm_step_backward_fn, py::arg("act"), py::arg("c_all"),
        py::arg("c0"), py::arg("d_out"), py::arg("dh_mat"), py::arg("dc"), py::arg("dgates"),
        py::arg("t"), py::arg("batch"), py::arg("hidden"));
  m.def("rnn_step_forward", &rnn_step_forward_fn, py::arg("xw"), py::arg("hw"), py::arg("h_all"),
        py::arg("t"), py::arg("batch"), py::arg("hidden"), py::arg("relu"));
  m.def("rnn_step_backward", &rnn_step_backward_fn, py::arg("h_all"), py::arg("d_out"),
        py::arg("dh_mat"), py::arg("dgates"), py::arg("t"), py::arg("batch"), py::arg("hidden"),
        py::arg("relu"));
  m.def("gru_step_forward", &gru_step_forward_fn, py::arg("xw"), py::arg("hw"), py::arg("bhh"),
        py::arg("h0"), py::arg("act"), py::arg("h_all"), py::arg("t"), py::arg("batch"),
        py::arg("hidden"));
  m.def("gru_step_backward", &gru_step_backward_fn, py::arg("act"), py::arg("h0"),
        py::arg("h_all"), py::arg("d_out"), py::arg("dh_mat"), py::arg("dh_carry"), py::arg("dgx"),
        py::arg("dgh"), py::arg("t"), py::arg("batch"), py::arg("hidden"));
  m.def("gather_rows", &gather_rows_fn, py::arg("table"), py::arg("idx"), py::arg("out"),
        py::arg("rows"), py::arg("dim"));
  m.def("scatter_add_rows", &scatter_add_rows_fn, py::arg("grad"), py::arg("idx"), py::arg("out"),
        py::arg("rows"), py::arg("dim"));
}
