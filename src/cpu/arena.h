// The buffer pool's head start: memory whose pages are filled before the first training step.
//
// A fresh buffer costs the kernel a page fault per 4 KiB on first touch (0.36 ms/MiB here even
// when mapped with MAP_POPULATE), and the first training step is the one that touches its whole
// working set: ~21 MiB for ResNet9 at batch 128, which made step 1 1.8x the median step.  So
// when the backend is loaded, a background thread maps kReserveBytes and fills its pages, 1 MiB
// at a time, while the program goes on importing, building its model and loading its data.
// The pool hands out large fresh buffers from the filled part (never waiting for the thread)
// and maps new memory once the arena is used up.
//
// Pieces of the arena are page-aligned and a multiple of the page size (large size classes are
// multiples of 32 KiB), so the pool returns them to the system with munmap like any other
// large buffer.  NEEDLE_POOL_RESERVE_MB sets the size (0 turns the head start off).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace needle {
namespace cpu {

class PrefilledArena {
 public:
  static constexpr std::size_t kDefaultMiB = 32;
  static constexpr std::size_t kChunk = std::size_t(1) << 20;

  static PrefilledArena& instance() {
    static PrefilledArena* arena = new PrefilledArena();  // never destroyed: see BufferPool
    return *arena;
  }

  /// Maps the arena and starts the thread that fills it; later calls do nothing.
  void start() {
    std::call_once(started_, [this] {
      std::size_t bytes = reserve_bytes();
      if (bytes == 0) return;
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return;
      base_ = static_cast<char*>(p);
      size_ = bytes;
      std::thread([this] { fill(); }).detach();
    });
  }

  /// `bytes` (a multiple of the page size) of filled arena memory, or nullptr when not that
  /// much is filled and unused yet.
  void* take(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (used_ + bytes > filled_.load(std::memory_order_acquire)) return nullptr;
    void* p = base_ + used_;
    used_ += bytes;
    return p;
  }

  struct Stats {
    std::size_t bytes, filled, used;
  };
  Stats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {size_, filled_.load(std::memory_order_acquire), used_};
  }

 private:
  static std::size_t reserve_bytes() {
    std::size_t mib = kDefaultMiB;
    if (const char* env = std::getenv("NEEDLE_POOL_RESERVE_MB")) {
      char* end = nullptr;
      long v = std::strtol(env, &end, 10);
      if (end != env && *end == '\0' && v >= 0 && v <= (1L << 20)) mib = std::size_t(v);
    }
    return mib << 20;
  }

  void fill() {
    const std::size_t page = std::size_t(sysconf(_SC_PAGESIZE));
    for (std::size_t off = 0; off < size_; off += kChunk) {
      std::size_t n = std::min(kChunk, size_ - off);
#ifdef MADV_POPULATE_WRITE
      if (madvise(base_ + off, n, MADV_POPULATE_WRITE) != 0)
#endif
      {
        for (std::size_t i = 0; i < n; i += page)
          reinterpret_cast<volatile char*>(base_ + off)[i] = 0;
      }
      filled_.store(off + n, std::memory_order_release);
    }
  }

  std::once_flag started_;
  std::mutex mu_;
  char* base_ = nullptr;
  std::size_t size_ = 0, used_ = 0;
  std::atomic<std::size_t> filled_{0};
};

}  // namespace cpu
}  // namespace needle
