// Reductions over contiguous groups: out[i] = reduce(a[i * size : (i + 1) * size]) for sum
// and max (max propagates NaN, like NumPy). Three kernels by group size: one thread per
// group (tiny groups), one warp per group (warp-shuffle reduction), one block per segment
// (warp shuffles, then shared memory across warps). Long groups with few outputs are split
// into segments whose partial results a second pass reduces, so the whole GPU works.
#pragma once

#include <cmath>
#include <limits>

#include "cuda/common.cuh"

namespace needle {
namespace cuda {

struct ReduceSum {
  template <class T> __device__ static T identity() { return T(0); }
  template <class T> __device__ static T combine(T a, T b) { return a + b; }
};

struct ReduceMax {
  template <class T> __device__ static T identity() { return neg_inf<T>(); }
  template <class T> __device__ static T combine(T a, T b) { return nan_max(a, b); }
};

template <class Op, class T>
__device__ __forceinline__ T warp_reduce(T v) {
  for (int delta = 16; delta > 0; delta >>= 1) {
    v = Op::combine(v, __shfl_down_sync(0xffffffffu, v, delta));
  }
  return v;
}

template <class Op, class T>
__global__ void reduce_thread_kernel(const T* a, T* out, int64_t rows, int64_t size) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows;
       r += int64_t(blockDim.x) * gridDim.x) {
    const T* row = a + r * size;
    T acc = row[0];
    for (int64_t k = 1; k < size; ++k) acc = Op::combine(acc, row[k]);
    out[r] = acc;
  }
}

template <class Op, class T>
__global__ void reduce_warp_kernel(const T* a, T* out, int64_t rows, int64_t size) {
  const int lane = threadIdx.x & 31;
  const int64_t warps_per_grid = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; r < rows;
       r += warps_per_grid) {
    const T* row = a + r * size;
    T acc = Op::template identity<T>();
    for (int64_t k = lane; k < size; k += 32) acc = Op::combine(acc, row[k]);
    acc = warp_reduce<Op>(acc);
    if (lane == 0) out[r] = acc;
  }
}

// Segment s covers row s / chunks, elements [c * chunk, min(size, (c + 1) * chunk)) of it,
// c = s % chunks; its result goes to out[s].
template <class Op, class T>
__global__ void reduce_block_kernel(const T* a, T* out, int64_t segments, int64_t size,
                                    int64_t chunks, int64_t chunk) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
  const int nwarps = blockDim.x / 32;
  for (int64_t s = blockIdx.x; s < segments; s += gridDim.x) {
    const int64_t r = s / chunks, c = s - r * chunks;
    const int64_t begin = c * chunk, end = begin + chunk < size ? begin + chunk : size;
    const T* row = a + r * size;
    T acc = Op::template identity<T>();
    for (int64_t k = begin + threadIdx.x; k < end; k += blockDim.x) {
      acc = Op::combine(acc, row[k]);
    }
    acc = warp_reduce<Op>(acc);
    if (lane == 0) partial[warp] = acc;
    __syncthreads();
    if (warp == 0) {
      acc = lane < nwarps ? partial[lane] : Op::template identity<T>();
      acc = warp_reduce<Op>(acc);
      if (lane == 0) out[s] = acc;
    }
    __syncthreads();  // partial[] is reused by the next segment
  }
}

template <class Op, class T>
void launch_reduce(const T* a, T* out, int64_t rows, int64_t size) {
  if (rows <= 0) return;
  if (size <= 8) {
    reduce_thread_kernel<Op, T><<<grid_for(rows), kThreads>>>(a, out, rows, size);
    check_launch("reduce_thread_kernel");
    return;
  }
  if (size <= 1024) {
    // one warp per row: kThreads / 32 rows per block
    reduce_warp_kernel<Op, T><<<grid_for(rows * 32), kThreads>>>(a, out, rows, size);
    check_launch("reduce_warp_kernel");
    return;
  }
  // Long rows: split into chunks so that at least ~4 blocks per SM are busy.
  const int64_t want_segments = int64_t(sm_count()) * 4;
  int64_t chunks = 1;
  if (rows < want_segments) {
    chunks = std::min<int64_t>(ceil_div<int64_t>(want_segments, rows),
                               ceil_div<int64_t>(size, 4096));
    chunks = std::max<int64_t>(chunks, 1);
  }
  const int64_t chunk = ceil_div<int64_t>(size, chunks);
  chunks = ceil_div<int64_t>(size, chunk);  // no empty chunk
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(rows * chunks, 1 << 20));
  if (chunks == 1) {
    reduce_block_kernel<Op, T><<<grid, kThreads>>>(a, out, rows, size, 1, size);
    check_launch("reduce_block_kernel");
    return;
  }
  Workspace<T> partials(rows * chunks);
  reduce_block_kernel<Op, T><<<grid, kThreads>>>(a, partials.get(), rows * chunks, size, chunks,
                                                 chunk);
  check_launch("reduce_block_kernel");
  launch_reduce<Op, T>(partials.get(), out, rows, chunks);
}

}  // namespace cuda
}  // namespace needle
