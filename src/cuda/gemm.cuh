// The one GEMM of the CUDA backend: C = op(A) @ B, batched, with leading dimensions and
// batch strides, used by matmul, matmul_batched and both convolution kernels.
//
// Kernel: a BM x BN block tile of C per thread block, staged through shared memory in
// BK-deep slices (double-buffered); each thread accumulates a TM x TN register tile made of
// 4 x 4 groups spread across the block, read from shared memory four values at a time.
// Every global load and store is guarded, so any M, N, K is correct (zeros are staged
// outside the matrices). A tile is stored k-major (As[k][i]) with 4 elements of padding per
// row so that the transposing store is free of bank conflicts.
//
// Split-K: when the output has too few tiles to fill the GPU, the K range is split over
// grid z and the partial products are added with atomicAdd into a zeroed C.
// Batches beyond the 65535 grid-z limit are launched in several chunks.
#pragma once

#include <stdexcept>
#include <string>

#include "cuda/common.cuh"
#include "cuda/elementwise.cuh"

namespace needle {
namespace cuda {

template <class T>
struct GemmParams {
  int M, N, K;        // op(A): M x K, B: K x N, C: M x N
  const T* A;         // row-major M x K with leading dimension lda, or (trans_a) K x M
  int64_t lda, batch_a;
  const T* B;         // row-major K x N
  int64_t ldb, batch_b;
  T* C;               // row-major M x N
  int64_t ldc, batch_c;
  int k_split;        // K range of one split (a multiple of BK)
  int splits;         // number of K splits (grid z = batch * splits)
};

// Four consecutive values from 16-byte aligned shared memory in one or two vector loads.
__device__ __forceinline__ void load4(float* dst, const float* src) {
  const float4 v = *reinterpret_cast<const float4*>(src);
  dst[0] = v.x, dst[1] = v.y, dst[2] = v.z, dst[3] = v.w;
}
__device__ __forceinline__ void load4(double* dst, const double* src) {
  const double2 a = *reinterpret_cast<const double2*>(src);
  const double2 b = *reinterpret_cast<const double2*>(src + 2);
  dst[0] = a.x, dst[1] = a.y, dst[2] = b.x, dst[3] = b.y;
}

// Thread (tr, tc) owns rows p * 4 * RM + 4 * tr + {0..3} (p < TM / 4) and columns
// q * 4 * RN + 4 * tc + {0..3} (q < TN / 4): each group of four is one vector load from
// shared memory, and the groups of neighbouring threads are adjacent (no bank conflicts).
// Global -> shared staging goes through registers: the next slice's loads are issued before
// the current slice's FMAs, into the other of two shared-memory buffers.
template <class T, int BM, int BN, int BK, int TM, int TN, bool TRANS_A, bool ATOMIC>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    gemm_kernel(GemmParams<T> p, int64_t batch_base) {
  constexpr int NT = (BM / TM) * (BN / TN);
  constexpr int RM = BM / TM, RN = BN / TN;  // thread grid of the block
  constexpr int LA = BM * BK / NT, LB = BN * BK / NT;  // staged loads per thread
  __shared__ __align__(16) T As[2][BK][BM + 4];
  __shared__ __align__(16) T Bs[2][BK][BN];

  const int64_t batch = batch_base + blockIdx.z / p.splits;
  const int split = blockIdx.z % p.splits;
  const T* A = p.A + batch * p.batch_a;
  const T* B = p.B + batch * p.batch_b;
  T* C = p.C + batch * p.batch_c;
  const int row0 = blockIdx.x * BM, col0 = blockIdx.y * BN;
  const int k_begin = split * p.k_split;
  const int k_end = min(p.K, k_begin + p.k_split);
  const int tid = threadIdx.x;
  const int tr = tid / RN, tc = tid % RN;

  T ra_stage[LA], rb_stage[LB];
  // global -> registers for the slice starting at k0 (zeros outside the matrices)
  auto load_slice = [&](int k0) {
#pragma unroll
    for (int r = 0; r < LA; ++r) {
      const int e = tid + r * NT;
      // consecutive threads walk the contiguous axis of A in memory
      const int i = TRANS_A ? e % BM : e / BK;
      const int k = TRANS_A ? e / BM : e % BK;
      const int gi = row0 + i, gk = k0 + k;
      T v = T(0);
      if (gi < p.M && gk < k_end) {
        v = TRANS_A ? A[int64_t(gk) * p.lda + gi] : A[int64_t(gi) * p.lda + gk];
      }
      ra_stage[r] = v;
    }
#pragma unroll
    for (int r = 0; r < LB; ++r) {
      const int e = tid + r * NT;
      const int k = e / BN, j = e % BN;
      const int gk = k0 + k, gj = col0 + j;
      rb_stage[r] = (gk < k_end && gj < p.N) ? B[int64_t(gk) * p.ldb + gj] : T(0);
    }
  };
  auto store_slice = [&](int buf) {
#pragma unroll
    for (int r = 0; r < LA; ++r) {
      const int e = tid + r * NT;
      const int i = TRANS_A ? e % BM : e / BK;
      const int k = TRANS_A ? e / BM : e % BK;
      As[buf][k][i] = ra_stage[r];
    }
#pragma unroll
    for (int r = 0; r < LB; ++r) {
      const int e = tid + r * NT;
      Bs[buf][e / BN][e % BN] = rb_stage[r];
    }
  };

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  int buf = 0;
  if (k_begin < k_end) {
    load_slice(k_begin);
    store_slice(0);
  }
  __syncthreads();
  for (int k0 = k_begin; k0 < k_end; k0 += BK) {
    const bool has_next = k0 + BK < k_end;
    if (has_next) load_slice(k0 + BK);
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      T ra[TM], rb[TN];
#pragma unroll
      for (int q = 0; q < TM / 4; ++q) load4(ra + 4 * q, &As[buf][kk][q * 4 * RM + 4 * tr]);
#pragma unroll
      for (int q = 0; q < TN / 4; ++q) load4(rb + 4 * q, &Bs[buf][kk][q * 4 * RN + 4 * tc]);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += ra[i] * rb[j];
    }
    if (has_next) store_slice(buf ^ 1);
    __syncthreads();
    buf ^= 1;
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int gi = row0 + (i / 4) * 4 * RM + 4 * tr + i % 4;
    if (gi >= p.M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int gj = col0 + (j / 4) * 4 * RN + 4 * tc + j % 4;
      if (gj >= p.N) continue;
      T* dst = C + int64_t(gi) * p.ldc + gj;
      if (ATOMIC) {
        atomicAdd(dst, acc[i][j]);
      } else {
        *dst = acc[i][j];
      }
    }
  }
}

// Tile configurations, chosen in one place. The large float tile (128 x 128, 8 x 8 per
// thread, 256 threads) gives 64 FMAs per 4 vector loads from shared memory; the small one
// serves problems whose large-tile grid would leave SMs idle; the narrow ones serve the
// convolution GEMMs whose N (output channels per group) is 64 or less, where a 128-wide
// tile would mostly multiply zeros. Double uses 64 x 64 (twice the registers per value).
template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct GemmTile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
};
template <class T>
struct GemmConfigLarge : GemmTile<128, 128, 8, 8, 8> {};
template <>
struct GemmConfigLarge<double> : GemmTile<64, 64, 8, 4, 4> {};
template <class T>
struct GemmConfigSmall : GemmTile<64, 64, 16, 4, 4> {};
using GemmConfigN64 = GemmTile<128, 64, 8, 8, 4>;
using GemmConfigN32 = GemmTile<256, 32, 8, 8, 4>;
using GemmConfigN16 = GemmTile<256, 16, 8, 8, 4>;

