// gemm.h: the one fast matrix multiply of the CPU backend, in the BLIS shape:
//   block sizes (GemmBlocks) in one place; one register-tiled MR x NR micro-kernel template;
//   packing routines that zero-pad partial panels (the micro-kernel never sees an edge;
//   edge tiles go through a local tile); the five-loop driver (jc, pc, ic, jr, ir) with
//   OpenMP threads over the ic blocks (or over jr panels when M is small).
// C = A * B (+ C when accumulate) with every operand given by (row stride, column stride),
// so callers multiply transposed views without copies.  The A packer is a template
// parameter, so convolution packs im2col rows straight into the A panels (conv.h).
// gemm_reference is the naive triple loop the tests compare against.
#pragma once

#include <type_traits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "common.h"

namespace needle {
namespace cpu {

/// Block sizes.  The micro-kernel keeps an MR x NR tile of C in registers: with AVX-512
/// (32 vector registers) 12 rows x 2 vectors = 24 accumulators plus the B vectors and a
/// broadcast, enough independent FMAs to cover the FMA latency on both ports.  With
/// 16 registers (AVX2, SSE) 6 x 2.  The narrow kernel (one vector wide, twice the rows) serves
/// N <= one vector (im2col products with 8-16 output channels) without wasting half the tile.
/// KC x NR of packed B (16-32 KiB) stays in L1 while the MC x KC block of A (240 KiB) streams
/// from L2; NC x KC of packed B (3 MiB) sits in L2/L3.  MC is shrunk at run time so the
/// number of MC blocks is a multiple of the thread count (balanced work on 2 cores).
template <class T>
struct GemmBlocks {
  static constexpr int VW = kVecBytes / int(sizeof(T));
  static constexpr int MR = kVecBytes == 64 ? 12 : 6;
  static constexpr int NR = 2 * VW;
  static constexpr int MR_NARROW = 2 * MR;
  static constexpr int NR_NARROW = VW;
  static constexpr std::int64_t MC = 240;
  static constexpr std::int64_t KC = 256;
  static constexpr std::int64_t NC = 3072;
};

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
inline std::int64_t round_up(std::int64_t a, std::int64_t b) { return ceil_div(a, b) * b; }

// ---- the micro-kernel -----------------------------------------------------------------------

/// C[0:mr, 0:nr] (= or +=) Apanel * Bpanel (kc x NR, k-major).  The A panel is k-major
/// (a[k * MR + i]) when AS == 0, else row-major with the compile-time row stride AS
/// (a[i * AS + k]): the broadcasts then use constant displacements from one pointer, and a
/// packer that produces rows (im2col) needs no transposing copy.
template <class T, int MR, int NR, int AS = 0>
inline void micro_kernel(std::int64_t kc, const T* __restrict a, const T* __restrict b, T* c,
                         std::int64_t rsc, std::int64_t csc, int mr, int nr, bool accumulate) {
  using V = typename VecOf<T>::type;
  constexpr int VW = int(sizeof(V) / sizeof(T));
  constexpr int NV = NR / VW;
  static_assert(NR % VW == 0, "NR must be a whole number of vectors");
  V acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  for (std::int64_t k = 0; k < kc; ++k) {
    V bv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) bv[j] = *reinterpret_cast<const V*>(b + k * NR + j * VW);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const T ai = AS ? a[i * AS + k] : a[k * MR + i];
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] += ai * bv[j];
    }
  }
  if (mr == MR && nr == NR && csc == 1) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        T* p = c + i * rsc + j * VW;
        if (accumulate) {
          V old;
          std::memcpy(&old, p, sizeof(V));
          acc[i][j] += old;
        }
        std::memcpy(p, &acc[i][j], sizeof(V));
      }
    return;
  }
  alignas(64) T tile[MR * NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) std::memcpy(tile + i * NR + j * VW, &acc[i][j], sizeof(V));
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      T* p = c + i * rsc + j * csc;
      *p = accumulate ? *p + tile[i * NR + j] : tile[i * NR + j];
    }
}

// ---- packing ---------------------------------------------------------------------------------

