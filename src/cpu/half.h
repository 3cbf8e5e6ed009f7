// IEEE binary16 ("half") for needle.distributed's fp16 compression: the weighted gradient
// buffer is converted to halves, sent, summed as halves by an MPI user operation (half_add)
// and converted back.  MPI's own float16 sum, where it has one, converts element by element
// in software and costs more than the bytes it saves.
//
// With F16C (x86, -march=native) eight elements convert per instruction; the scalar code
// rounds to nearest even as F16C does and gives the same bits (NaNs stay NaNs).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __F16C__
#include <immintrin.h>
#endif

namespace needle {
namespace cpu {

inline std::uint16_t float_to_half(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
  if (x < 0x38800000u) {  // below the smallest normal half, 2^-14: a multiple of 2^-24
    float magnitude;
    std::memcpy(&magnitude, &x, sizeof x);
    return static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(
                                                  std::nearbyint(magnitude * 16777216.0f)));
  }
  // Rebias the exponent (127 -> 15) and keep 10 mantissa bits, rounding the 13 dropped
  // bits to nearest even; a carry moves into the exponent, and past 65504 gives infinity.
  std::uint32_t h = (x - 0x38000000u) >> 13;
  const std::uint32_t dropped = x & 0x1fffu;
  if (dropped > 0x1000u || (dropped == 0x1000u && (h & 1u))) ++h;
  if (h > 0x7c00u) h = 0x7c00u;
  return static_cast<std::uint16_t>(sign | h);
}

inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  std::uint32_t x;
  if (exponent == 0x1fu) {
    x = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    x = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    std::memcpy(&x, &magnitude, sizeof x);
    x |= sign;
  }
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

inline void floats_to_halves(const float* src, std::uint16_t* dst, std::int64_t n) {
  std::int64_t i = 0;
#ifdef __F16C__
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
#endif
  for (; i < n; ++i) dst[i] = float_to_half(src[i]);
}

inline void halves_to_floats(const std::uint16_t* src, float* dst, std::int64_t n) {
  std::int64_t i = 0;
#ifdef __F16C__
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; ++i) dst[i] = half_to_float(src[i]);
}

// inout[i] += in[i], as halves: each sum is formed in float32 and rounded to half, which is
// the correctly rounded half sum (float32's 24 bits are 2 * 11 + 2: no double-rounding error).
inline void add_halves(const std::uint16_t* in, std::uint16_t* inout, std::int64_t n) {
  std::int64_t i = 0;
#ifdef __F16C__
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
    __m128i* out = reinterpret_cast<__m128i*>(inout + i);
    const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128(out));
    _mm_storeu_si128(out, _mm256_cvtps_ph(_mm256_add_ps(a, b), _MM_FROUND_TO_NEAREST_INT));
  }
#endif
  for (; i < n; ++i) inout[i] = float_to_half(half_to_float(in[i]) + half_to_float(inout[i]));
}

}  // namespace cpu
}  // namespace needle
