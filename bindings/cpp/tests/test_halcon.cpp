// The HALCON helpers, fed with planar buffers as get_image_pointer1/3 would return them.
#include "support.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

using nexvitad::ImageView;
using nexvitad::PixelFormat;
using nexvitad::Status;
using support::status_of;
using support::bits;
using support::expected;

namespace {

/// The fixture split into three planes, as HALCON stores a 3-channel byte image.
struct Planes {
    std::vector<std::uint8_t> r, g, b;
    Planes() {
        const auto& rgb = support::fixture_rgb();
        const std::size_t n = rgb.size() / 3;
        r.resize(n); g.resize(n); b.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            r[i] = rgb[3 * i];
            g[i] = rgb[3 * i + 1];
            b[i] = rgb[3 * i + 2];
        }
    }
};

}  // namespace

TEST(Halcon, InterleavedPlanesReproduceTheFixture) {
    Planes p;
    std::vector<std::uint8_t> buffer;
    const ImageView v = nexvitad::halcon::interleave_rgb(
        p.r.data(), p.g.data(), p.b.data(), "byte", expected().width, expected().height, buffer);
    EXPECT_EQ(v.format, PixelFormat::rgb8);
    EXPECT_EQ(v.data, buffer.data());
    ASSERT_EQ(buffer, support::fixture_rgb());

    const nexvitad::Result r = support::model().score(support::fixture_bank(), v);
    EXPECT_EQ(bits(r.image_score), expected().image_score_bits);
    EXPECT_EQ(support::sha256_hex(r.map.data(), r.map.size()), expected().map_sha256);
}

TEST(Halcon, GrayViewScoresInPlace) {
    Planes p;  // the green plane as a one-channel image
    const ImageView v = nexvitad::halcon::gray_view(p.g.data(), "byte", expected().width, expected().height);
    EXPECT_EQ(v.data, p.g.data());  // no copy
    EXPECT_EQ(v.format, PixelFormat::gray8);
    const auto& m = support::model();
    const nexvitad::Result a = m.score(support::fixture_bank(), v);
    const nexvitad::Result b = m.score(support::fixture_bank(),
                                       ImageView(p.g.data(), expected().width, expected().height,
                                                 PixelFormat::gray8));
    EXPECT_EQ(bits(a.image_score), bits(b.image_score));
    EXPECT_EQ(std::memcmp(a.map.data(), b.map.data(), a.map.size() * 4), 0);
}

TEST(Halcon, RejectsOtherTypesSizesAndNullPointers) {
    Planes p;
    std::vector<std::uint8_t> buf;
    const auto* g = p.g.data();
    using nexvitad::halcon::gray_view;
    using nexvitad::halcon::interleave_rgb;
    EXPECT_EQ(status_of([&] { gray_view(g, "uint2", 4, 4); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { gray_view(g, nullptr, 4, 4); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { gray_view(g, "byte", 0, 4); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { gray_view(g, "byte", 4, -1); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { gray_view(g, "byte", std::int64_t{1} << 33, 4); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { gray_view(nullptr, "byte", 4, 4); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { interleave_rgb(g, nullptr, g, "byte", 4, 4, buf); }), Status::invalid_argument);
    EXPECT_EQ(status_of([&] { interleave_rgb(g, g, g, "real", 4, 4, buf); }), Status::invalid_argument);
    EXPECT_TRUE(buf.empty());  // untouched on failure
    EXPECT_EQ(status_of([&] { interleave_rgb(g, g, g, "byte", 4, 4, buf); }), Status::ok);
    EXPECT_EQ(buf.size(), 48u);
}