/// dst[k * MR + i] = src[i * rs + k] for i < mr (zero above): the transposing copy that
/// packing row-major A needs.  With AVX2 and float, 8 rows at a time are read with one
/// gather per k (about twice as fast as element-by-element stores).
template <int MR, class T>
inline void pack_rows_transposed(T* dst, const T* src, std::int64_t rs, int mr, std::int64_t kc) {
#if defined(__AVX2__)
  if constexpr (std::is_same<T, float>::value && MR % 8 == 0) {
    if (mr == MR && rs * (MR - 1) < (std::int64_t(1) << 31)) {
      for (int i0 = 0; i0 < MR; i0 += 8) {
        const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                               _mm256_set1_epi32(int(rs)));
        const float* base = src + i0 * rs;
        for (std::int64_t k = 0; k < kc; ++k)
          _mm256_storeu_ps(dst + k * MR + i0, _mm256_i32gather_ps(base + k, idx, 4));
      }
      return;
    }
  }
#endif
  for (int i = 0; i < mr; ++i) {
    const T* row = src + i * rs;
    for (std::int64_t k = 0; k < kc; ++k) dst[k * MR + i] = row[k];
  }
  for (int i = mr; i < MR; ++i)
    for (std::int64_t k = 0; k < kc; ++k) dst[k * MR + i] = T(0);
}

/// Packs micro-panels of a strided A: dst[k * MR + i] = A[i0 + i, p0 + k], zero for i >= mr.
template <class T>
struct StridedPackA {
  static constexpr int kRowStride = 0;  // k-major panels
  const T* A;
  std::int64_t rs, cs;

  template <int MR>
  void pack(T* dst, std::int64_t i0, int mr, std::int64_t p0, std::int64_t kc) const {
    const T* a = A + i0 * rs + p0 * cs;
    if (rs == 1) {
      for (std::int64_t k = 0; k < kc; ++k) {
        const T* src = a + k * cs;
        for (int i = 0; i < mr; ++i) dst[k * MR + i] = src[i];
        for (int i = mr; i < MR; ++i) dst[k * MR + i] = T(0);
      }
      return;
    }
    if (cs == 1) return pack_rows_transposed<MR>(dst, a, rs, mr, kc);
    for (int i = 0; i < mr; ++i) {
      const T* src = a + i * rs;
      for (std::int64_t k = 0; k < kc; ++k) dst[k * MR + i] = src[k * cs];
    }
    for (int i = mr; i < MR; ++i)
      for (std::int64_t k = 0; k < kc; ++k) dst[k * MR + i] = T(0);
  }
};

/// dst[k * NR + j] = B[p0 + k, j0 + j], zero for j >= nr.
template <class T, int NR>
void pack_b(T* dst, const T* B, std::int64_t rs, std::int64_t cs, std::int64_t p0,
            std::int64_t kc, std::int64_t j0, int nr) {
  const T* b = B + p0 * rs + j0 * cs;
  if (cs == 1) {
    for (std::int64_t k = 0; k < kc; ++k) {
      const T* src = b + k * rs;
      T* d = dst + k * NR;
      for (int j = 0; j < nr; ++j) d[j] = src[j];
      for (int j = nr; j < NR; ++j) d[j] = T(0);
    }
    return;
  }
  for (int j = 0; j < nr; ++j) {
    const T* src = b + j * cs;
    for (std::int64_t k = 0; k < kc; ++k) dst[k * NR + j] = src[k * rs];
  }
  for (int j = nr; j < NR; ++j)
    for (std::int64_t k = 0; k < kc; ++k) dst[k * NR + j] = T(0);
}

// ---- the driver ------------------------------------------------------------------------------

