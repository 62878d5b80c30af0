// Shared helpers of the C++ binding's tests: paths, the cross-language fixture, temp dirs.
#pragma once

#include <nexvitad.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace support {

namespace fs = std::filesystem;

/// The repository root (compiled in by CMake as a path relative to the tests' sources).
fs::path repo_root();
/// models/tiny: the tiny random-weight model.
fs::path model_dir();
/// tests/fixtures/crosslang: tiny.bank, tiled.bank, roi.bank, roi.mask, grow2.bank, grow_add.rgb,
/// image.rgb, expected.json, expected_tiled.json, expected_roi.json, expected_grow.json.
fs::path crosslang_dir();

/// One defect region of expected_tiled.json's list (floats as their bits).
struct ExpectedRegion {
    std::uint32_t x = 0, y = 0, width = 0, height = 0;
    std::uint64_t area = 0;
    std::uint32_t peak_bits = 0, mean_bits = 0, centroid_x_bits = 0, centroid_y_bits = 0;
};

/// expected.json of the cross-language fixture, as produced by the Rust API.
struct Expected {
    std::uint32_t width = 0;
    std::uint32_t height = 0;
    std::uint32_t image_score_bits = 0;
    std::uint32_t image_threshold_bits = 0;
    bool is_anomalous = false;
    std::size_t map_len = 0;
    std::string map_sha256;
    /// expected_tiled.json only: the regions of image.rgb scored with tiled.bank at the pixel
    /// threshold regions_pixel_threshold_bits (min area 0), in the library's order.
    std::uint32_t regions_pixel_threshold_bits = 0;
    std::vector<ExpectedRegion> regions;
};
/// expected.json: image.rgb scored with tiny.bank (a whole-image bank).
const Expected& expected();

/// expected_roi.json (C ABI revision 4): `plain` is image.rgb scored with roi.bank (built
/// with roi.mask, its default ROI) and default options; the rest as tests/integration/crosslang.rs.
struct ExpectedRoi {
    Expected plain;
    std::uint32_t roi_width = 0, roi_height = 0;  ///< roi.bank's mask = roi.mask's size
    /// image.rgb scored with tiny.bank (no ROI of its own) and roi.mask given per call.
    std::uint32_t caller_roi_image_score_bits = 0;
    std::string caller_roi_map_sha256;
    /// image.rgb scored with roi.bank with its ROI switched off (ignore_bank_roi).
    std::uint32_t ignore_roi_image_score_bits = 0;
    std::string ignore_roi_map_sha256;
};
const ExpectedRoi& expected_roi();
/// roi.mask: roi_width x roi_height bytes, row-major, 1 = inspect.
const std::vector<std::uint8_t>& roi_mask_bytes();
/// expected_tiled.json: image.rgb scored with tiled.bank (48 px tiles, overlap 0.25, shared).
const Expected& expected_tiled();

/// expected_grow.json (C ABI revision 5): `plain` is image.rgb scored with grow2.bank (growable,
/// k 8, two good images) after grow_add.rgb was added to it; the grown bank's shots and pixel
/// threshold; grow_add.rgb's size (packed RGB8). As tests/integration/crosslang.rs.
struct ExpectedGrow {
    Expected plain;
    std::uint32_t grow_add_width = 0, grow_add_height = 0;
    std::uint32_t shots = 0;
    std::uint32_t pixel_threshold_bits = 0;
};
const ExpectedGrow& expected_grow();
/// grow_add.rgb: packed RGB8, grow_add_width x grow_add_height.
const std::vector<std::uint8_t>& grow_add_rgb();

/// image.rgb: packed RGB8, expected().width x expected().height.
const std::vector<std::uint8_t>& fixture_rgb();
/// A packed RGB view of fixture_rgb().
nexvitad::ImageView fixture_view();

/// The model (opened once per test process) and the fixture bank loaded with it.
const nexvitad::Model& model();
const nexvitad::Bank& fixture_bank();

std::vector<std::uint8_t> read_bytes(const fs::path& path);
void write_text(const fs::path& path, const std::string& text);

/// SHA-256 (lowercase hex) of floats serialised little-endian, as expected.json hashes maps.
std::string sha256_hex(const float* values, std::size_t n);
std::uint32_t bits(float f);

/// Mirror an interleaved image left-right / top-bottom.
std::vector<std::uint8_t> hflip(const std::vector<std::uint8_t>& px, std::uint32_t w,
                                std::uint32_t h, std::size_t bpp);
std::vector<std::uint8_t> vflip(const std::vector<std::uint8_t>& px, std::uint32_t w,
                                std::uint32_t h, std::size_t bpp);

/// Few k-means iterations: bank building stays quick in tests; the numerics are unchanged.
nexvitad::BankOptions quick_bank_options();

/// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

/// Runs `f`: the status of the nexvitad::Error it throws, or Status::ok when it throws none.
nexvitad::Status status_of(const std::function<void()>& f);

/// A copy of models/tiny in `dir` with fusion.local_avg 3 -> 1: another fingerprint.
fs::path make_wrong_model(const TempDir& dir);

}  // namespace support