template <class T, class Cfg, bool TRANS_A, bool ATOMIC>
void launch_gemm_kernel(GemmParams<T> p, int64_t batch) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  constexpr int NT = (BM / TM) * (BN / TN);
  static_assert(BM % TM == 0 && BN % TN == 0, "the thread tile must divide the block tile");
  static_assert(TM % 4 == 0 && TN % 4 == 0 && BM % 4 == 0 && BN % 4 == 0,
                "thread tiles are read from shared memory four at a time");
  static_assert(NT % 32 == 0 && NT <= 1024, "whole warps, at most 1024 threads");
  static_assert(2 * BK * ((BM + 4) + BN) * sizeof(T) <= 48 * 1024, "static shared memory limit");
  static_assert((BM * BK) % NT == 0 && (BN * BK) % NT == 0,
                "every thread loads the same number of tile elements");
  const int64_t gx = ceil_div<int64_t>(p.M, BM), gy = ceil_div<int64_t>(p.N, BN);
  if (gy > 65535) {
    throw std::invalid_argument("gemm: N=" + std::to_string(p.N) + " exceeds the grid limit");
  }
  const int64_t max_z = 65535 / p.splits;
  for (int64_t b0 = 0; b0 < batch; b0 += max_z) {
    const int64_t nb = std::min<int64_t>(max_z, batch - b0);
    dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy),
              static_cast<unsigned>(nb * p.splits));
    gemm_kernel<T, BM, BN, BK, TM, TN, TRANS_A, ATOMIC><<<grid, NT>>>(p, b0);
    check_launch("gemm_kernel");
  }
}

