// Shared CUDA plumbing: error checks that throw (never exit), launch helpers, the size-keyed
// device memory pool that every buffer and workspace comes from, and NaN-aware max.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace needle {
namespace cuda {

// Throws std::runtime_error (-> RuntimeError in Python) naming the call, the file and the line.
#define CUDA_CHECK(expr)                                                                   \
  do {                                                                                     \
    cudaError_t err_ = (expr);                                                             \
    if (err_ != cudaSuccess) {                                                             \
      (void)cudaGetLastError();                                                            \
      throw std::runtime_error(std::string("CUDA error in ") + #expr + " at " + __FILE__ + \
                               ":" + std::to_string(__LINE__) + ": " +                     \
                               cudaGetErrorString(err_));                                  \
    }                                                                                      \
  } while (0)

// Every launch is followed by this: a bad configuration surfaces as a Python exception.
inline void check_launch(const char* kernel) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA launch of ") + kernel +
                             " failed: " + cudaGetErrorString(err));
  }
}

template <class I>
__host__ __device__ constexpr I ceil_div(I a, I b) {
  return (a + b - 1) / b;
}

constexpr int kThreads = 256;  // block size of the memory-bound kernels

// Grid for a grid-stride loop over n elements: enough blocks to fill the GPU, never more
// than the hardware limit (the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t blocks = ceil_div<int64_t>(n, threads);
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, 1 << 20)));
}

inline int sm_count() {
  static int count = [] {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      return 108;
    }
    return n;
  }();
  return count;
}

template <class T>
__host__ __device__ __forceinline__ T neg_inf() {
  return static_cast<T>(-HUGE_VAL);
}

// max that propagates NaN like np.maximum / np.max: a NaN on either side wins.
template <class T>
__device__ __forceinline__ T nan_max(T a, T b) {
  return (a > b || a != a) ? a : b;
}

// ---- device memory pool -----------------------------------------------------------------
// Freed buffers are kept in a free list keyed by their (rounded) byte size and handed out
// again for the same size, so a steady-state training step does no cudaMalloc/cudaFree
// (both synchronize the device). All work runs on the legacy default stream, so a buffer
// returned here may be reused at once: later kernels are ordered after earlier ones.
// The cache holds at most `cap` bytes; beyond that, freed buffers go back to the driver.
// On an out-of-memory error the cache is released and the allocation retried once.
class DevicePool {
 public:
  static DevicePool& instance() {
    // Never destroyed: freeing device memory during interpreter exit, after the CUDA
    // runtime may already be torn down, is an error; the driver reclaims it at exit.
    static DevicePool* pool = new DevicePool();
    return *pool;
  }

  static size_t round_bytes(size_t bytes) {
    const size_t align = bytes < (1 << 20) ? 512 : (1 << 16);
    return ceil_div(bytes, align) * align;
  }

  void* allocate(size_t bytes) {
    if (bytes == 0) return nullptr;
    bytes = round_bytes(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        return p;
      }
    }
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cache();
      err = cudaMalloc(&p, bytes);
    }
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      throw std::runtime_error("CUDA: cannot allocate " + std::to_string(bytes) +
                               " bytes: " + cudaGetErrorString(err));
    }
    return p;
  }

  void release(void* p, size_t bytes) noexcept {
    if (p == nullptr) return;
    bytes = round_bytes(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_ + bytes <= cap_) {
        free_[bytes].push_back(p);
        cached_ += bytes;
        return;
      }
    }
    (void)cudaFree(p);
    (void)cudaGetLastError();
  }

  void release_cache() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& kv : free_) {
      for (void* p : kv.second) (void)cudaFree(p);
    }
    (void)cudaGetLastError();
    free_.clear();
    cached_ = 0;
  }

  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  size_t cap() const { return cap_; }

 private:
  DevicePool() = default;
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
  size_t cap_ = size_t(4) << 30;  // 4 GiB of cached buffers at most
};

// A scratch buffer from the pool for the duration of one call (RAII).
template <class T>
class Workspace {
 public:
  explicit Workspace(int64_t count)
      : bytes_(static_cast<size_t>(count) * sizeof(T)),
        ptr_(static_cast<T*>(DevicePool::instance().allocate(bytes_))) {}
  ~Workspace() { DevicePool::instance().release(ptr_, bytes_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  T* get() const { return ptr_; }

 private:
  size_t bytes_;
  T* ptr_;
};

}  // namespace cuda
}  // namespace needle
