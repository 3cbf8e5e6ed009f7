// Strided copies between an N-d view (shape, strides, offset; strides may be negative or 0)
// and a compact buffer: compact (gather), ewise_setitem (scatter) and scalar_setitem (fill
// a view). The host first merges axes that are contiguous with their neighbour and drops
// size-1 axes, so most views reach the kernel as 1-3 axes; index math is int64 throughout.
#pragma once

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

// Buffer index of the i-th element (row-major order) of the view.
__device__ __forceinline__ int64_t strided_index(const StridedLayout& L, int64_t i) {
  int64_t idx = L.offset;
  for (int d = L.ndim - 1; d >= 0; --d) {
    int64_t q = i / L.shape[d];
    idx += (i - q * L.shape[d]) * L.strides[d];
    i = q;
  }
  return idx;
}

template <class T>
__global__ void compact_kernel(const T* a, T* out, int64_t n, StridedLayout L) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    out[i] = a[strided_index(L, i)];
  }
}

template <class T>
__global__ void setitem_kernel(const T* a, T* out, int64_t n, StridedLayout L) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    out[strided_index(L, i)] = a[i];
  }
}

template <class T>
__global__ void scalar_setitem_kernel(T val, T* out, int64_t n, StridedLayout L) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    out[strided_index(L, i)] = val;
  }
}

template <class T>
void launch_compact(const T* a, T* out, int64_t n, const StridedLayout& L) {
  if (n <= 0) return;
  if (L.ndim == 1 && L.strides[0] == 1) {
    CUDA_CHECK(cudaMemcpyAsync(out, a + L.offset, n * sizeof(T), cudaMemcpyDeviceToDevice));
    return;
  }
  compact_kernel<T><<<grid_for(n), kThreads>>>(a, out, n, L);
  check_launch("compact_kernel");
}

template <class T>
void launch_setitem(const T* a, T* out, int64_t n, const StridedLayout& L) {
  if (n <= 0) return;
  if (L.ndim == 1 && L.strides[0] == 1) {
    CUDA_CHECK(cudaMemcpyAsync(out + L.offset, a, n * sizeof(T), cudaMemcpyDeviceToDevice));
    return;
  }
  setitem_kernel<T><<<grid_for(n), kThreads>>>(a, out, n, L);
  check_launch("setitem_kernel");
}

template <class T>
void launch_scalar_setitem(T val, T* out, int64_t n, const StridedLayout& L) {
  if (n <= 0) return;
  scalar_setitem_kernel<T><<<grid_for(n), kThreads>>>(val, out, n, L);
  check_launch("scalar_setitem_kernel");
}

}  // namespace cuda
}  // namespace needle