// Picks the tile, the K split and the store mode. `accumulate`: C already holds values
// to add to (the kernel uses atomicAdd). `c_dense`: the batch's C blocks are one contiguous
// range (ldc == N, batch_c == M * N), so it may be zeroed here for a split-K launch.
template <class T, class Cfg, bool TRANS_A>
void gemm_with_config(GemmParams<T> p, int64_t batch, bool accumulate, bool c_dense) {
  const int64_t tiles = ceil_div<int64_t>(p.M, Cfg::BM) * ceil_div<int64_t>(p.N, Cfg::BN) * batch;
  const int64_t want = 2 * int64_t(sm_count());
  int splits = 1;
  if (tiles < want && p.K >= 1024 && (accumulate || c_dense)) {
    splits = static_cast<int>(std::min<int64_t>(ceil_div<int64_t>(want, tiles), p.K / 512));
    splits = std::max(splits, 1);
  }
  p.k_split = static_cast<int>(
      ceil_div<int64_t>(ceil_div<int64_t>(std::max(p.K, 1), splits), Cfg::BK) * Cfg::BK);
  p.splits = static_cast<int>(ceil_div<int64_t>(std::max(p.K, 1), p.k_split));
  if (accumulate) {
    launch_gemm_kernel<T, Cfg, TRANS_A, true>(p, batch);
  } else if (p.splits > 1) {
    launch_fill<T>(p.C, T(0), batch * int64_t(p.M) * p.N);
    launch_gemm_kernel<T, Cfg, TRANS_A, true>(p, batch);
  } else {
    launch_gemm_kernel<T, Cfg, TRANS_A, false>(p, batch);
  }
}

template <class T, class Cfg>
void gemm_config(GemmParams<T> p, int64_t batch, bool trans_a, bool accumulate, bool c_dense) {
  if (trans_a) {
    gemm_with_config<T, Cfg, true>(p, batch, accumulate, c_dense);
  } else {
    gemm_with_config<T, Cfg, false>(p, batch, accumulate, c_dense);
  }
}

// C = op(A) @ B (+ C when accumulate) for `batch` problems. M, N, K must fit in int.
template <class T>
void gemm(GemmParams<T> p, int64_t batch, bool trans_a, bool accumulate) {
  if (p.M <= 0 || p.N <= 0 || batch <= 0) return;
  if (p.K <= 0 && accumulate) return;
  const bool c_dense = p.ldc == p.N && (batch == 1 || p.batch_c == int64_t(p.M) * p.N);
  using Large = GemmConfigLarge<T>;
  const int64_t large_tiles =
      ceil_div<int64_t>(p.M, Large::BM) * ceil_div<int64_t>(p.N, Large::BN) * batch;
  if (p.N <= 16) {
    gemm_config<T, GemmConfigN16>(p, batch, trans_a, accumulate, c_dense);
  } else if (p.N <= 32) {
    gemm_config<T, GemmConfigN32>(p, batch, trans_a, accumulate, c_dense);
  } else if (p.N <= 64 && p.M >= 4096) {
    gemm_config<T, GemmConfigN64>(p, batch, trans_a, accumulate, c_dense);
  } else if (large_tiles < int64_t(sm_count())) {
    gemm_config<T, GemmConfigSmall<T>>(p, batch, trans_a, accumulate, c_dense);
  } else {
    gemm_config<T, Large>(p, batch, trans_a, accumulate, c_dense);
  }
}

// ---- the course's tiled layout: arrays of TILE x TILE blocks, one thread per output ---------
// The sizes of a matmul, checked by the binding to fit in int: A is m x n, B n x p.
struct GemmDims {
  int m, n, p;
};

// out[i] = a[i] @ b[i] for i < batch, all row-major and dense; the operands of problem i
// start at i * a_stride and i * b_stride (0 repeats one operand), the results are packed.
template <class T>
void launch_matmul_batched(const T* a, const T* b, T* out, int64_t batch, GemmDims d,
                           int64_t a_stride, int64_t b_stride) {
  GemmParams<T> g{};
  g.M = d.m;
  g.N = d.p;
  g.K = d.n;
  g.A = a;
  g.lda = d.n;
  g.batch_a = a_stride;
  g.B = b;
  g.ldb = d.p;
  g.batch_b = b_stride;
  g.C = out;
  g.ldc = d.p;
  g.batch_c = int64_t(d.m) * d.p;
  gemm<T>(g, batch, false, false);
}

template <class T, int TILE>
__global__ void matmul_tiled_kernel(const T* a, const T* b, T* out, int64_t m, int64_t n,
                                    int64_t p) {
  const int64_t total = m * p;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(blockDim.x) * gridDim.x) {
    // out is (m/T, p/T, T, T): e = ((ti * p/T + tj) * T + ii) * T + jj
    const int64_t jj = e % TILE, ii = (e / TILE) % TILE;
    const int64_t tile = e / (TILE * TILE);
    const int64_t tj = tile % (p / TILE), ti = tile / (p / TILE);
    T acc = T(0);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t tk = k / TILE, kk = k % TILE;
      acc += a[((ti * (n / TILE) + tk) * TILE + ii) * TILE + kk] *
             b[((tk * (p / TILE) + tj) * TILE + kk) * TILE + jj];
    }
    out[e] = acc;
  }
}

template <class T, int TILE>
void launch_matmul_tiled(const T* a, const T* b, T* out, int64_t m, int64_t n, int64_t p) {
  if (m * p <= 0) return;
  matmul_tiled_kernel<T, TILE><<<grid_for(m * p), kThreads>>>(a, b, out, m, n, p);
  check_launch("matmul_tiled_kernel");
}

}  // namespace cuda
}  // namespace needle
