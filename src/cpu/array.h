// The CPU backend's Array (a pooled, 64-byte aligned buffer with its dtype), the dtype helpers
// and the GIL release that the bindings in ndarray_backend_cpu.cc and cpu/*_bindings.h share.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>

#include "common/checks.h"
#include "cpu/common.h"

namespace needle {
namespace cpu {

namespace py = pybind11;

using Shape = std::vector<std::int64_t>;

/// A flat, 64-byte aligned buffer of `size` float32 or float64 elements from the pool.
class Array {
 public:
  Array(std::int64_t size, DType dtype) : size_(size), dtype_(dtype) {
    check_nonneg("Array", "size", size);
    bytes_ = std::size_t(checked_mul("Array", std::max<std::int64_t>(size, 1),
                                     std::int64_t(dtype_bytes(dtype))));
    ptr_ = BufferPool::instance().acquire(bytes_);
  }
  ~Array() { BufferPool::instance().release(ptr_, bytes_); }
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;

  std::int64_t size() const { return size_; }
  DType dtype() const { return dtype_; }
  std::uintptr_t address() const { return reinterpret_cast<std::uintptr_t>(ptr_); }
  template <class T>
  T* data() const {
    return static_cast<T*>(ptr_);
  }

 private:
  std::int64_t size_;
  DType dtype_;
  std::size_t bytes_;
  void* ptr_;
};

DType dtype_from_object(const py::object& obj) {
  if (py::isinstance<py::str>(obj)) return parse_dtype(obj.cast<std::string>());
  try {
    py::object np_dtype = py::module_::import("numpy").attr("dtype")(obj);
    return parse_dtype(np_dtype.attr("name").cast<std::string>());
  } catch (const py::error_already_set&) {
    throw DTypeError("Array: unsupported dtype " + std::string(py::repr(obj)));
  }
}

/// TypeError unless every array has the dtype of the first.
void check_dtypes(const char* fn, std::initializer_list<const Array*> arrays) {
  DType d = (*arrays.begin())->dtype();
  for (const Array* a : arrays)
    if (a->dtype() != d) {
      std::string msg = std::string(fn) + ": dtype mismatch:";
      for (const Array* b : arrays) msg += std::string(" ") + dtype_name(b->dtype());
      throw DTypeError(msg);
    }
}

/// Releases the GIL for the lifetime of the object when `work` is large.
struct ReleaseGil {
  explicit ReleaseGil(std::int64_t work) {
    if (work >= (1 << 14)) release.emplace();
  }
  std::optional<py::gil_scoped_release> release;
};

}  // namespace cpu
}  // namespace needle