template <class T, int MR, int NR, class PackA>
void gemm_driver(std::int64_t M, std::int64_t N, std::int64_t K, const PackA& pa, const T* B,
                 std::int64_t rsB, std::int64_t csB, T* C, std::int64_t rsC, std::int64_t csC,
                 bool accumulate) {
  using Blk = GemmBlocks<T>;
  const std::int64_t KC = Blk::KC, NC = round_up(Blk::NC, NR);
  int nt = max_threads();
  if (double(M) * double(N) * double(K) < kMinParallelMacs) nt = 1;
  // MC blocks: a multiple of the thread count when that is possible
  std::int64_t n_ic = ceil_div(M, Blk::MC);
  if (nt > 1) n_ic = std::min(round_up(n_ic, nt), ceil_div(M, MR));
  const std::int64_t MC = round_up(ceil_div(M, n_ic), MR);
  n_ic = ceil_div(M, MC);
  const std::int64_t ncap = round_up(std::min(N, NC), NR), kcap = std::min(K, KC);
  // A micro-panels: MR x kc k-major, or MR rows of stride AS (PackA::kRowStride, >= KC)
  constexpr int AS = PackA::kRowStride;
  static_assert(AS == 0 || AS >= Blk::KC, "row-major A panels need a row stride >= KC");
  const std::int64_t arow = AS ? AS : kcap;

  // Threads split the MC blocks (or, when there are fewer blocks than threads, the NR panels
  // too).  When every thread has whole MC blocks and packed B is small (conv shapes: N of a
  // few vectors), each thread packs its own copy of B and the whole product is one parallel
  // region with no barrier; otherwise the threads share one packed B per (jc, pc) block.
  const std::int64_t split = n_ic >= nt ? 1 : ceil_div(nt, n_ic);
  const bool private_b =
      nt > 1 && split == 1 && std::size_t(kcap * ncap) * sizeof(T) <= (std::size_t(512) << 10);
  Workspace<T> bbuf(std::size_t(kcap * ncap) * (private_b ? nt : 1));
  Workspace<T> abuf(std::size_t(nt * MC * arow));

  // One (jc, pc) block on thread tid of T_; bp is the packed B this thread reads.
  auto block = [&](int tid, int T_, std::int64_t jc, std::int64_t pc, T* bp, bool shared) {
    const std::int64_t nc = std::min(NC, N - jc), np = ceil_div(nc, NR);
    const std::int64_t kc = std::min(KC, K - pc);
    const bool acc = accumulate || pc > 0;
    const std::int64_t sp = std::min(np, split), tasks = n_ic * sp;
    for (std::int64_t p = shared ? np * tid / T_ : 0; p < (shared ? np * (tid + 1) / T_ : np); ++p)
      pack_b<T, NR>(bp + p * kc * NR, B, rsB, csB, pc, kc, jc + p * NR,
                    int(std::min<std::int64_t>(NR, nc - p * NR)));
#ifdef _OPENMP
    // only inside our own team: an orphaned barrier would bind to a caller's region
    if (shared && T_ > 1) {
#pragma omp barrier
    }
#endif
    T* ap = abuf.get() + std::size_t(tid) * MC * arow;
    const std::int64_t pstride = AS ? AS : kc;  // ap + ir * pstride: panel of rows ir..
    std::int64_t packed_ic = -1;
    for (std::int64_t t = tasks * tid / T_; t < tasks * (tid + 1) / T_; ++t) {
      const std::int64_t ic = t / sp, part = t % sp;
      const std::int64_t i0 = ic * MC, mc = std::min(MC, M - i0);
      if (ic != packed_ic) {
        for (std::int64_t ir = 0; ir < mc; ir += MR)
          pa.template pack<MR>(ap + ir * pstride, i0 + ir,
                               int(std::min<std::int64_t>(MR, mc - ir)), pc, kc);
        packed_ic = ic;
      }
      for (std::int64_t jp = np * part / sp; jp < np * (part + 1) / sp; ++jp) {
        const int nr = int(std::min<std::int64_t>(NR, nc - jp * NR));
        for (std::int64_t ir = 0; ir < mc; ir += MR)
          micro_kernel<T, MR, NR, AS>(kc, ap + ir * pstride, bp + jp * kc * NR,
                                      C + (i0 + ir) * rsC + (jc + jp * NR) * csC, rsC, csC,
                                      int(std::min<std::int64_t>(MR, mc - ir)), nr, acc);
      }
    }
  };
#ifdef _OPENMP
  if (private_b) {
#pragma omp parallel num_threads(nt)
    {
      const int tid = omp_get_thread_num(), T_ = omp_get_num_threads();
      T* bp = bbuf.get() + std::size_t(tid) * kcap * ncap;
      for (std::int64_t jc = 0; jc < N; jc += NC)
        for (std::int64_t pc = 0; pc < K; pc += KC) block(tid, T_, jc, pc, bp, false);
    }
    return;
  }
#endif
  for (std::int64_t jc = 0; jc < N; jc += NC)
    for (std::int64_t pc = 0; pc < K; pc += KC) {
#ifdef _OPENMP
      if (nt > 1) {
#pragma omp parallel num_threads(nt)
        block(omp_get_thread_num(), omp_get_num_threads(), jc, pc, bbuf.get(), true);
        continue;
      }
#endif
      block(0, 1, jc, pc, bbuf.get(), true);
    }
}

