// common.h: what every CPU kernel shares: the dtype tag and its dispatch, the size-keyed
// buffer pool behind Array and kernel workspaces, and the OpenMP range splitter used by the
// kernels.  The argument checks both bindings share are in src/common/checks.h.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <sys/mman.h>

#include "common/checks.h"
#include "cpu/arena.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace needle {
namespace cpu {

// ---- dtypes -------------------------------------------------------------------------------

enum class DType { F32, F64 };

/// Raised for unsupported or mismatched dtypes; translated to Python's TypeError.
struct DTypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline const char* dtype_name(DType d) { return d == DType::F32 ? "float32" : "float64"; }

inline std::size_t dtype_bytes(DType d) { return d == DType::F32 ? 4 : 8; }

inline DType parse_dtype(const std::string& s) {
  if (s == "float32") return DType::F32;
  if (s == "float64") return DType::F64;
  throw DTypeError("Array: unsupported dtype '" + s + "'; expected float32 or float64");
}

/// Calls f(T{}) with T = float or double according to d.
template <class F>
decltype(auto) dispatch(DType d, F&& f) {
  if (d == DType::F32) return f(float{});
  return f(double{});
}

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

/// Native SIMD width and GCC vector types of that width (the compiler picks the instructions).
template <class T> struct VecOf;
template <> struct VecOf<float> { typedef float type __attribute__((vector_size(kVecBytes))); };
template <> struct VecOf<double> { typedef double type __attribute__((vector_size(kVecBytes))); };

// ---- the buffer pool ----------------------------------------------------------------------

/// Size-keyed free lists of 64-byte aligned buffers.  A fresh large allocation costs page
/// faults on first touch (~0.14 ms/MiB, 0.5-1 ms/MiB for memory the process never touched),
/// so freed buffers are kept and handed out again for the same size class; a steady-state
/// training step then makes no fresh allocations.  Size classes waste at most 1/8 of a
/// request.  The cache is capped (kMaxCachedBytes): a buffer released while the cache is full
/// is returned to the system.
///
/// Buffers of kMapBytes and more are mapped with MAP_POPULATE: the kernel fills the pages in
/// one call instead of one fault per page, which halves what a first training step pays for
/// the memory it is the first to touch (measured 0.36 against 0.7 ms/MiB), and the first of
/// them come from an arena whose pages a background thread filled ahead of time (cpu/arena.h).
class BufferPool {
 public:
  static constexpr std::size_t kMaxCachedBytes = std::size_t(2) << 30;  // 2 GiB
  static constexpr std::size_t kMapBytes = std::size_t(256) << 10;       // 256 KiB

  struct Stats {
    std::uint64_t fresh_allocs = 0, fresh_bytes = 0, reuses = 0, cached_bytes = 0;
  };

  /// The process-wide pool.  Never destroyed, so Arrays freed during interpreter shutdown
  /// still find it.
  static BufferPool& instance() {
    static BufferPool* pool = new BufferPool();
    return *pool;
  }

  /// Starts filling the arena that the first large fresh buffers come from (cpu/arena.h).
  BufferPool() { PrefilledArena::instance().start(); }

  static std::size_t size_class(std::size_t bytes) {
    if (bytes <= 4096) return std::max<std::size_t>(64, (bytes + 63) & ~std::size_t(63));
    int log2 = 63 - __builtin_clzll(bytes);
    std::size_t step = std::size_t(1) << (log2 - 3);
    return (bytes + step - 1) & ~(step - 1);
  }

  /// A buffer of at least `bytes` bytes; `bytes` is rounded up to its size class.
  void* acquire(std::size_t& bytes) {
    bytes = size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        stats_.cached_bytes -= bytes;
        stats_.reuses++;
        return p;
      }
      stats_.fresh_allocs++;
      stats_.fresh_bytes += bytes;
    }
    return system_alloc(bytes);
  }

  void release(void* p, std::size_t bytes) {
    if (!p) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stats_.cached_bytes + bytes <= kMaxCachedBytes) {
        free_[bytes].push_back(p);
        stats_.cached_bytes += bytes;
        return;
      }
    }
    system_free(p, bytes);
  }

  /// Returns every cached buffer to the system.
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& kv : free_)
      for (void* p : kv.second) system_free(p, kv.first);
    free_.clear();
    stats_.cached_bytes = 0;
  }

  Stats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  // Size classes are deterministic, so a buffer's size tells how it was allocated.
  static void* system_alloc(std::size_t bytes) {
    if (bytes >= kMapBytes) {
      if (void* p = PrefilledArena::instance().take(bytes)) return p;
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
      if (p != MAP_FAILED) return p;  // page aligned, so 64-byte aligned too
      throw std::bad_alloc();
    }
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }

  static void system_free(void* p, std::size_t bytes) {
    if (bytes >= kMapBytes)
      munmap(p, bytes);
    else
      std::free(p);
  }

  std::mutex mu_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  Stats stats_;
};

/// A pooled scratch buffer of n elements of T, returned to the pool when it goes out of scope.
template <class T>
class Workspace {
 public:
  explicit Workspace(std::size_t n) : bytes_(std::max<std::size_t>(n, 1) * sizeof(T)) {
    ptr_ = static_cast<T*>(BufferPool::instance().acquire(bytes_));
  }
  ~Workspace() { BufferPool::instance().release(ptr_, bytes_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  T* get() const { return ptr_; }

 private:
  std::size_t bytes_;
  T* ptr_;
};

// ---- threading ----------------------------------------------------------------------------

inline int max_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

/// Work (multiply-adds) below which a kernel runs on the calling thread: waking the team
/// costs microseconds on an idle machine and milliseconds when another process holds a core
/// (each parallel region then waits for a descheduled thread).
constexpr double kMinParallelMacs = double(1 << 20);

/// This thread's index inside a team of nt (0 outside a parallel region).
inline int thread_slot(int nt) {
#ifdef _OPENMP
  const int t = omp_get_thread_num();
  return t < nt ? t : 0;
#else
  (void)nt;
  return 0;
#endif
}

/// body(lo, hi) over [0, n): split across the OpenMP threads when n >= min_parallel (chunk
/// starts aligned to 16 elements), else one serial call with no OpenMP overhead.
template <class F>
inline void parallel_range(std::int64_t n, std::int64_t min_parallel, F&& body) {
#ifdef _OPENMP
  int nt = max_threads();
  if (n >= min_parallel && nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      std::int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
      std::int64_t lo = (n * t / T) & ~std::int64_t(15);
      std::int64_t hi = t + 1 == T ? n : (n * (t + 1) / T) & ~std::int64_t(15);
      if (lo < hi) body(lo, hi);
    }
    return;
  }
#endif
  if (n > 0) body(std::int64_t(0), n);
}

/// Like parallel_range but without chunk alignment (for loops over rows, images, ...).
template <class F>
inline void parallel_items(std::int64_t n, std::int64_t min_parallel, F&& body) {
#ifdef _OPENMP
  int nt = max_threads();
  if (n >= min_parallel && n > 1 && nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      std::int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
      std::int64_t lo = n * t / T, hi = n * (t + 1) / T;
      if (lo < hi) body(lo, hi);
    }
    return;
  }
#endif
  if (n > 0) body(std::int64_t(0), n);
}

}  // namespace cpu
}  // namespace needle
