#include "support.hpp"

#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <unistd.h>

namespace support {

fs::path repo_root() { return fs::path(NEXVITAD_REPO_ROOT); }
fs::path model_dir() { return repo_root() / "models" / "tiny"; }
fs::path crosslang_dir() { return repo_root() / "tests" / "fixtures" / "crosslang"; }

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in),
                                     std::istreambuf_iterator<char>());
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

namespace {

// A regex per key reads the scalar members of one flat object of strings, numbers and
// booleans (expected.json, or one region of expected_tiled.json).
std::string json_field(const std::string& json, const std::string& key) {
    const std::regex re("\"" + key + "\"\\s*:\\s*(\"([^\"]*)\"|[^,}\\s]+)");
    std::smatch m;
    if (!std::regex_search(json, m, re)) {
        throw std::runtime_error("expected.json has no field " + key);
    }
    return m[2].matched ? m[2].str() : m[1].str();
}

std::uint32_t hex_bits(const std::string& json, const std::string& key) {
    return static_cast<std::uint32_t>(std::stoul(json_field(json, key), nullptr, 16));
}

// expected_tiled.json's "regions": [ {flat object}, ... ]. Cut out of `json` (so the flat
// reader cannot take a region's "width" for the image's) and parsed object by object.
std::vector<ExpectedRegion> take_regions(std::string& json) {
    std::vector<ExpectedRegion> out;
    const std::size_t key = json.find("\"regions\"");
    if (key == std::string::npos) return out;
    const std::size_t open = json.find('[', key);
    const std::size_t close = json.find(']', open);
    if (open == std::string::npos || close == std::string::npos) {
        throw std::runtime_error("expected_tiled.json: regions is not an array");
    }
    const std::string list = json.substr(open + 1, close - open - 1);
    for (std::size_t at = list.find('{'); at != std::string::npos; at = list.find('{', at + 1)) {
        const std::string obj = list.substr(at, list.find('}', at) - at + 1);
        ExpectedRegion r;
        r.x = static_cast<std::uint32_t>(std::stoul(json_field(obj, "x")));
        r.y = static_cast<std::uint32_t>(std::stoul(json_field(obj, "y")));
        r.width = static_cast<std::uint32_t>(std::stoul(json_field(obj, "width")));
        r.height = static_cast<std::uint32_t>(std::stoul(json_field(obj, "height")));
        r.area = std::stoull(json_field(obj, "area"));
        r.peak_bits = hex_bits(obj, "peak_bits");
        r.mean_bits = hex_bits(obj, "mean_bits");
        r.centroid_x_bits = hex_bits(obj, "centroid_x_bits");
        r.centroid_y_bits = hex_bits(obj, "centroid_y_bits");
        out.push_back(r);
    }
    json.erase(key, close + 1 - key);
    return out;
}

Expected read_expected(const char* file) {
    const auto raw = read_bytes(crosslang_dir() / file);
    std::string json(raw.begin(), raw.end());
    Expected x;
    x.regions = take_regions(json);
    if (!x.regions.empty()) x.regions_pixel_threshold_bits = hex_bits(json, "regions_pixel_threshold_bits");
    if (json_field(json, "format") != "rgb8") throw std::runtime_error("image.rgb is not rgb8");
    x.width = static_cast<std::uint32_t>(std::stoul(json_field(json, "width")));
    x.height = static_cast<std::uint32_t>(std::stoul(json_field(json, "height")));
    x.image_score_bits =
        static_cast<std::uint32_t>(std::stoul(json_field(json, "image_score_bits"), nullptr, 16));
    x.image_threshold_bits =
        static_cast<std::uint32_t>(std::stoul(json_field(json, "image_threshold_bits"), nullptr, 16));
    x.is_anomalous = json_field(json, "is_anomalous") == "true";
    x.map_len = std::stoul(json_field(json, "map_len"));
    x.map_sha256 = json_field(json, "map_sha256");
    return x;
}

}  // namespace

const Expected& expected() {
    static const Expected e = read_expected("expected.json");
    return e;
}

const Expected& expected_tiled() {
    static const Expected e = read_expected("expected_tiled.json");
    if (e.width != expected().width || e.height != expected().height) {
        throw std::runtime_error("expected_tiled.json describes another image than expected.json");
    }
    return e;
}

const ExpectedRoi& expected_roi() {
    static const ExpectedRoi e = [] {
        ExpectedRoi x;
        x.plain = read_expected("expected_roi.json");
        if (x.plain.width != expected().width || x.plain.height != expected().height) {
            throw std::runtime_error("expected_roi.json describes another image than expected.json");
        }
        const auto raw = read_bytes(crosslang_dir() / "expected_roi.json");
        const std::string json(raw.begin(), raw.end());
        x.roi_width = static_cast<std::uint32_t>(std::stoul(json_field(json, "roi_width")));
        x.roi_height = static_cast<std::uint32_t>(std::stoul(json_field(json, "roi_height")));
        x.caller_roi_image_score_bits = hex_bits(json, "caller_roi_image_score_bits");
        x.caller_roi_map_sha256 = json_field(json, "caller_roi_map_sha256");
        x.ignore_roi_image_score_bits = hex_bits(json, "ignore_roi_image_score_bits");
        x.ignore_roi_map_sha256 = json_field(json, "ignore_roi_map_sha256");
        return x;
    }();
    return e;
}

