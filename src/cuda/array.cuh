// The CUDA backend's Array (a pooled device buffer with its dtype), the dtype dispatch and the
// dtype check that the bindings in ndarray_backend_cuda.cu and cuda/*_bindings.cuh share.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/common.cuh"

namespace needle {
namespace cuda {

namespace py = pybind11;

enum class DType { f32, f64 };

DType parse_dtype(const std::string& name) {
  if (name == "float32") return DType::f32;
  if (name == "float64") return DType::f64;
  throw py::type_error("Array: unsupported dtype '" + name +
                       "'; expected one of ('float32', 'float64')");
}

// A flat device buffer of `size` elements of `dtype`.
struct CudaArray {
  CudaArray(int64_t n, const std::string& dtype_name) : dtype(parse_dtype(dtype_name)) {
    if (n < 0) {
      throw std::invalid_argument("Array: size must be non-negative, got " + std::to_string(n));
    }
    size = n;
    ptr = DevicePool::instance().allocate(bytes());
  }
  ~CudaArray() { DevicePool::instance().release(ptr, bytes()); }
  CudaArray(const CudaArray&) = delete;
  CudaArray& operator=(const CudaArray&) = delete;

  size_t itemsize() const { return dtype == DType::f32 ? sizeof(float) : sizeof(double); }
  size_t bytes() const { return static_cast<size_t>(size) * itemsize(); }
  std::string dtype_name() const { return dtype == DType::f32 ? "float32" : "float64"; }
  template <class T>
  T* data() const { return static_cast<T*>(ptr); }

  void* ptr = nullptr;
  int64_t size = 0;
  DType dtype;
};

// Runs f(float{}) or f(double{}) for the buffer's dtype.
template <class F>
auto dispatch(DType dtype, F&& f) {
  if (dtype == DType::f32) return f(float{});
  return f(double{});
}

// ---- argument checks (the shared ones are in src/common/checks.h) ---------------------
void check_dtypes(const char* fn, const CudaArray& a, const CudaArray& out) {
  if (a.dtype != out.dtype) {
    throw py::type_error(std::string(fn) + ": dtype mismatch, " + a.dtype_name() + " input vs " +
                         out.dtype_name() + " out");
  }
}

}  // namespace cuda
}  // namespace needle
