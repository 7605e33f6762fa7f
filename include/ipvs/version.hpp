// SPDX-License-Identifier: MIT
// The library's version.
#pragma once

#define IPVS_VERSION_MAJOR 0
#define IPVS_VERSION_MINOR 1
#define IPVS_VERSION_PATCH 0

namespace ipvs {
inline constexpr int version_major = IPVS_VERSION_MAJOR;
inline constexpr int version_minor = IPVS_VERSION_MINOR;
inline constexpr int version_patch = IPVS_VERSION_PATCH;
} // namespace ipvs
