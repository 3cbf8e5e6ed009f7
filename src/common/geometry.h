// geometry.h: the convolution and pooling geometry that both backends receive as a flat list
// of ints, the one C++ struct for each, and their unpacking and checks (host side, written
// once for the CPU and CUDA bindings).  Header-only, no CUDA or OpenMP: g++ and nvcc both
// include it, and the CUDA kernels take the structs by value.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/checks.h"

#ifdef __CUDACC__
#define NEEDLE_HOST_DEVICE __host__ __device__
#else
#define NEEDLE_HOST_DEVICE
#endif

namespace needle {

/// The 25-int conv geometry, channels-last, in its 3-D form (1-D and 2-D problems have size-1
/// leading axes).  The field order and names are CONV_GEOMETRY_FIELDS, defined once in Python
/// (ndarray_backend_numpy.py, the backend specification; the op layer in python/needle/ops
/// packs the tuple from it).  Change them together.
///   input (N, Di, Hi, Wi, Cin), weight (KD, KH, KW, Cin / G, Cout), output (N, Do, Ho, Wo, Cout)
///   stride s*, padding p* (before; may be negative), dilation d*, input dilation id*, groups G
/// I is the index type: int64_t as unpacked, int in CUDA kernels whose indices all fit.
template <class I>
struct ConvGeomT {
  I N, Di, Hi, Wi, Cin, KD, KH, KW, Cout, Do, Ho, Wo;
  I sd, sh, sw, pd, ph, pw, dd, dh, dw, idd, idh, idw, G;

  NEEDLE_HOST_DEVICE I Cg() const { return Cin / G; }     // input channels per group
  NEEDLE_HOST_DEVICE I Coutg() const { return Cout / G; }  // output channels per group
  NEEDLE_HOST_DEVICE I K() const { return KD * KH * KW; }  // kernel taps
  NEEDLE_HOST_DEVICE I rows() const { return N * Do * Ho * Wo; }  // output pixels

  /// The same geometry in another index type (the caller checks that every index fits).
  template <class J>
  ConvGeomT<J> as() const {
    return {J(N),  J(Di), J(Hi), J(Wi), J(Cin), J(KD), J(KH), J(KW), J(Cout),
            J(Do), J(Ho), J(Wo), J(sd), J(sh),  J(sw), J(pd), J(ph), J(pw),
            J(dd), J(dh), J(dw), J(idd), J(idh), J(idw), J(G)};
  }
};
using ConvGeom = ConvGeomT<std::int64_t>;

/// The 17-int pool geometry, in the order of POOL_GEOMETRY_FIELDS: input (N, Di, Hi, Wi, C),
/// window (KD, KH, KW), output (N, Do, Ho, Wo, C), stride s*, padding p*.
struct PoolGeom {
  std::int64_t N, Di, Hi, Wi, C, KD, KH, KW, Do, Ho, Wo, sd, sh, sw, pd, ph, pw;
};

/// The largest geometry value the bindings accept (pads: its negative too).
constexpr std::int64_t kMaxGeomValue = std::int64_t(1) << 31;

/// ValueError unless each v[i] lies in [lo[i], 2^31], naming the field.
inline void check_geom_fields(const char* fn, const std::vector<std::int64_t>& v,
                              const char* const* names, const std::int64_t* lo) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] < lo[i] || v[i] > kMaxGeomValue)
      throw std::invalid_argument(std::string(fn) + ": " + names[i] + "=" + std::to_string(v[i]) +
                                  " out of range [" + std::to_string(lo[i]) + ", 2^31]");
}

/// ValueError unless `groups` divides both channel counts.
inline void check_groups(const char* fn, std::int64_t groups, std::int64_t cin,
                         std::int64_t cout) {
  if (cin % groups || cout % groups)
    throw std::invalid_argument(std::string(fn) + ": groups=" + std::to_string(groups) +
                                " must divide Cin=" + std::to_string(cin) +
                                " and Cout=" + std::to_string(cout));
}

/// Checks every field a kernel relies on (sizes >= 0; kernel sizes, strides, dilations and
/// groups >= 1; pads within +-2^31; groups dividing both channel counts), before any buffer
/// is touched, and unpacks them.
inline ConvGeom parse_conv_geom(const char* fn, const std::vector<std::int64_t>& v) {
  if (v.size() != 25)
    throw std::invalid_argument(std::string(fn) + ": conv geometry needs 25 ints, got " +
                                std::to_string(v.size()));
  static const char* const names[25] = {"N",  "Di", "Hi", "Wi", "Cin", "KD",  "KH",  "KW",  "Cout",
                                        "Do", "Ho", "Wo", "sd", "sh",  "sw",  "pd",  "ph",  "pw",
                                        "dd", "dh", "dw", "idd", "idh", "idw", "groups"};
  constexpr std::int64_t P = -kMaxGeomValue;
  static const std::int64_t lo[25] = {0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1,
                                      1, 1, P, P, P, 1, 1, 1, 1, 1, 1, 1};
  check_geom_fields(fn, v, names, lo);
  const ConvGeom g{v[0],  v[1],  v[2],  v[3],  v[4],  v[5],  v[6],  v[7],  v[8],
                   v[9],  v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17],
                   v[18], v[19], v[20], v[21], v[22], v[23], v[24]};
  check_groups(fn, g.G, g.Cin, g.Cout);
  return g;
}

/// Checks the pool geometry's fields (sizes and pads >= 0; window sizes and strides >= 1)
/// and unpacks them.
inline PoolGeom parse_pool_geom(const char* fn, const std::vector<std::int64_t>& v) {
  if (v.size() != 17)
    throw std::invalid_argument(std::string(fn) + ": pool geometry needs 17 ints, got " +
                                std::to_string(v.size()));
  static const char* const names[17] = {"N",  "Di", "Hi", "Wi", "C",  "KD", "KH", "KW", "Do",
                                        "Ho", "Wo", "sd", "sh", "sw", "pd", "ph", "pw"};
  static const std::int64_t lo[17] = {0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0};
  check_geom_fields(fn, v, names, lo);
  return PoolGeom{v[0], v[1],  v[2],  v[3],  v[4],  v[5],  v[6],  v[7], v[8],
                  v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16]};
}

// Element counts of the buffers a geometry describes (ValueError on int64 overflow).
inline std::int64_t conv_input_size(const char* fn, const ConvGeom& g) {
  return checked_prod(fn, {g.N, g.Di, g.Hi, g.Wi, g.Cin});
}
inline std::int64_t conv_weight_size(const char* fn, const ConvGeom& g) {
  return checked_prod(fn, {g.KD, g.KH, g.KW, g.Cg(), g.Cout});
}
inline std::int64_t conv_output_size(const char* fn, const ConvGeom& g) {
  return checked_prod(fn, {g.N, g.Do, g.Ho, g.Wo, g.Cout});
}
inline std::int64_t pool_input_size(const char* fn, const PoolGeom& g) {
  return checked_prod(fn, {g.N, g.Di, g.Hi, g.Wi, g.C});
}
inline std::int64_t pool_output_size(const char* fn, const PoolGeom& g) {
  return checked_prod(fn, {g.N, g.Do, g.Ho, g.Wo, g.C});
}

}  // namespace needle
