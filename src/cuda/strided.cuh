// Strided copies between an N-d view (shape, strides, offset; strides may be negative or 0)
// and a compact buffer: compact (gather), ewise_setitem (scatter) and scalar_setitem (fill
// a view). The host first merges axes that are contiguous with their neighbour and drops
// size-1 axes, so most views reach the kernel as 1-3 axes; index math is int64 throughout.
#pragma once

#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/common.cuh"

namespace needle {
namespace cuda {

constexpr int kMaxDims = 16;

struct StridedLayout {
  int ndim;
  int64_t offset;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
};

// Merges axes (size-1 axes dropped; axis i folds into i+1 when strides[i] equals
// shape[i+1] * strides[i+1]). Throws std::invalid_argument if more than kMaxDims remain.
inline StridedLayout make_layout(const std::vector<int64_t>& shape,
                                 const std::vector<int64_t>& strides, int64_t offset) {
  std::vector<int64_t> sh, st;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!sh.empty() && st.back() == shape[i] * strides[i]) {
      sh.back() *= shape[i];
      st.back() = strides[i];
    } else {
      sh.push_back(shape[i]);
      st.push_back(strides[i]);
    }
  }
  if (sh.size() > static_cast<size_t>(kMaxDims)) {
    throw std::invalid_argument("strided view has " + std::to_string(sh.size()) +
                                " non-mergeable axes; the CUDA backend supports " +
                                std::to_string(kMaxDims));
  }
  StridedLayout layout{};
  layout.ndim = static_cast<int>(sh.size());
  layout.offset = offset;
  for (size_t i = 0; i < sh.size(); ++i) {
    layout.shape[i] = sh[i];
    layout.strides[i] = st[i];
  }
  return layout;
}

// The layout in index type I (int when the view and its buffer fit: 64-bit division, done
// once per axis per element here, is several times slower than 32-bit).
template <class I>
struct LayoutT {
  int ndim;
  I offset;
  I shape[kMaxDims];
  I strides[kMaxDims];
};

template <class I>
inline LayoutT<I> narrow(const StridedLayout& L) {
  LayoutT<I> out{};
  out.ndim = L.ndim;
  out.offset = static_cast<I>(L.offset);
  for (int d = 0; d < L.ndim; ++d) {
    out.shape[d] = static_cast<I>(L.shape[d]);
    out.strides[d] = static_cast<I>(L.strides[d]);
  }
  return out;
}

// Buffer index of the i-th element (row-major order) of the view.
template <class I>
__device__ __forceinline__ I strided_index(const LayoutT<I>& L, I i) {
  I idx = L.offset;
  for (int d = L.ndim - 1; d >= 0; --d) {
    const I q = i / L.shape[d];
    idx += (i - q * L.shape[d]) * L.strides[d];
    i = q;
  }
  return idx;
}

// MODE 0: out[i] = a[view(i)] (compact); 1: out[view(i)] = a[i] (setitem);
// 2: out[view(i)] = val (scalar setitem).
template <class T, class I, int MODE>
__global__ void strided_kernel(const T* a, T val, T* out, I n, LayoutT<I> L) {
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(blockDim.x) * gridDim.x) {
    if (MODE == 0) {
      out[i] = a[strided_index(L, i)];
    } else if (MODE == 1) {
      out[strided_index(L, i)] = a[i];
    } else {
      out[strided_index(L, i)] = val;
    }
  }
}

// `buffer_size`: elements of the strided buffer (bounds every index of the view).
template <class T, int MODE>
void launch_strided(const T* a, T val, T* out, int64_t n, const StridedLayout& L,
                    int64_t buffer_size) {
  if (n <= 0) return;
  const int64_t lim = std::numeric_limits<int>::max() / 2;
  if (n < lim && buffer_size < lim) {
    strided_kernel<T, int, MODE><<<grid_for(n), kThreads>>>(a, val, out, int(n), narrow<int>(L));
  } else {
    strided_kernel<T, int64_t, MODE><<<grid_for(n), kThreads>>>(a, val, out, n, narrow<int64_t>(L));
  }
  check_launch("strided_kernel");
}

template <class T>
void launch_compact(const T* a, T* out, int64_t n, const StridedLayout& L, int64_t a_size) {
  if (n <= 0) return;
  if (L.ndim == 1 && L.strides[0] == 1) {
    CUDA_CHECK(cudaMemcpyAsync(out, a + L.offset, n * sizeof(T), cudaMemcpyDeviceToDevice));
    return;
  }
  launch_strided<T, 0>(a, T(0), out, n, L, a_size);
}

template <class T>
void launch_setitem(const T* a, T* out, int64_t n, const StridedLayout& L, int64_t out_size) {
  if (n <= 0) return;
  if (L.ndim == 1 && L.strides[0] == 1) {
    CUDA_CHECK(cudaMemcpyAsync(out + L.offset, a, n * sizeof(T), cudaMemcpyDeviceToDevice));
    return;
  }
  launch_strided<T, 1>(a, T(0), out, n, L, out_size);
}

template <class T>
void launch_scalar_setitem(T val, T* out, int64_t n, const StridedLayout& L, int64_t out_size) {
  launch_strided<T, 2>(nullptr, val, out, n, L, out_size);
}

// host[0, n) <- the view L of the device buffer a (a_size elements), waiting for the copy:
// one transfer when the view is contiguous, else a compact into a pooled workspace first.
template <class T>
void copy_to_host(const T* a, T* host, int64_t n, const StridedLayout& L, int64_t a_size) {
  if (n <= 0) return;
  if (L.ndim == 0 || (L.ndim == 1 && L.strides[0] == 1)) {
    CUDA_CHECK(cudaMemcpy(host, a + L.offset, n * sizeof(T), cudaMemcpyDeviceToHost));
    return;
  }
  Workspace<T> tmp(n);
  launch_compact<T>(a, tmp.get(), n, L, a_size);
  CUDA_CHECK(cudaMemcpy(host, tmp.get(), n * sizeof(T), cudaMemcpyDeviceToHost));
}

}  // namespace cuda
}  // namespace needle
