// checks.h: the argument checks both bindings run before any kernel, host side only (no CUDA,
// no OpenMP: included by g++ and nvcc alike).  Every helper takes the bound function's name
// first, then the argument's name, then the numbers, and throws std::invalid_argument
// (-> ValueError) or std::out_of_range (-> IndexError) with all of them in the message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace needle {

/// "(2, 3)", "(4,)" or "()", as Python prints a tuple.
inline std::string shape_str(const std::vector<std::int64_t>& v) {
  std::string s = "(";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + (v.size() == 1 ? ",)" : ")");
}

/// ValueError unless v >= 0.
inline void check_nonneg(const char* fn, const char* name, std::int64_t v) {
  if (v < 0)
    throw std::invalid_argument(std::string(fn) + ": " + name + " must be non-negative, got " +
                                std::to_string(v));
}

/// a * b, or ValueError when the product overflows int64.
inline std::int64_t checked_mul(const char* fn, std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    throw std::invalid_argument(std::string(fn) + ": size overflows int64 (" + std::to_string(a) +
                                " * " + std::to_string(b) + ")");
  return r;
}

/// The product of non-negative sizes, or ValueError (a negative size, or int64 overflow).
inline std::int64_t checked_prod(const char* fn, std::initializer_list<std::int64_t> sizes) {
  std::int64_t n = 1;
  for (std::int64_t d : sizes) {
    check_nonneg(fn, "size", d);
    n = checked_mul(fn, n, d);
  }
  return n;
}

/// ValueError unless buffer `name` holds at least `need` elements.
inline void check_size(const char* fn, const char* name, std::int64_t have, std::int64_t need) {
  if (have < need)
    throw std::invalid_argument(std::string(fn) + ": " + name + " has " + std::to_string(have) +
                                " elements, needs at least " + std::to_string(need));
}

/// ValueError unless buffer `name` holds exactly `need` elements.
inline void check_size_exact(const char* fn, const char* name, std::int64_t have,
                             std::int64_t need) {
  if (have != need)
    throw std::invalid_argument(std::string(fn) + ": " + name + " has " + std::to_string(have) +
                                " elements, expected " + std::to_string(need));
}

/// Number of elements of the view (shape, strides, offset) of buffer `name`; IndexError if
/// any element it reaches (strides may be negative or zero) falls outside the buffer's
/// `buf_size` elements, ValueError for a negative dimension or mismatched lengths.
inline std::int64_t check_view(const char* fn, const char* name,
                               const std::vector<std::int64_t>& shape,
                               const std::vector<std::int64_t>& strides, std::int64_t offset,
                               std::int64_t buf_size) {
  if (shape.size() != strides.size())
    throw std::invalid_argument(std::string(fn) + ": shape " + shape_str(shape) + " and strides " +
                                shape_str(strides) + " differ in length");
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (d < 0)
      throw std::invalid_argument(std::string(fn) + ": negative dimension in shape " +
                                  shape_str(shape));
    n = checked_mul(fn, n, d);
  }
  if (n == 0) return 0;
  std::int64_t lo = offset, hi = offset;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::int64_t ext = checked_mul(fn, shape[i] - 1, strides[i]);
    if (__builtin_add_overflow(ext < 0 ? lo : hi, ext, ext < 0 ? &lo : &hi))
      throw std::out_of_range(std::string(fn) + ": view extent overflows int64");
  }
  if (lo < 0 || hi >= buf_size)
    throw std::out_of_range(std::string(fn) + ": view shape " + shape_str(shape) + " strides " +
                            shape_str(strides) + " offset " + std::to_string(offset) +
                            " reaches elements [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "], outside " + name + ", a buffer of " +
                            std::to_string(buf_size));
  return n;
}

/// ValueError unless reduce_size >= 1 (reduce_sum, reduce_max).
inline void check_reduce_size(const char* fn, std::int64_t reduce_size) {
  if (reduce_size < 1)
    throw std::invalid_argument(std::string(fn) + ": reduce_size must be >= 1, got " +
                                std::to_string(reduce_size));
}

/// rows_affine's per-column vectors s, t, u: one size C >= 1 that divides out's size.
inline void check_row_vectors(const char* fn, std::int64_t out_size, std::int64_t s_size,
                              std::int64_t t_size, std::int64_t u_size) {
  if (s_size < 1 || t_size != s_size || u_size != s_size || out_size % s_size != 0)
    throw std::invalid_argument(std::string(fn) + ": s, t, u need the same size C >= 1 " +
                                "dividing out's " + std::to_string(out_size) +
                                " elements, got " + std::to_string(s_size) + ", " +
                                std::to_string(t_size) + ", " + std::to_string(u_size));
}

/// adam_step's hyper-parameters: (step_size, beta1, beta2, correction2, eps, weight_decay).
inline void check_adam_hyper(const char* fn, std::size_t count) {
  if (count != 6)
    throw std::invalid_argument(std::string(fn) + ": hyper needs 6 values (step_size, beta1, " +
                                "beta2, correction2, eps, weight_decay), got " +
                                std::to_string(count));
}

/// The sizes of one step of a recurrent kernel (needle.backend_ndarray.sequence): after
/// checking t, batch, hidden >= 0, `state` = B·H and `gates` = B·units·H elements.
struct StepSizes {
  std::int64_t state, gates;
};

inline StepSizes check_step(const char* fn, std::int64_t t, std::int64_t batch,
                            std::int64_t hidden, std::int64_t units) {
  check_nonneg(fn, "t", t);
  const std::int64_t state = checked_prod(fn, {batch, hidden});
  return {state, checked_mul(fn, state, units)};
}

/// ValueError unless the (T, B, W) buffer `name` reaches step t: (t + 1)·per_step elements.
inline void check_steps(const char* fn, const char* name, std::int64_t have, std::int64_t t,
                        std::int64_t per_step) {
  check_size(fn, name, have, checked_mul(fn, t + 1, per_step));
}

/// IndexError naming the first row number (stored as a float) outside [0, rows) or not whole.
template <class T>
inline void check_row_indices(const char* fn, const T* idx, std::int64_t n, std::int64_t rows) {
  for (std::int64_t k = 0; k < n; ++k) {
    const T v = idx[k];
    if (!(v >= T(0) && v < T(rows)) || v != static_cast<T>(static_cast<std::int64_t>(v)))
      throw std::out_of_range(std::string(fn) + ": index " + std::to_string(double(v)) +
                              " at position " + std::to_string(k) + " outside [0, " +
                              std::to_string(rows) + ")");
  }
}

}  // namespace needle