/// Naive C = A * B (+ C): the test oracle, and the path for tiny products.
template <class T>
void gemm_reference(std::int64_t M, std::int64_t N, std::int64_t K, const T* A, std::int64_t rsA,
                    std::int64_t csA, const T* B, std::int64_t rsB, std::int64_t csB, T* C,
                    std::int64_t rsC, std::int64_t csC, bool accumulate) {
  for (std::int64_t i = 0; i < M; ++i) {
    T* c = C + i * rsC;
    if (!accumulate)
      for (std::int64_t j = 0; j < N; ++j) c[j * csC] = T(0);
    for (std::int64_t k = 0; k < K; ++k) {
      const T a = A[i * rsA + k * csA];
      const T* b = B + k * rsB;
      for (std::int64_t j = 0; j < N; ++j) c[j * csC] += a * b[j * csB];
    }
  }
}

/// C (M x N) = PackA's A (M x K) * B (K x N) (+ C when accumulate), picking the kernel shape.
template <class T, class PackA>
void gemm_packed(std::int64_t M, std::int64_t N, std::int64_t K, const PackA& pa, const T* B,
                 std::int64_t rsB, std::int64_t csB, T* C, std::int64_t rsC, std::int64_t csC,
                 bool accumulate) {
  using Blk = GemmBlocks<T>;
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (std::int64_t i = 0; i < M; ++i)
        for (std::int64_t j = 0; j < N; ++j) C[i * rsC + j * csC] = T(0);
    return;
  }
  if (N <= Blk::NR_NARROW)
    gemm_driver<T, Blk::MR_NARROW, Blk::NR_NARROW>(M, N, K, pa, B, rsB, csB, C, rsC, csC,
                                                   accumulate);
  else
    gemm_driver<T, Blk::MR, Blk::NR>(M, N, K, pa, B, rsB, csB, C, rsC, csC, accumulate);
}

/// C (M x N) = A (M x K) * B (K x N) (+ C when accumulate); any strides (no aliasing of C).
template <class T>
void gemm(std::int64_t M, std::int64_t N, std::int64_t K, const T* A, std::int64_t rsA,
          std::int64_t csA, const T* B, std::int64_t rsB, std::int64_t csB, T* C,
          std::int64_t rsC, std::int64_t csC, bool accumulate) {
  if (M * N * K <= 512) {
    gemm_reference(M, N, K, A, rsA, csA, B, rsB, csB, C, rsC, csC, accumulate);
    return;
  }
  if (N == 1 && csA == 1) {  // matrix-vector: one dot product per row of A
    const std::int64_t min_rows = std::max<std::int64_t>(2, (1 << 15) / K);
    parallel_items(M, min_rows, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i) {
        const T* a = A + i * rsA;
        T s = T(0);
#pragma omp simd reduction(+ : s)
        for (std::int64_t k = 0; k < K; ++k) s += a[k] * B[k * rsB];
        C[i * rsC] = accumulate ? C[i * rsC] + s : s;
      }
    });
    return;
  }
  gemm_packed(M, N, K, StridedPackA<T>{A, rsA, csA}, B, rsB, csB, C, rsC, csC, accumulate);
}

}  // namespace cpu
}  // namespace needle