const ExpectedGrow& expected_grow() {
    static const ExpectedGrow e = [] {
        ExpectedGrow x;
        x.plain = read_expected("expected_grow.json");
        if (x.plain.width != expected().width || x.plain.height != expected().height) {
            throw std::runtime_error("expected_grow.json describes another image than expected.json");
        }
        const auto raw = read_bytes(crosslang_dir() / "expected_grow.json");
        const std::string json(raw.begin(), raw.end());
        x.grow_add_width = static_cast<std::uint32_t>(std::stoul(json_field(json, "grow_add_width")));
        x.grow_add_height = static_cast<std::uint32_t>(std::stoul(json_field(json, "grow_add_height")));
        x.shots = static_cast<std::uint32_t>(std::stoul(json_field(json, "shots")));
        x.pixel_threshold_bits = hex_bits(json, "pixel_threshold_bits");
        return x;
    }();
    return e;
}

const std::vector<std::uint8_t>& grow_add_rgb() {
    static const std::vector<std::uint8_t> px = [] {
        auto v = read_bytes(crosslang_dir() / "grow_add.rgb");
        if (v.size() != std::size_t{expected_grow().grow_add_width} * expected_grow().grow_add_height * 3) {
            throw std::runtime_error("grow_add.rgb size does not match expected_grow.json");
        }
        return v;
    }();
    return px;
}

const std::vector<std::uint8_t>& roi_mask_bytes() {
    static const std::vector<std::uint8_t> m = [] {
        auto v = read_bytes(crosslang_dir() / "roi.mask");
        if (v.size() != std::size_t{expected_roi().roi_width} * expected_roi().roi_height) {
            throw std::runtime_error("roi.mask size does not match expected_roi.json");
        }
        return v;
    }();
    return m;
}

const std::vector<std::uint8_t>& fixture_rgb() {
    static const std::vector<std::uint8_t> px = [] {
        auto v = read_bytes(crosslang_dir() / "image.rgb");
        if (v.size() != std::size_t{expected().width} * expected().height * 3) {
            throw std::runtime_error("image.rgb size does not match expected.json");
        }
        return v;
    }();
    return px;
}

nexvitad::ImageView fixture_view() {
    return nexvitad::ImageView(fixture_rgb().data(), expected().width, expected().height,
                               nexvitad::PixelFormat::rgb8);
}

const nexvitad::Model& model() {
    static const nexvitad::Model m(model_dir().string());
    return m;
}

const nexvitad::Bank& fixture_bank() {
    static const nexvitad::Bank b = model().load_bank((crosslang_dir() / "tiny.bank").string());
    return b;
}

std::string sha256_hex(const float* values, std::size_t n) {
    std::vector<unsigned char> bytes(n * 4);
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t b = bits(values[i]);
        for (int k = 0; k < 4; ++k) bytes[4 * i + static_cast<std::size_t>(k)] =
            static_cast<unsigned char>(b >> (8 * k));
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("EVP_Digest failed");
    }
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

std::uint32_t bits(float f) {
    std::uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return b;
}

std::vector<std::uint8_t> hflip(const std::vector<std::uint8_t>& px, std::uint32_t w,
                                std::uint32_t h, std::size_t bpp) {
    std::vector<std::uint8_t> out(px.size());
    for (std::size_t y = 0; y < h; ++y)
        for (std::size_t x = 0; x < w; ++x)
            std::memcpy(&out[(y * w + x) * bpp], &px[(y * w + (w - 1 - x)) * bpp], bpp);
    return out;
}

std::vector<std::uint8_t> vflip(const std::vector<std::uint8_t>& px, std::uint32_t w,
                                std::uint32_t h, std::size_t bpp) {
    std::vector<std::uint8_t> out(px.size());
    const std::size_t row = w * bpp;
    for (std::size_t y = 0; y < h; ++y)
        std::memcpy(&out[y * row], &px[(h - 1 - y) * row], row);
    return out;
}

nexvitad::BankOptions quick_bank_options() { return nexvitad::BankOptions().max_iters(5); }

TempDir::TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "nexvitad-cpp-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

fs::path make_wrong_model(const TempDir& dir) {
    const fs::path out = dir.path() / "wrong-model";
    fs::copy(model_dir(), out, fs::copy_options::recursive);
    const auto raw = read_bytes(out / "model.json");
    std::string json(raw.begin(), raw.end());
    std::smatch m;
    if (!std::regex_search(json, m, std::regex("\"local_avg\"\\s*:\\s*(3)\\b"))) {
        throw std::runtime_error("model.json has no \"local_avg\": 3");
    }
    json.replace(static_cast<std::size_t>(m.position(1)), 1, "1");
    write_text(out / "model.json", json);
    return out;
}

nexvitad::Status status_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const nexvitad::Error& e) {
        return e.status();
    }
    return nexvitad::Status::ok;
}

}  // namespace support
